//! `ValetClient`: options, REST calls that are not per-stream, and
//! `openConvo`.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};

use valet_core::backoff::Rng;
use valet_core::client::{ClientConfig, RawOptions};
use valet_core::error::ErrorCode;
use wasm_bindgen::prelude::*;

use crate::convo::{Convo, ConvoInner};
use crate::error::{js_error, to_js};
use crate::log::{Hook, Logger};
use crate::shared::ClientShared;
use crate::tokens::TokenSource;

#[wasm_bindgen(module = "/js/client.js")]
extern "C" {
    /// An answer read and shaped: with `session`, `POST /sessions`' as
    /// `StartSessionResult` (defaults filled in), else `GET
    /// /agent_convos`' list; or why it can't be (a string).
    #[wasm_bindgen(js_name = shapeAnswer)]
    fn shape_answer(session: bool, text: &str) -> JsValue;
    /// `new ValetClient(options)`'s options, type-checked and read in one
    /// crossing: `[onEvent, agentId, baseUrl, fetchJwtTimeoutMs, debug,
    /// pauseOnHidden, transport, stallTimeoutMs, persist, fetchJwt]` (absent ones
    /// undefined), or the message of the `invalid_argument` error. Throws
    /// what a getter of `options` throws.
    #[wasm_bindgen(js_name = clientArgs, catch)]
    fn client_args(options: &JsValue) -> Result<JsValue, JsValue>;
    /// `openConvo(options)`'s `convoId`, if it is a string with more than
    /// white space.
    #[wasm_bindgen(js_name = convoIdOf, catch)]
    fn convo_id_of(options: &JsValue) -> Result<Option<String>, JsValue>;
}

#[wasm_bindgen(module = "/js/local.js")]
extern "C" {
    /// Follows `clearLocalData()` of the origin's other tabs (in a page; once).
    #[wasm_bindgen(js_name = followClears)]
    fn follow_clears();
    /// Deletes what the SDK stored for the origin (see `ValetClient::clear_local_data`).
    #[wasm_bindgen(js_name = clearLocalData)]
    fn clear_local_data() -> js_sys::Promise;
}

/// A client-level REST call (no body, not tied to a convo), its answer
/// shaped in JS (`shapeAnswer`, over `JSON.parse`: no serde).
async fn get_shaped(shared: &ClientShared, what: &'static str, method: &str, url: &str, session: bool) -> Result<JsValue, JsValue> {
    let body = shared.request(what, method, url).await.map_err(|e| to_js(&e))?;
    let shaped = shape_answer(session, &body);
    match shaped.as_string() {
        Some(why) => Err(js_error(ErrorCode::Protocol, valet_core::cat!("malformed answer to ", what, ": ", why))),
        None => Ok(shaped),
    }
}

/// The entry point: `new ValetClient({ agentId, fetchJwt, ... })`.
#[wasm_bindgen]
pub struct ValetClient {
    shared: Rc<ClientShared>,
}

#[wasm_bindgen]
impl ValetClient {
    /// Validates the options (throws a `ValetError` with code
    /// `invalid_argument` naming the option at fault).
    #[wasm_bindgen(constructor)]
    pub fn new(#[wasm_bindgen(unchecked_param_type = "ValetClientOptions")] options: JsValue) -> Result<ValetClient, JsValue> {
        // The browser's JSON.parse reads what the core decides on.
        valet_core::json::set_reader(&crate::json::JsJson);
        let args = client_args(&options)?;
        if let Some(message) = args.as_string() {
            return Err(js_error(ErrorCode::InvalidArgument, message));
        }
        let args: js_sys::Array = args.unchecked_into();
        let fetch_jwt = args.get(9);
        // A function (`clientArgs` checked: `typeof`, so one of another realm too) or undefined.
        let on_event = args.get(0);
        let hook = Hook((!on_event.is_undefined()).then(|| on_event.unchecked_into()));
        let raw = RawOptions {
            agent_id: args.get(1).as_string(),
            has_fetch_jwt: fetch_jwt.is_function(),
            base_url: args.get(2).as_string(),
            fetch_jwt_timeout_ms: args.get(3).as_f64(),
            debug: args.get(4).as_bool(),
            pause_on_hidden: args.get(5).as_bool(),
            transport: args.get(6).as_string(),
            stall_timeout_ms: args.get(7).as_f64(),
            persist: args.get(8).as_string(),
        };
        let config = ClientConfig::from_raw(raw).map_err(|m| js_error(ErrorCode::InvalidArgument, m))?;
        let log = Logger { enabled: config.debug };
        let tokens = TokenSource::new(fetch_jwt.into(), config.fetch_jwt_timeout_ms, log, hook.clone(), &config.base_url, &config.agent_id);
        follow_clears();
        let seed = (js_sys::Math::random() * (u64::MAX as f64)) as u64 ^ (js_sys::Date::now() as u64);
        log.log(&valet_core::cat!("client for agent ", config.agent_id, " at ", config.base_url));
        Ok(ValetClient {
            shared: Rc::new(ClientShared { config, tokens, log, hook, rng: RefCell::new(Rng::new(seed)), seeds: Cell::new(0) }),
        })
    }

    /// Deletes everything the SDK stored for this origin, for every user:
    /// the local history of `persist: "local"` (IndexedDB), and the
    /// outboxes and resume points of this tab and of the origin's other
    /// open tabs (`sessionStorage`). Convos open now keep nothing more.
    /// Call it at sign-out, after closing the convos. Resolves once the
    /// database is deleted.
    #[wasm_bindgen(js_name = clearLocalData, unchecked_return_type = "Promise<void>")]
    pub fn clear_local_data(&self) -> js_sys::Promise {
        self.shared.log.log("clearing local data");
        clear_local_data()
    }

    /// Starts a new convo with the agent.
    #[wasm_bindgen(js_name = startSession, unchecked_return_type = "Promise<StartSessionResult>")]
    pub fn start_session(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        crate::rt::promise(async move { get_shaped(&shared, "startSession", "POST", &shared.config.sessions_url(), true).await })
    }

    /// The user's convos with the agent, newest first.
    #[wasm_bindgen(js_name = listConvos, unchecked_return_type = "Promise<ConvoSummary[]>")]
    pub fn list_convos(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        crate::rt::promise(async move { get_shaped(&shared, "listConvos", "GET", &shared.config.convos_url(), false).await })
    }

    /// Opens a convo: gets a token, then opens its stream. Resolves once the
    /// stream is live, paused, or retrying after a failure that may pass
    /// (offline, a network error or timeout of the API or of `fetchJwt`,
    /// 408/429/5xx: `status` is then `reconnecting`, and it connects by
    /// itself). Rejects only on a definite refusal: `fetchJwt` rejecting
    /// with a `ValetError` of code `auth` (signed out), the API's 403 or
    /// 404, or three 401s in a row. Subscribe with `convo.on(...)`; history
    /// arrives as `message` events.
    #[wasm_bindgen(js_name = openConvo, unchecked_return_type = "Promise<Convo>")]
    pub fn open_convo(&self, #[wasm_bindgen(unchecked_param_type = "OpenConvoOptions")] options: JsValue) -> js_sys::Promise {
        let shared = self.shared.clone();
        crate::rt::promise(async move {
            let convo_id = convo_id_of(&options)?
                .ok_or_else(|| js_error(ErrorCode::InvalidArgument, "openConvo({ convoId }): convoId is required (a non-empty string)"))?;
            // The session asks for a token first, and refuses a signed-out user.
            let inner = ConvoInner::open(shared, convo_id);
            Ok(Convo::start(inner).await.map_err(|e| to_js(&e))?.into())
        })
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::*;

    fn options(js: &str) -> JsValue {
        js_sys::Function::new_no_args(&format!("return {js}")).call0(&JsValue::NULL).unwrap()
    }

    fn code_of(r: Result<ValetClient, JsValue>) -> String {
        let e = r.err().expect("an error");
        js_sys::Reflect::get(&e, &"code".into()).unwrap().as_string().unwrap()
    }

    #[wasm_bindgen_test]
    fn options_are_checked_at_construction() {
        assert!(ValetClient::new(options("{ agentId: 'a', fetchJwt: () => 'x' }")).is_ok());
        for bad in [
            "{ fetchJwt: () => 'x' }",
            "{ agentId: 'a' }",
            "{ agentId: 'a', fetchJwt: 'not a function' }",
            "{ agentId: 5, fetchJwt: () => 'x' }",
            "{ agentId: 'a', fetchJwt: () => 'x', baseUrl: 'ftp://x' }",
            "{ agentId: 'a', fetchJwt: () => 'x', debug: 'yes' }",
            "{ agentId: 'a', fetchJwt: () => 'x', fetchJwtTimeoutMs: -5 }",
            "{ agentId: 'a', fetchJwt: () => 'x', persist: 'session' }",
            "{ agentId: 'a', fetchJwt: () => 'x', persist: true }",
            "null",
        ] {
            assert_eq!(code_of(ValetClient::new(options(bad))), "invalid_argument", "{bad}");
        }
    }

    #[wasm_bindgen_test]
    async fn open_convo_rejects_when_fetch_jwt_says_signed_out() {
        let fetch_jwt = "() => { const e = new Error('no session'); e.name = 'ValetError'; e.code = 'auth'; return Promise.reject(e); }";
        let client = ValetClient::new(options(&format!("{{ agentId: 'a', fetchJwt: {fetch_jwt}, baseUrl: 'http://127.0.0.1:9' }}"))).unwrap();
        let open = options("{ convoId: 'c' }");
        let r = wasm_bindgen_futures::JsFuture::from(client.open_convo(open)).await;
        let e = r.expect_err("rejects");
        assert_eq!(js_sys::Reflect::get(&e, &"code".into()).unwrap().as_string().as_deref(), Some("auth"));
    }

    #[wasm_bindgen_test]
    async fn open_convo_resolves_and_retries_when_fetch_jwt_fails_otherwise() {
        let client =
            ValetClient::new(options("{ agentId: 'a', fetchJwt: () => Promise.reject(new Error('nope')), baseUrl: 'http://127.0.0.1:9' }"))
                .unwrap();
        let open = options("{ convoId: 'c' }");
        let convo = wasm_bindgen_futures::JsFuture::from(client.open_convo(open)).await.expect("resolves");
        let status = js_sys::Reflect::get(&convo, &"status".into()).unwrap();
        assert_eq!(status.as_string().as_deref(), Some("reconnecting"));
        let close: js_sys::Function = js_sys::Reflect::get(&convo, &"close".into()).unwrap().unchecked_into();
        close.call0(&convo).unwrap();
    }
}
