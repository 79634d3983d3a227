//! The browser's event loop, as the glue uses it: tasks, timers, event
//! listeners, and the page's one-thread state.
//!
//! Decisions:
//! - Futures, timer callbacks and listeners are boxed before they reach
//!   wasm-bindgen: its task and closure code is then built once, not once
//!   per future or closure type.
//! - Timers and listeners are the few lines of `setTimeout` and
//!   `addEventListener` gloo-timers and gloo-events wrapped: those crates
//!   link `std`, and the shipped wasm is `no_std` (see the crate docs).
//!   What JS runs for the glue and reports to a callback (a listener, a
//!   stream, a lock request, the page's events) is a [`Subscription`]: the
//!   JS hands back the function that ends it, and the wasm handles no
//!   event object (a JS value read in the wasm costs it code per read).
//! - `RefCell` borrows go through [`Shared`]: `borrow` and `borrow_mut`
//!   are `#[track_caller]`, so each call site would carry its own panic
//!   location in the wasm; through these, all share one.
//! - A value awaited once ([`oneshot`]: a send's settlement, a convo's
//!   opening, a token) is a shared cell and a waker: this wasm has one
//!   thread, and futures-channel's oneshot (atomics, three locks) and
//!   futures-util's `select` are much more code.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
#[cfg(target_arch = "wasm32")]
use core::cell::Cell;
use core::cell::{Ref, RefCell, RefMut};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Runs a future in the background.
pub(crate) fn spawn(future: impl Future<Output = ()> + 'static) {
    spawn_boxed(Box::pin(future))
}

fn spawn_boxed(future: Pin<Box<dyn Future<Output = ()>>>) {
    wasm_bindgen_futures::spawn_local(future)
}

/// Whether a `Promise` resolves to `true` (not to anything else, nor rejects).
pub(crate) async fn resolves_true(promise: js_sys::Promise) -> bool {
    JsFuture::from(promise).await.ok().and_then(|v| v.as_bool()) == Some(true)
}

/// A `Promise` of a future's result.
pub(crate) fn promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> js_sys::Promise {
    promise_boxed(Box::pin(future))
}

fn promise_boxed(future: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(future)
}

/// The sending half of a [`oneshot`].
pub(crate) struct Sender<T>(Rc<RefCell<(Option<T>, Option<Waker>)>>);

/// The receiving half of a [`oneshot`]: a future of the value, `None` if
/// the sender was dropped without sending.
pub(crate) struct Receiver<T>(Rc<RefCell<(Option<T>, Option<Waker>)>>);

/// A value sent once to one task of this thread.
pub(crate) fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Rc::new(RefCell::new((None, None)));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    /// Sends the value (the receiver wakes when the sender is dropped, here).
    pub(crate) fn send(self, value: T) {
        self.0.write().0 = Some(value);
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = self.0.write().1.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.write();
        if slot.0.is_some() || Rc::strong_count(&self.0) == 1 {
            return Poll::Ready(slot.0.take());
        }
        slot.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[wasm_bindgen(module = "/js/rt.js")]
extern "C" {
    /// Adds a listener that hands `cb` each event's `data` if it is a
    /// string; returns the function that removes it.
    #[wasm_bindgen(js_name = addListener)]
    fn add_listener(target: &JsValue, kind: &str, cb: &JsValue) -> js_sys::Function;
    /// Calls `stop()`, what it throws ignored.
    fn end(stop: &js_sys::Function);
    /// A promise resolved in `ms` milliseconds.
    #[wasm_bindgen(js_name = sleep)]
    fn js_sleep(ms: i32) -> js_sys::Promise;
    /// A promise resolved in a task of its own.
    #[wasm_bindgen(js_name = nextTask)]
    fn js_next_task() -> js_sys::Promise;
}

/// Resumes in a task of its own, after the tasks queued before it.
pub(crate) async fn next_task() {
    let _ = wasm_bindgen_futures::JsFuture::from(js_next_task()).await;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

fn clamp_ms(ms: u64) -> i32 {
    ms.min(i32::MAX as u64) as i32
}

/// A `setTimeout` that is cleared when dropped.
pub(crate) struct Timeout {
    id: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Timeout {
    /// Calls `f` in `ms` milliseconds, unless dropped before.
    pub(crate) fn new(ms: u64, f: impl FnOnce() + 'static) -> Timeout {
        Timeout::boxed(clamp_ms(ms), Box::new(f))
    }

    fn boxed(ms: i32, f: Box<dyn FnOnce()>) -> Timeout {
        let callback = Closure::once(f);
        Timeout { id: set_timeout(callback.as_ref().unchecked_ref(), ms), _callback: callback }
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}

/// Resolves in `ms` milliseconds (a JS promise: its timer runs out even
/// if the future is dropped, which only the client's retry loop, awaited
/// to its end, uses).
pub(crate) async fn sleep(ms: u64) {
    let _ = JsFuture::from(js_sleep(clamp_ms(ms))).await;
}

/// Something JS runs for the glue and reports to a callback (a stream, a
/// lock request, the page's events): the function that ends it, and the
/// callback. Dropped, it ends it first, then frees the callback, so nothing
/// calls the callback after.
pub(crate) struct Subscription<F: ?Sized> {
    stop: js_sys::Function,
    _callback: Closure<F>,
}

impl<F: ?Sized> Subscription<F> {
    pub(crate) fn new(stop: js_sys::Function, callback: Closure<F>) -> Subscription<F> {
        Subscription { stop, _callback: callback }
    }
}

impl<F: ?Sized> Drop for Subscription<F> {
    fn drop(&mut self) {
        end(&self.stop);
    }
}

/// An event listener: `f` gets each `kind` event of `target` (its `data`
/// when that is a string, as a message's is); dropped, it is removed.
pub(crate) type Listener = Subscription<dyn FnMut(Option<String>)>;

/// Listens to `target`'s `kind` events (see [`Listener`]).
pub(crate) fn listen(target: &JsValue, kind: &str, f: impl FnMut(Option<String>) + 'static) -> Listener {
    listen_boxed(target, kind, Box::new(f))
}

fn listen_boxed(target: &JsValue, kind: &str, f: Box<dyn FnMut(Option<String>)>) -> Listener {
    let callback = Closure::wrap(f);
    Subscription::new(add_listener(target, kind, callback.as_ref()), callback)
}

/// `RefCell`'s borrows, through one function each (see the module docs).
pub(crate) trait Shared<T> {
    /// `borrow()`.
    fn read(&self) -> Ref<'_, T>;
    /// `borrow_mut()`.
    fn write(&self) -> RefMut<'_, T>;
}

impl<T> Shared<T> for RefCell<T> {
    fn read(&self) -> Ref<'_, T> {
        self.borrow()
    }
    fn write(&self) -> RefMut<'_, T> {
        self.borrow_mut()
    }
}

/// A value for the whole page, in a `static` (`thread_local!` is `std`'s).
#[cfg(target_arch = "wasm32")]
pub(crate) struct PageCell<T>(Cell<T>);

// SAFETY: this wasm is built without the `atomics` target feature, so it
// runs on one thread: a `PageCell` is never reached from two.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<T> Sync for PageCell<T> {}

#[cfg(target_arch = "wasm32")]
impl<T: Copy> PageCell<T> {
    /// A cell holding `value`.
    pub(crate) const fn new(value: T) -> PageCell<T> {
        PageCell(Cell::new(value))
    }
    /// The value.
    pub(crate) fn get(&self) -> T {
        self.0.get()
    }
    /// Replaces the value.
    pub(crate) fn set(&self, value: T) {
        self.0.set(value)
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::*;

    #[wasm_bindgen_test]
    async fn a_oneshot_gives_its_value_once_or_none_if_its_sender_is_dropped() {
        // Awaited before the value is sent: the send wakes it.
        let (tx, rx) = oneshot::<u32>();
        spawn(async move {
            sleep(1).await;
            tx.send(7);
        });
        assert_eq!(rx.await, Some(7));
        // Sent before it is awaited.
        let (tx, rx) = oneshot::<u32>();
        tx.send(8);
        assert_eq!(rx.await, Some(8));
        // The sender dropped unsent, while awaited.
        let (tx, rx) = oneshot::<u32>();
        spawn(async move {
            sleep(1).await;
            drop(tx);
        });
        assert_eq!(rx.await, None);
    }
}
