//! The browser side of tab election: Web Locks and the BroadcastChannel.
//! `valet_core::session` decides (with `valet_core::election`); this holds
//! the handles its actions name.
//!
//! - Web Locks go through a few lines of JS (no `web_sys_unstable_apis` in
//!   users' builds). The lock's callbacks reach Rust through one closure
//!   owned by the handle; JS calls it guarded, so a late callback after the
//!   handle is gone is harmless.
//! - Without `navigator.locks` the election runs on heartbeats alone.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use core::cell::RefCell;

use crate::rt::Timeout;
use valet_core::election::{Election, ElectionConfig};
use wasm_bindgen::prelude::*;
use web_sys::BroadcastChannel;

#[wasm_bindgen(module = "/js/tabs.js")]
extern "C" {
    #[wasm_bindgen(js_name = locksAvailable)]
    pub(crate) fn locks_available() -> bool;
    #[wasm_bindgen(js_name = requestLock)]
    pub(crate) fn request_lock(name: &str, steal: bool, cb: &JsValue) -> js_sys::Function;
}

/// A lock asked for, or held: dropped, it is released (or the request
/// withdrawn), then its callback freed.
pub type LockHandle = crate::rt::Subscription<dyn FnMut(bool)>;

/// One tab's link to the others for a convo: the handles of its election.
pub struct TabLink {
    pub(crate) channel: BroadcastChannel,
    pub(crate) lock_name: String,
    pub(crate) timer: RefCell<Option<Timeout>>,
    pub(crate) lock: RefCell<Option<LockHandle>>,
}

impl TabLink {
    /// The link for (agent, convo), or `None` where BroadcastChannel is missing.
    pub fn new(agent_id: &str, convo_id: &str) -> Option<TabLink> {
        let channel = BroadcastChannel::new(&valet_core::cat!("valet-events:", agent_id, ":", convo_id)).ok()?;
        Some(TabLink {
            channel,
            lock_name: valet_core::cat!("valet:", agent_id, ":", convo_id),
            timer: RefCell::new(None),
            lock: RefCell::new(None),
        })
    }

    /// The election of a tab (`tab_id`: unique), with Web Locks where the
    /// browser has them.
    pub fn election(tab_id: String) -> Election {
        Election::new(ElectionConfig { locks: locks_available(), ..Default::default() }, tab_id)
    }

    /// Requests the lock; `cb` gets `true` when granted, `false` when lost (or withdrawn).
    pub fn request(&self, steal: bool, cb: Closure<dyn FnMut(bool)>) {
        let release = request_lock(&self.lock_name, steal, cb.as_ref());
        let old = self.lock.write().replace(LockHandle::new(release, cb));
        drop(old);
    }

    /// Releases the lock, if held or requested.
    pub fn release(&self) {
        let old = self.lock.write().take();
        drop(old);
    }
}

impl Drop for TabLink {
    fn drop(&mut self) {
        self.channel.close();
    }
}
