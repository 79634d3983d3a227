//! The token source: single flight, the lock shared with other tabs, told
//! tokens, giving up on a wait, failures, and the refresh timer, driven
//! natively.

use base64::Engine as _;
use valet_core::error::ErrorCode;
use valet_core::token::{claims_of, FetchFailure, TokenMessage};
use valet_core::token_source::{TokenAction, TokenInput, TokenSource, TokenTimer, REFRESH_CHECK_MS};

const T0: u64 = 1_800_000_000_000;
const TIMEOUT: u64 = 10_000;

fn jwt(exp_s: u64, tag: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = format!(r#"{{"iss":"key","agent_uuid":"agent","source_key":"user","exp":{exp_s},"tag":"{tag}"}}"#);
    format!("{}.{}.sig", b(r#"{"alg":"HS256"}"#), b(&claims))
}

fn settled(out: &[TokenAction]) -> Vec<(u64, Result<String, ErrorCode>)> {
    out.iter()
        .filter_map(|a| match a {
            TokenAction::Settle { id, result } => Some((*id, result.clone().map_err(|e| e.code))),
            _ => None,
        })
        .collect()
}

fn lock_request(out: &[TokenAction]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        TokenAction::RequestLock { epoch, .. } => Some(*epoch),
        _ => None,
    })
}

fn get(id: u64, reject: Option<&str>) -> TokenInput {
    TokenInput::Get { id, reject: reject.map(str::to_owned) }
}

/// A source holding a first token (`a`), sharing with other tabs.
fn with_first_token() -> (TokenSource, String) {
    let mut s = TokenSource::new(claims_of, true, TIMEOUT);
    let out = s.handle(T0, get(1, None));
    assert_eq!(out, [TokenAction::CallFetchJwt], "a first token is fetched at once, without the lock");
    let a = jwt(T0 / 1000 + 900, "a");
    s.handle(T0, TokenInput::Fetched(Ok(a.clone())));
    (s, a)
}

#[test]
fn one_fetch_answers_every_request_and_the_token_is_kept() {
    let mut s = TokenSource::new(claims_of, false, TIMEOUT);
    assert_eq!(s.handle(T0, get(1, None)), [TokenAction::CallFetchJwt]);
    assert!(s.handle(T0, get(2, None)).is_empty(), "single flight");
    let a = jwt(T0 / 1000 + 900, "a");
    let out = s.handle(T0 + 5, TokenInput::Fetched(Ok(a.clone())));
    assert_eq!(settled(&out), [(1, Ok(a.clone())), (2, Ok(a.clone()))]);
    assert!(out.contains(&TokenAction::Post(TokenMessage::Token(a.clone()).to_json())), "told to the other tabs");
    assert!(out.contains(&TokenAction::Refreshed { ok: true }));
    assert_eq!(settled(&s.handle(T0 + 10, get(3, None))), [(3, Ok(a))], "cached");
    assert_eq!(s.fetches(), 1);
}

#[test]
fn a_refused_token_is_told_and_replaced_under_the_lock() {
    let (mut s, a) = with_first_token();
    let out = s.handle(T0 + 100, get(2, Some(&a)));
    assert!(out.contains(&TokenAction::Post(TokenMessage::Rejected(a.clone()).to_json())));
    let epoch = lock_request(&out).expect("the replacement is fetched under the lock");
    assert!(out.contains(&TokenAction::SetTimer { timer: TokenTimer::GiveUp, delay_ms: TIMEOUT + 1_000 }));
    assert!(!out.contains(&TokenAction::CallFetchJwt), "not before the lock");
    assert!(s.handle(T0 + 110, TokenInput::LockGranted { epoch: epoch - 1 }).is_empty(), "a stale grant changes nothing");
    let out = s.handle(T0 + 120, TokenInput::LockGranted { epoch });
    assert!(out.contains(&TokenAction::CallFetchJwt) && out.contains(&TokenAction::ClearTimer(TokenTimer::GiveUp)));
    assert!(!out.contains(&TokenAction::ReleaseLock), "the lock is kept until the next refresh");
    let b = jwt(T0 / 1000 + 1000, "b");
    assert_eq!(settled(&s.handle(T0 + 200, TokenInput::Fetched(Ok(b.clone())))), [(2, Ok(b))]);
}

#[test]
fn a_token_told_by_another_tab_ends_the_wait_for_the_lock() {
    let (mut s, a) = with_first_token();
    let out = s.handle(T0 + 100, get(2, Some(&a)));
    assert!(lock_request(&out).is_some());
    let c = jwt(T0 / 1000 + 1000, "c");
    let out = s.handle(T0 + 150, TokenInput::Heard(TokenMessage::Token(c.clone()).to_json()));
    assert_eq!(settled(&out), [(2, Ok(c))]);
    assert!(out.contains(&TokenAction::ReleaseLock), "withdrawn from the lock's queue");
    assert!(!out.contains(&TokenAction::CallFetchJwt));
    assert!(s.handle(T0 + 160, TokenInput::Heard("garbage".into())).is_empty());
}

/// The stream's token refused (`auth_expiring`) while the tab holds
/// another tab's token of the same second: a new one is fetched, and one
/// told as old does not end the wait.
#[test]
fn a_refused_token_is_not_replaced_by_one_as_old() {
    let (mut s, a) = with_first_token();
    let twin = jwt(T0 / 1000 + 900, "0");
    assert!(twin < a, "first in byte order");
    s.handle(T0 + 10, TokenInput::Heard(TokenMessage::Token(twin.clone()).to_json()));
    assert_eq!(settled(&s.handle(T0 + 20, get(2, None))), [(2, Ok(twin.clone()))], "the tabs agree on the twin");
    let out = s.handle(T0 + 100, get(3, Some(&a)));
    assert!(settled(&out).is_empty() && lock_request(&out).is_some(), "the twin is as old: a new one is fetched");
    assert!(settled(&s.handle(T0 + 150, TokenInput::Heard(TokenMessage::Token(twin).to_json()))).is_empty());
    let b = jwt(T0 / 1000 + 1000, "b");
    let out = s.handle(T0 + 200, TokenInput::Heard(TokenMessage::Token(b.clone()).to_json()));
    assert_eq!(settled(&out), [(3, Ok(b))]);
}

#[test]
fn a_tab_with_the_better_token_tells_it_back() {
    let (mut s, a) = with_first_token();
    let older = jwt(T0 / 1000 + 100, "old");
    let out = s.handle(T0 + 10, TokenInput::Heard(TokenMessage::Token(older).to_json()));
    assert_eq!(out, [TokenAction::Post(TokenMessage::Token(a).to_json())]);
}

#[test]
fn a_tab_that_waits_too_long_fetches_for_itself() {
    let (mut s, a) = with_first_token();
    s.handle(T0 + 100, get(2, Some(&a)));
    let out = s.handle(T0 + 100 + TIMEOUT + 1_000, TokenInput::Timer(TokenTimer::GiveUp));
    assert!(out.contains(&TokenAction::ReleaseLock) && out.contains(&TokenAction::CallFetchJwt), "{out:?}");
}

#[test]
fn a_failed_fetch_fails_the_waiters_and_lets_the_next_tab_try() {
    let (mut s, a) = with_first_token();
    let out = s.handle(T0 + 100, get(2, Some(&a)));
    let epoch = lock_request(&out).unwrap();
    s.handle(T0 + 110, TokenInput::LockGranted { epoch });
    let out = s.handle(T0 + 200, TokenInput::Fetched(Err(FetchFailure::Threw("offline".into()))));
    assert_eq!(settled(&out), [(2, Err(ErrorCode::Network))]);
    assert!(out.contains(&TokenAction::ReleaseLock));
    assert!(out.contains(&TokenAction::Refreshed { ok: false }));
    let out = s.handle(T0 + 300, TokenInput::Fetched(Err(FetchFailure::SignedOut("bye".into()))));
    assert!(settled(&out).is_empty(), "nobody waits");
    s.handle(T0 + 400, get(3, None));
    let out = s.handle(T0 + 500, TokenInput::Fetched(Err(FetchFailure::SignedOut("bye".into()))));
    assert_eq!(settled(&out), [(3, Err(ErrorCode::Auth))], "signed out is `auth`");
}

/// A convo opening tells the source first: with no token, `fetchJwt` is
/// called at once, and the convo's request joins that call (one call, its
/// answer to the request); with a token, nothing is fetched.
#[test]
fn a_convo_opening_fetches_its_token_at_once() {
    let mut s = TokenSource::new(claims_of, true, TIMEOUT);
    assert_eq!(s.handle(T0, TokenInput::Active(1)), [TokenAction::CallFetchJwt], "no token: fetched now, no lock for a first one");
    assert!(s.handle(T0, get(1, None)).is_empty(), "the request waits for that call");
    let a = jwt(T0 / 1000 + 900, "a");
    let out = s.handle(T0 + 50, TokenInput::Fetched(Ok(a.clone())));
    assert_eq!(settled(&out), [(1, Ok(a.clone()))]);
    assert_eq!(s.fetches(), 1);
    // A second convo: the token is held, nothing is fetched.
    let out = s.handle(T0 + 60, TokenInput::Active(1));
    assert!(!out.contains(&TokenAction::CallFetchJwt) && lock_request(&out).is_none(), "{out:?}");
    assert_eq!(settled(&s.handle(T0 + 60, get(2, None))), [(2, Ok(a))]);
    assert_eq!(s.fetches(), 1);
}

#[test]
fn the_refresh_timer_runs_while_a_convo_is_open() {
    let (mut s, _) = with_first_token();
    let out = s.handle(T0 + 10, TokenInput::Active(1));
    assert!(out.contains(&TokenAction::SetTimer { timer: TokenTimer::Refresh, delay_ms: REFRESH_CHECK_MS }), "{out:?}");
    // Before it is due: it looks again.
    let out = s.handle(T0 + 10 + REFRESH_CHECK_MS, TokenInput::Timer(TokenTimer::Refresh));
    assert!(matches!(out[..], [TokenAction::SetTimer { timer: TokenTimer::Refresh, .. }]), "{out:?}");
    // Due (the token expires 900 s after T0, refreshed 5 minutes before):
    let due = s.manager().refresh_due_at().unwrap();
    let out = s.handle(due, TokenInput::Timer(TokenTimer::Refresh));
    assert!(lock_request(&out).is_some(), "refreshed under the lock: {out:?}");
    assert_eq!(s.handle(due + 1, TokenInput::Active(-1)), []);
    let (mut s, _) = with_first_token();
    s.handle(T0, TokenInput::Active(1));
    assert_eq!(s.handle(T0, TokenInput::Active(-1)), [TokenAction::ClearTimer(TokenTimer::Refresh)], "no convo: no refresh");
}
