//! The session: a convo machine and its tab election wired together, driven
//! natively. Two sessions share a channel (what one broadcasts, the other
//! hears) and a lock (granted in order of request): the decisions the glue
//! used to make, checked without a browser.

use serde_json::Value;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, Timer, TokenFor};
use valet_core::error::{ClientError, ErrorCode};
use valet_core::election::{Body, Election, ElectionConfig, Envelope, Role};
use valet_core::events::EventName;
use valet_core::session::{Session, SessionAction, SessionInput};

fn machine(seed: u64) -> ConvoMachine {
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.pause_on_hidden = true;
    ConvoMachine::new(cfg, seed)
}

fn tabbed(seed: u64, tab: &str) -> Session {
    Session::new(machine(seed), Some(Election::new(ElectionConfig::default(), tab)))
}

/// Opens: the opening's token first (and the tab lock while it comes),
/// then the convo and the election start. The actions of both steps.
fn start(s: &mut Session, now: u64, hidden: bool) -> Vec<SessionAction> {
    let mut out = s.handle(now, SessionInput::Start { hidden });
    assert_eq!(out[0], SessionAction::Convo(Action::GetToken { purpose: TokenFor::Open, reject: None }), "a token first");
    assert!(broadcasts(&out).is_empty() && stream_token(&out).is_none(), "nothing else before the token: {out:?}");
    out.extend(s.handle(now, SessionInput::Convo(Input::Token { purpose: TokenFor::Open, token: "t".into() })));
    out
}

fn stream_token(out: &[SessionAction]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        SessionAction::Convo(Action::GetToken { purpose: TokenFor::Stream(n), .. }) => Some(*n),
        _ => None,
    })
}

fn lock_request(out: &[SessionAction]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        SessionAction::RequestLock { epoch, .. } => Some(*epoch),
        _ => None,
    })
}

fn broadcasts(out: &[SessionAction]) -> Vec<String> {
    out.iter()
        .filter_map(|a| match a {
            SessionAction::Broadcast(json) => Some(json.clone()),
            _ => None,
        })
        .collect()
}

fn emitted(out: &[SessionAction], name: EventName) -> Vec<Value> {
    out.iter()
        .flat_map(|a| match a {
            SessionAction::Convo(Action::Emit { event, payload }) if *event == name => vec![serde_json::from_str(payload).unwrap()],
            SessionAction::Convo(Action::EmitMany { event, json_array, .. }) if *event == name => {
                serde_json::from_str::<Vec<Value>>(json_array).unwrap()
            }
            _ => vec![],
        })
        .collect()
}

fn msg_frame(seq: u64) -> String {
    format!(
        "event: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{{\"id\":\"m{seq}\",\"content\":\"c{seq}\",\"from\":\"ai_agent\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"seq\":{seq}}}}}\n\n"
    )
}

/// Without a channel the tab is alone: it leads and opens the stream at once.
#[test]
fn a_tab_without_a_channel_leads_and_streams() {
    let mut s = Session::new(machine(1), None);
    assert_eq!(s.role(), Role::Leader);
    let out = start(&mut s, 0, false);
    assert!(stream_token(&out).is_some(), "{out:?}");
    assert!(lock_request(&out).is_none() && broadcasts(&out).is_empty());
}

/// A page hidden at the opening starts hidden: paused, no stream.
#[test]
fn a_hidden_page_opens_paused() {
    let mut s = Session::new(machine(2), None);
    let out = start(&mut s, 0, true);
    assert!(stream_token(&out).is_none());
    assert_eq!(s.status().as_str(), "paused");
    let out = s.handle(10, SessionInput::Visibility { hidden: false });
    assert!(stream_token(&out).is_some(), "visible: it streams");
}

/// The granted lock makes the tab lead (a `role` event, then the stream);
/// an answer to a withdrawn request changes nothing.
#[test]
fn the_lock_makes_a_tab_lead_and_stale_answers_are_ignored() {
    let mut s = tabbed(3, "a");
    let out = start(&mut s, 0, false);
    let epoch = lock_request(&out).expect("asks for the lock");
    assert_eq!(broadcasts(&out).len(), 1, "says hello");
    assert_eq!(s.role(), Role::Follower, "follows until it leads");
    // A stale grant (an older request): nothing.
    let out = s.handle(1, SessionInput::Lock { epoch: epoch - 1, granted: true });
    assert!(stream_token(&out).is_none() && emitted(&out, EventName::Role).is_empty());
    let out = s.handle(2, SessionInput::Lock { epoch, granted: true });
    assert_eq!(emitted(&out, EventName::Role)[0]["role"], "leader");
    assert!(stream_token(&out).is_some(), "the leader streams");
    assert_eq!(s.role(), Role::Leader);
    assert_eq!(s.metrics().leader_changes, 1);
}

/// Two tabs: the one with the lock leads; the other follows, says hello,
/// and once acknowledged gets every frame the leader receives, relayed as
/// the leader's envelopes: delivered once, in order.
#[test]
fn a_leader_relays_to_a_listening_follower() {
    let mut a = tabbed(4, "a");
    let mut b = tabbed(5, "b");
    let out_a = start(&mut a, 0, false);
    let lock_a = lock_request(&out_a).unwrap();
    let out_a = a.handle(1, SessionInput::Lock { epoch: lock_a, granted: true });
    let attempt = stream_token(&out_a).unwrap();
    a.handle(2, SessionInput::Convo(Input::Token { purpose: TokenFor::Stream(attempt), token: "t".into() }));
    a.handle(3, SessionInput::Convo(Input::StreamOpened { attempt }));
    a.handle(4, SessionInput::Convo(Input::StreamText { attempt, text: "event: ready\ndata: {\"type\":\"ready\",\"conn_id\":\"c\"}\n\n".into() }));
    // B starts, hears A's heartbeat and follows; A hears B's hello.
    let mut to_a = broadcasts(&out_a);
    let out_b = start(&mut b, 5, false);
    let mut to_b = std::mem::take(&mut to_a);
    to_a.extend(broadcasts(&out_b));
    let mut now = 6;
    let mut delivered_b = Vec::new();
    // Let the two talk (channel messages and ticks) until B listens.
    for _ in 0..20 {
        for m in std::mem::take(&mut to_a) {
            to_b.extend(broadcasts(&a.handle(now, SessionInput::Channel(m))));
        }
        to_b.extend(broadcasts(&a.handle(now, SessionInput::TabTick)));
        for m in std::mem::take(&mut to_b) {
            let out = b.handle(now, SessionInput::Channel(m));
            delivered_b.extend(emitted(&out, EventName::Message));
            to_a.extend(broadcasts(&out));
        }
        to_a.extend(broadcasts(&b.handle(now, SessionInput::TabTick)));
        now += 500;
    }
    assert_eq!(b.role(), Role::Follower);
    assert!(stream_token(&b.handle(now, SessionInput::TabTick)).is_none(), "a follower runs no stream");
    // Frames A receives now are relayed to B.
    let out = a.handle(now, SessionInput::Convo(Input::StreamText { attempt, text: format!("{}{}", msg_frame(1), msg_frame(2)) }));
    assert_eq!(emitted(&out, EventName::Message).len(), 2);
    let relayed = broadcasts(&out);
    assert_eq!(relayed.len(), 1, "one envelope for the chunk: {out:?}");
    assert!(!out.iter().any(|x| matches!(x, SessionAction::Convo(Action::Relay { .. }))), "relays are the session's own");
    let out = b.handle(now, SessionInput::Channel(relayed[0].clone()));
    delivered_b.extend(emitted(&out, EventName::Message));
    let ids: Vec<&str> = delivered_b.iter().map(|m| m["message"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m1", "m2"]);
}

/// `close()` tells the others, stops the election's timer, releases the
/// lock and closes the convo; a late lock answer changes nothing.
#[test]
fn close_releases_the_lock_and_ends_the_election() {
    let mut s = tabbed(6, "a");
    let out = start(&mut s, 0, false);
    let epoch = lock_request(&out).unwrap();
    s.handle(1, SessionInput::Lock { epoch, granted: true });
    let out = s.handle(2, SessionInput::Close);
    assert!(out.contains(&SessionAction::ReleaseLock) && out.contains(&SessionAction::ClearTabTimer), "{out:?}");
    assert!(s.is_closed());
    assert!(s.handle(3, SessionInput::Lock { epoch, granted: false }).iter().all(|a| matches!(a, SessionAction::Convo(Action::Log(_)))));
    assert!(s.handle(4, SessionInput::TabTick).is_empty());
    assert!(s.handle(5, SessionInput::Close).is_empty(), "once");
}

fn envelope(tab: &str, gen: u64, body: Body) -> String {
    Envelope { tab: tab.into(), gen, body }.to_json()
}

fn unseq_frame(n: u64) -> String {
    format!(
        "event: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{{\"id\":\"m{n}\",\"content\":\"c{n}\",\"from\":\"ai_agent\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[]}}}}\n\n"
    )
}

/// Answers a reconcile the follower asked for with `ids` (no `seq`).
fn answer_history(f: &mut Session, now: u64, out: &[SessionAction], ids: &[u64]) -> Vec<SessionAction> {
    let req = history_asked(f, now, out);
    f.handle(now, SessionInput::Convo(Input::ReconcileDone { req, status: 200, body: history_body(ids) }))
}

/// A follower that a new leader has not acknowledged yet holds what is
/// relayed (it may have missed frames: here m2, stored while no leader
/// relayed it); once acknowledged, history places everything in order.
/// Found by the session simulator (docs/simulation.md; a server without
/// `seq`): the relayed message went out at once, and the one before it was
/// never delivered.
#[test]
fn a_follower_holds_relays_until_a_new_leader_has_it_listening() {
    let mut f = tabbed(7, "f");
    start(&mut f, 0, false);
    let beat = |ack: Option<&str>, gen, tab: &str| {
        envelope(tab, gen, Body::Heartbeat { visible: true, relay: 1, ack: ack.map(str::to_owned) })
    };
    let out = f.handle(10, SessionInput::Channel(beat(Some("f"), 5, "a")));
    assert_eq!(f.role(), Role::Follower);
    let out = answer_history(&mut f, 11, &out, &[1]);
    let mut delivered: Vec<String> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()).collect();
    // A new leader (b) takes over; its relay of m3 comes before its ack.
    f.handle(20, SessionInput::Channel(beat(None, 6, "b")));
    let out = f.handle(21, SessionInput::Channel(envelope("b", 6, Body::Events { sse: unseq_frame(3) })));
    assert!(emitted(&out, EventName::Message).is_empty(), "held until the new leader has this tab listening");
    let out = f.handle(22, SessionInput::Channel(beat(Some("f"), 6, "b")));
    let out = answer_history(&mut f, 23, &out, &[1, 2, 3]);
    delivered.extend(emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()));
    assert_eq!(delivered, ["m1", "m2", "m3"]);
}

/// `fetchJwt` saying the user is signed out refuses the opening before
/// anything starts: nothing said to the other tabs, and the lock asked for
/// while the token came is let go (granted meanwhile or not).
#[test]
fn a_signed_out_user_is_refused_before_the_convo_starts() {
    for granted_first in [false, true] {
        let mut s = tabbed(8, "a");
        let epoch = lock_request(&s.handle(0, SessionInput::Start { hidden: false })).expect("the lock, with the token");
        // Before the token answers, the tab has not joined: it hears nobody.
        let heartbeat = envelope("b", 5, Body::Heartbeat { visible: true, relay: 0, ack: None });
        assert!(s.handle(1, SessionInput::Channel(heartbeat)).is_empty());
        if granted_first {
            assert!(quiet(&s.handle(1, SessionInput::Lock { epoch, granted: true })), "kept for the election");
        }
        let error = ClientError::new(ErrorCode::Auth, "fetchJwt: signed out: bye");
        let out = s.handle(2, SessionInput::Convo(Input::TokenFailed { purpose: TokenFor::Open, error: error.clone() }));
        assert!(out.contains(&SessionAction::Convo(Action::Opened(Err(error)))), "{out:?}");
        assert!(out.contains(&SessionAction::ReleaseLock), "the lock is let go: {out:?}");
        assert!(lock_request(&out).is_none() && broadcasts(&out).is_empty() && stream_token(&out).is_none());
        // A grant of the withdrawn request makes nobody lead.
        assert!(quiet(&s.handle(3, SessionInput::Lock { epoch, granted: true })));
        assert_eq!(s.role(), Role::Follower);
    }
}

/// Only debug lines: nothing for the glue to do.
fn quiet(out: &[SessionAction]) -> bool {
    out.iter().all(|a| matches!(a, SessionAction::Convo(Action::Log(_))))
}

/// The tab lock is asked for at the opening, after the token: granted
/// while the token comes, the tab leads the moment the token is in (its
/// `role` event, the stream's token asked for, and the hello said), with
/// no second request; an early loss asks again once the election starts.
#[test]
fn the_tab_lock_comes_while_the_token_does() {
    let mut s = tabbed(10, "a");
    let out = s.handle(0, SessionInput::Start { hidden: false });
    assert!(matches!(out[0], SessionAction::Convo(Action::GetToken { purpose: TokenFor::Open, .. })), "the token first: {out:?}");
    let epoch = lock_request(&out).expect("and the lock");
    assert!(quiet(&s.handle(1, SessionInput::Lock { epoch, granted: true })), "nothing before the token");
    assert_eq!(s.role(), Role::Follower);
    let out = s.handle(2, SessionInput::Convo(Input::Token { purpose: TokenFor::Open, token: "t".into() }));
    assert_eq!(emitted(&out, EventName::Role)[0]["role"], "leader", "{out:?}");
    assert!(stream_token(&out).is_some(), "the leader streams at once");
    assert!(lock_request(&out).is_none(), "one request: {out:?}");
    assert!(!broadcasts(&out).is_empty(), "says hello, then leads");
    assert_eq!(s.role(), Role::Leader);

    // Lost (the request failed) before the token: asked for again at the start.
    let mut s = tabbed(11, "b");
    let epoch = lock_request(&s.handle(0, SessionInput::Start { hidden: false })).unwrap();
    assert!(quiet(&s.handle(1, SessionInput::Lock { epoch, granted: false })));
    let out = s.handle(2, SessionInput::Convo(Input::Token { purpose: TokenFor::Open, token: "t".into() }));
    let again = lock_request(&out).expect("asks again");
    assert!(again > epoch && stream_token(&out).is_none(), "{out:?}");
    let out = s.handle(3, SessionInput::Lock { epoch: again, granted: true });
    assert!(stream_token(&out).is_some());

    // Granted, then stolen (another tab's lease ran out) before the token:
    // it does not lead on the lost grant; it asks again.
    let mut s = tabbed(14, "e");
    let epoch = lock_request(&s.handle(0, SessionInput::Start { hidden: false })).unwrap();
    assert!(quiet(&s.handle(1, SessionInput::Lock { epoch, granted: true })));
    assert!(quiet(&s.handle(2, SessionInput::Lock { epoch, granted: false })));
    let out = s.handle(3, SessionInput::Convo(Input::Token { purpose: TokenFor::Open, token: "t".into() }));
    assert!(lock_request(&out).is_some_and(|again| again > epoch), "asks again: {out:?}");
    assert!(stream_token(&out).is_none() && emitted(&out, EventName::Role).is_empty(), "no lead on a lost lock: {out:?}");
    assert_eq!(s.role(), Role::Follower);

    // The page goes away before the token: withdrawn; shown again and
    // given its token, it asks anew.
    let mut s = tabbed(15, "f");
    let epoch = lock_request(&s.handle(0, SessionInput::Start { hidden: false })).unwrap();
    assert!(s.handle(1, SessionInput::PageHide).contains(&SessionAction::ReleaseLock));
    assert!(quiet(&s.handle(2, SessionInput::Lock { epoch, granted: true })), "a late grant of it: nothing");
    s.handle(3, SessionInput::PageShow { visible: true });
    let out = s.handle(4, SessionInput::Convo(Input::Token { purpose: TokenFor::Open, token: "t".into() }));
    assert!(lock_request(&out).is_some_and(|again| again > epoch) && stream_token(&out).is_none(), "{out:?}");

    // Closed before the token: the request is withdrawn.
    let mut s = tabbed(12, "c");
    s.handle(0, SessionInput::Start { hidden: false });
    assert!(s.handle(1, SessionInput::Close).contains(&SessionAction::ReleaseLock));

    // Without Web Locks nothing is asked for early.
    let cfg = ElectionConfig { locks: false, ..ElectionConfig::default() };
    let mut s = Session::new(machine(13), Some(Election::new(cfg, "d")));
    assert!(lock_request(&s.handle(0, SessionInput::Start { hidden: false })).is_none());
}

/// Any other failure starts the convo, and its first token request gets
/// that failure: it backs off, and `fetchJwt` is not called twice at once.
#[test]
fn an_opening_token_failure_that_may_pass_starts_the_convo_backing_off() {
    let mut s = Session::new(machine(9), None);
    s.handle(0, SessionInput::Start { hidden: false });
    let error = ClientError::new(ErrorCode::Network, "fetchJwt failed: offline");
    let out = s.handle(1, SessionInput::Convo(Input::TokenFailed { purpose: TokenFor::Open, error }));
    assert!(stream_token(&out).is_none(), "no second token request at once: {out:?}");
    assert!(out.iter().any(|a| matches!(a, SessionAction::Convo(Action::SetTimer { timer: Timer::Reconnect, .. }))), "{out:?}");
    assert_eq!(emitted(&out, EventName::Error)[0]["error"]["code"], "network");
    assert!(out.contains(&SessionAction::Convo(Action::Opened(Ok(())))), "openConvo resolves, retrying");
    let out = s.handle(2_000, SessionInput::Convo(Input::TimerFired(Timer::Reconnect)));
    assert!(stream_token(&out).is_some(), "the retry asks for a token");
}

/// The token answer for the history a follower asked for; returns the
/// reconcile's request number (not answered yet).
fn history_asked(f: &mut Session, now: u64, out: &[SessionAction]) -> u64 {
    let purpose = out
        .iter()
        .find_map(|a| match a {
            SessionAction::Convo(Action::GetToken { purpose: p @ TokenFor::Reconcile(_), .. }) => Some(*p),
            _ => None,
        })
        .expect("asks for history");
    let out = f.handle(now, SessionInput::Convo(Input::Token { purpose, token: "t".into() }));
    out.iter()
        .find_map(|a| match a {
            SessionAction::Convo(Action::Reconcile { req, .. }) => Some(*req),
            _ => None,
        })
        .unwrap()
}

fn history_body(ids: &[u64]) -> String {
    let msgs: Vec<String> = ids
        .iter()
        .map(|n| format!("{{\"id\":\"m{n}\",\"content\":\"c{n}\",\"from\":\"ai_agent\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[]}}"))
        .collect();
    format!("{{\"messages\":[{}]}}", msgs.join(","))
}

/// A history asked for under the old leader answers after a new leader
/// appeared: it places what it has, and what the new leader relays waits
/// for the history asked for once this tab listens again (found by the
/// session simulator in a million sessions: the old answer ended the new
/// sync, and a relayed message went out past ones it never had).
#[test]
fn a_history_asked_for_under_an_earlier_leader_does_not_end_the_new_sync() {
    let mut f = tabbed(10, "f");
    start(&mut f, 0, false);
    let beat = |ack: Option<&str>, gen, tab: &str| envelope(tab, gen, Body::Heartbeat { visible: true, relay: 1, ack: ack.map(str::to_owned) });
    let out = f.handle(10, SessionInput::Channel(beat(Some("f"), 5, "a")));
    let old = history_asked(&mut f, 11, &out);
    // A new leader, and its relay, before the old history answers.
    f.handle(20, SessionInput::Channel(beat(None, 6, "b")));
    let out = f.handle(21, SessionInput::Channel(envelope("b", 6, Body::Events { sse: unseq_frame(3) })));
    assert!(emitted(&out, EventName::Message).is_empty());
    let out = f.handle(22, SessionInput::Convo(Input::ReconcileDone { req: old, status: 200, body: history_body(&[1]) }));
    let mut delivered: Vec<String> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(delivered, ["m1"], "the old history places only its own");
    let out = f.handle(23, SessionInput::Channel(beat(Some("f"), 6, "b")));
    let new = history_asked(&mut f, 24, &out);
    let out = f.handle(25, SessionInput::Convo(Input::ReconcileDone { req: new, status: 200, body: history_body(&[1, 2, 3]) }));
    delivered.extend(emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()));
    assert_eq!(delivered, ["m1", "m2", "m3"]);
}
