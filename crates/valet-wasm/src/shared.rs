//! What every convo of a client shares (its options, token source, logger,
//! hook and randomness), and the client-level REST call with the send
//! policy. Below both `client` and `convo`, so neither imports the other.

#[allow(unused_imports)]
use crate::prelude::*;
use crate::rt::Shared;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};

use valet_core::backoff::Rng;
use valet_core::client::ClientConfig;
use valet_core::error::ClientError;
use valet_core::send::{SendOutcome, SendPolicy, SendStep};

use crate::http;
use crate::log::{Hook, Logger};
use crate::tokens::TokenSource;

/// What every convo of a client shares.
pub struct ClientShared {
    pub(crate) config: ClientConfig,
    pub(crate) tokens: Rc<TokenSource>,
    pub(crate) log: Logger,
    pub(crate) hook: Hook,
    pub(crate) rng: RefCell<Rng>,
    pub(crate) seeds: Cell<u64>,
}

impl ClientShared {
    pub(crate) fn seed(&self) -> u64 {
        let s = self.seeds.get().wrapping_add(1);
        self.seeds.set(s);
        self.rng.write().next_u64() ^ s
    }

    pub(crate) fn uuid(&self) -> String {
        self.rng.write().uuid_v4()
    }

    /// A client-level REST call without a body, with the send policy
    /// (valet-core `SendPolicy`): token refresh on 401, backoff on transient
    /// failures. Returns the body of the 2xx answer.
    pub(crate) async fn request(&self, what: &'static str, method: &str, url: &str) -> Result<String, ClientError> {
        let mut policy = SendPolicy::new(what);
        let mut reject = None;
        loop {
            let token = self.tokens.get(reject.take()).await?;
            let outcome = match http::send_read(method, url, Some(&token), http::Body::Empty, None).await {
                Ok(r) if (200..300).contains(&r.status) => return Ok(r.body),
                Ok(r) => SendOutcome::Http { status: r.status, retry_after: r.retry_after, body: r.body },
                Err(m) => SendOutcome::Network(m),
            };
            // The RNG borrow must end before the retry's await: other convos use it.
            let step = policy.next(outcome, &mut self.rng.write());
            match step {
                SendStep::Done => return Ok(String::new()),
                SendStep::Retry { delay_ms, refresh_token } => {
                    if refresh_token {
                        reject = Some(token);
                    }
                    crate::rt::sleep(delay_ms).await;
                }
                SendStep::Fail(e) => return Err(e),
            }
        }
    }

}
