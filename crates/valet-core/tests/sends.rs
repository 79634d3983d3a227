//! Sends through the convo machine's outbox, a follower's status, and a
//! reconnect cut short when the server shows it is back: driven natively.

use serde_json::Value;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, Timer, TokenFor};
use valet_core::error::ErrorCode;
use valet_core::events::EventName;
use valet_core::outbox::Outgoing;
use valet_core::send::SendOutcome;

struct H {
    m: ConvoMachine,
    now: u64,
}

impl H {
    fn new() -> Self {
        H { m: ConvoMachine::new(ConvoConfig::new("agent", "convo"), 7), now: 1_000_000 }
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        self.m.handle(self.now, input)
    }

    /// Queues a send; returns the actions.
    fn send(&mut self, id: u64, text: &str) -> Vec<Action> {
        self.feed(Input::Send { id, key: None, what: Outgoing::Message { text: text.into(), files: false, draft: None }, detached: false })
    }

    /// Answers a send's token request with `tok`; returns the post's body.
    fn token(&mut self, id: u64, tok: &str) -> Value {
        let out = self.feed(Input::Token { purpose: TokenFor::Send(id), token: tok.into() });
        let json = out
            .iter()
            .find_map(|a| match a {
                Action::Post { id: x, token, json } if *x == id => {
                    assert_eq!(token, tok);
                    Some(json.clone())
                }
                _ => None,
            })
            .expect("a post");
        serde_json::from_str(&json).unwrap()
    }

    fn answer(&mut self, id: u64, outcome: SendOutcome) -> Vec<Action> {
        self.feed(Input::Posted { id, outcome, body: String::new() })
    }
}

fn http(status: u16, body: &str) -> SendOutcome {
    SendOutcome::Http { status, retry_after: None, body: body.into() }
}

fn token_asked(out: &[Action], id: u64) -> Option<Option<String>> {
    out.iter().find_map(|a| match a {
        Action::GetToken { purpose: TokenFor::Send(x), reject } if *x == id => Some(reject.clone()),
        _ => None,
    })
}

/// The history request `out` asks a token for, if any.
fn reconcile_asked(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|x| match x {
        Action::GetToken { purpose: TokenFor::Reconcile(n), .. } => Some(*n),
        _ => None,
    })
}

/// The stream attempt `out` asks a token for, if any.
fn stream_asked(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|x| match x {
        Action::GetToken { purpose: TokenFor::Stream(n), .. } => Some(*n),
        _ => None,
    })
}

/// A `message` frame of the stream: message `m{seq}` from `from`, event id `seq`.
fn message_frame(seq: u64, from: &str) -> String {
    format!("id: {seq}\nevent: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{{\"id\":\"m{seq}\",\"content\":\"c\",\"from\":\"{from}\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"seq\":{seq}}}}}\n\n")
}

fn settled(out: &[Action], id: u64) -> Option<Result<(), valet_core::error::ClientError>> {
    out.iter().find_map(|a| match a {
        Action::SendSettled { id: x, result } if *x == id => Some(result.clone().map(|_| ())),
        _ => None,
    })
}

/// The messages `out` delivers: their ids, and whether each came as history.
fn delivered_as(out: &[Action]) -> Vec<(String, bool)> {
    out.iter()
        .flat_map(|x| match x {
            Action::Emit { event: EventName::Message, payload } => vec![serde_json::from_str::<Value>(payload).unwrap()],
            Action::EmitMany { event: EventName::Message, json_array, .. } => serde_json::from_str::<Vec<Value>>(json_array).unwrap(),
            _ => vec![],
        })
        .map(|v| (v["message"]["id"].as_str().unwrap().to_owned(), v["from_reconcile"] == true))
        .collect()
}

fn reconnect_delay(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        Action::SetTimer { timer: Timer::Reconnect, delay_ms } => Some(*delay_ms),
        _ => None,
    })
}

fn outbox_timer(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        Action::SetTimer { timer: Timer::Outbox, delay_ms } => Some(*delay_ms),
        _ => None,
    })
}

#[test]
fn sends_go_one_at_a_time_in_order_each_with_its_own_key_kept_across_retries() {
    let mut h = H::new();
    assert!(token_asked(&h.send(1, "first"), 1).is_some());
    assert!(token_asked(&h.send(2, "second"), 2).is_none(), "the second waits for the first");
    let body1 = h.token(1, "t");
    assert_eq!(body1["text"], "first");
    let key1 = body1["idempotency_key"].as_str().unwrap().to_owned();
    // No answer (network): held, not failed; the retry carries the same key.
    let out = h.answer(1, SendOutcome::Network("offline".into()));
    assert!(settled(&out, 1).is_none(), "a network failure does not fail the send");
    assert!(outbox_timer(&out).is_some());
    h.now += 60_000;
    let out = h.feed(Input::TimerFired(Timer::Outbox));
    assert!(token_asked(&out, 1).is_some());
    assert_eq!(h.token(1, "t")["idempotency_key"], key1.as_str());
    let out = h.answer(1, http(503, ""));
    assert!(settled(&out, 1).is_none(), "nor does a 5xx");
    h.now += 60_000;
    h.feed(Input::TimerFired(Timer::Outbox));
    assert_eq!(h.token(1, "t")["idempotency_key"], key1.as_str());
    let out = h.answer(1, SendOutcome::Ok);
    assert_eq!(settled(&out, 1), Some(Ok(())));
    assert!(token_asked(&out, 2).is_some(), "then the second goes");
    let body2 = h.token(2, "t");
    assert_eq!(body2["text"], "second");
    assert_ne!(body2["idempotency_key"], key1.as_str());
    assert_eq!(settled(&h.answer(2, SendOutcome::Ok), 2), Some(Ok(())));
    assert_eq!(h.m.metrics().queued_sends, 0);
}

#[test]
fn a_held_queue_goes_at_once_when_the_server_is_back() {
    let status = "event: status\ndata: {\"status\":\"connected\",\"attempt\":2}\n\n";
    for back in [Input::Online, Input::Relayed { sse: status.into() }] {
        let mut h = H::new();
        h.feed(Input::Standby); // a follower: the leader's status says when the server is back
        h.send(1, "hi");
        h.token(1, "t");
        h.answer(1, SendOutcome::Network("down".into()));
        let out = h.feed(back.clone());
        assert!(token_asked(&out, 1).is_some(), "{back:?} flushes the queue");
        assert!(out.iter().any(|a| matches!(a, Action::ClearTimer(Timer::Outbox))));
    }
}

#[test]
fn rate_limits_wait_the_servers_delay_and_three_fail_with_rate_limited() {
    let mut h = H::new();
    h.send(1, "hi");
    h.token(1, "t");
    let body = r#"{"status":"rate_limited","convo_id":"convo","state":"open","retry_after_seconds":7}"#;
    let out = h.answer(1, http(429, body));
    assert_eq!(outbox_timer(&out), Some(7_000), "the body's retry_after_seconds");
    assert!(settled(&out, 1).is_none());
    h.feed(Input::TimerFired(Timer::Outbox));
    h.token(1, "t");
    h.answer(1, http(429, body));
    h.feed(Input::TimerFired(Timer::Outbox));
    h.token(1, "t");
    let e = settled(&h.answer(1, http(429, body)), 1).unwrap().unwrap_err();
    assert_eq!((e.code, e.retry_after_seconds, e.maybe_stored), (ErrorCode::RateLimited, Some(7), None));
    // A wait over a minute fails at once: the app decides.
    h.send(2, "later");
    h.token(2, "t");
    let e = settled(&h.answer(2, http(429, r#"{"retry_after_seconds":120}"#)), 2).unwrap().unwrap_err();
    assert_eq!((e.code, e.retry_after_seconds), (ErrorCode::RateLimited, Some(120)));
}

/// A 429's wait is the server's: a sign that the server is reachable (the
/// browser online, the leader connected, the stream's `ready`) does not
/// cut it short, as it does a wait after a network failure.
#[test]
fn a_rate_limited_send_waits_even_when_the_server_shows_it_is_back() {
    let status = "event: status\ndata: {\"status\":\"connected\",\"attempt\":2}\n\n";
    for back in [Input::Online, Input::Relayed { sse: status.into() }] {
        let mut h = H::new();
        h.feed(Input::Standby);
        h.send(1, "hi");
        h.token(1, "t");
        let out = h.answer(1, http(429, r#"{"retry_after_seconds":1}"#));
        assert_eq!(outbox_timer(&out), Some(1_000));
        let out = h.feed(back.clone());
        assert!(token_asked(&out, 1).is_none(), "{back:?} does not cut the server's wait short");
        assert!(!out.iter().any(|a| matches!(a, Action::ClearTimer(Timer::Outbox))));
        let out = h.feed(Input::TimerFired(Timer::Outbox));
        assert!(token_asked(&out, 1).is_some(), "the timer ends it");
        h.token(1, "t");
        assert_eq!(settled(&h.answer(1, SendOutcome::Ok), 1), Some(Ok(())));
    }
}

#[test]
fn unauthorized_refreshes_the_token_and_refusals_fail_without_maybe_stored() {
    let mut h = H::new();
    h.send(1, "hi");
    h.token(1, "old");
    let out = h.answer(1, http(401, ""));
    assert_eq!(token_asked(&out, 1), Some(Some("old".into())), "the refused token is rejected");
    h.token(1, "new");
    let e = settled(&h.answer(1, http(413, r#"{"code":"text_too_long"}"#)), 1).unwrap().unwrap_err();
    assert_eq!((e.code, e.status, e.maybe_stored), (ErrorCode::Http, Some(413), None), "refused: not stored");
    // A send that had an unanswered attempt says it may be stored.
    h.send(2, "again");
    h.token(2, "new");
    h.answer(2, SendOutcome::Network("x".into()));
    h.feed(Input::Online);
    h.token(2, "new");
    let e = settled(&h.answer(2, http(400, "")), 2).unwrap().unwrap_err();
    assert_eq!(e.maybe_stored, Some(true));
}

#[test]
fn an_abort_settles_a_queued_send_and_lets_the_next_go() {
    let mut h = H::new();
    h.send(1, "one");
    h.send(2, "two");
    h.send(3, "three");
    let e = settled(&h.feed(Input::CancelSend { id: 2 }), 2).unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::Aborted);
    // The head is on the wire: that attempt decides.
    assert!(settled(&h.feed(Input::CancelSend { id: 1 }), 1).is_none());
    h.token(1, "t");
    let out = h.answer(1, SendOutcome::Ok);
    assert_eq!(settled(&out, 1), Some(Ok(())), "stored: too late to abort");
    assert!(token_asked(&out, 3).is_some(), "three goes next, two was dropped");
    assert_eq!(h.token(3, "t")["text"], "three");
    // Aborted while held after an unanswered attempt: maybe stored.
    let out = h.answer(3, SendOutcome::Network("x".into()));
    assert!(outbox_timer(&out).is_some());
    let e = settled(&h.feed(Input::CancelSend { id: 3 }), 3).unwrap().unwrap_err();
    assert_eq!((e.code, e.maybe_stored), (ErrorCode::Aborted, Some(true)));
}

#[test]
fn close_settles_every_queued_send_with_closed() {
    let mut h = H::new();
    h.send(1, "one");
    h.send(2, "two");
    h.token(1, "t");
    // One is on the wire (its answer may yet store it), two waits behind it.
    let out = h.feed(Input::Close);
    let errors = [1, 2].map(|id| settled(&out, id).unwrap().unwrap_err());
    assert!(errors.iter().all(|e| e.code == ErrorCode::Closed));
    // Found by the session simulator: the post on the wire was stored.
    assert_eq!(errors[0].maybe_stored, Some(true), "one was on the wire");
    assert_eq!(errors[1].maybe_stored, None, "two never left");
}

#[test]
fn a_detached_send_that_fails_is_reported_as_an_error_event() {
    let mut h = H::new();
    h.feed(Input::Send { id: 1, key: None, what: Outgoing::Message { text: "hi".into(), files: false, draft: None }, detached: true });
    h.token(1, "t");
    let out = h.answer(1, http(404, ""));
    let ev = out.iter().find_map(|a| match a {
        Action::Emit { event: EventName::Error, payload } => Some(serde_json::from_str::<Value>(payload).unwrap()),
        _ => None,
    });
    let ev = ev.expect("an error event");
    assert_eq!((ev["phase"].as_str(), ev["stage"].as_str()), (Some("fetch"), Some("send")));
    assert_eq!(ev["error"]["status"], 404);
}

#[test]
fn files_are_uploaded_first_and_the_draft_id_goes_with_the_text() {
    let mut h = H::new();
    h.feed(Input::Send { id: 1, key: None, what: Outgoing::Message { text: "see attached".into(), files: true, draft: None }, detached: false });
    let out = h.feed(Input::Token { purpose: TokenFor::Send(1), token: "t".into() });
    assert!(out.iter().any(|a| matches!(a, Action::Upload { id: 1, .. })));
    let out = h.feed(Input::Posted { id: 1, outcome: SendOutcome::Ok, body: r#"{"message_id":"draft-1"}"#.into() });
    assert!(token_asked(&out, 1).is_some());
    let body = h.token(1, "t");
    assert_eq!((body["text"].as_str(), body["message_id"].as_str()), (Some("see attached"), Some("draft-1")));
}

#[test]
fn upload_files_settles_with_the_draft_id_and_a_later_send_finalizes_it() {
    let mut h = H::new();
    h.feed(Input::Send { id: 1, key: None, what: Outgoing::Upload, detached: false });
    let out = h.feed(Input::Token { purpose: TokenFor::Send(1), token: "t".into() });
    assert!(out.iter().any(|a| matches!(a, Action::Upload { id: 1, .. })));
    // A 401 on the upload refreshes the token and uploads again.
    let out = h.answer(1, http(401, ""));
    assert_eq!(token_asked(&out, 1), Some(Some("t".into())));
    h.feed(Input::Token { purpose: TokenFor::Send(1), token: "t2".into() });
    let out = h.feed(Input::Posted { id: 1, outcome: SendOutcome::Ok, body: r#"{"message_id":"draft-9"}"#.into() });
    let settled = out.iter().find_map(|a| match a {
        Action::SendSettled { id: 1, result } => Some(result.clone()),
        _ => None,
    });
    assert_eq!(settled, Some(Ok(Some("draft-9".into()))), "settles with the draft, posts nothing");
    assert!(!out.iter().any(|a| matches!(a, Action::Post { .. })));
    // The text that goes with it: no upload, the draft id in the body.
    h.feed(Input::Send {
        id: 2,
        key: None,
        what: Outgoing::Message { text: "here it is".into(), files: false, draft: Some("draft-9".into()) },
        detached: false,
    });
    let body = h.token(2, "t2");
    assert_eq!((body["text"].as_str(), body["message_id"].as_str()), (Some("here it is"), Some("draft-9")));
}

/// Drives the machine to a long backoff: connected once, then the stream
/// failing again and again.
fn in_long_backoff(h: &mut H) -> u64 {
    let out = h.feed(Input::Start);
    let mut attempt = stream_asked(&out).unwrap();
    let mut delay = 0;
    for _ in 0..10 {
        h.feed(Input::Token { purpose: TokenFor::Stream(attempt), token: "t".into() });
        let out = h.feed(Input::StreamFailed { attempt, message: "down".into() });
        delay = reconnect_delay(&out).unwrap();
        h.now += delay;
        h.feed(Input::TimerFired(Timer::Reconnect));
        attempt += 1;
    }
    h.feed(Input::Token { purpose: TokenFor::Stream(attempt), token: "t".into() });
    let out = h.feed(Input::StreamFailed { attempt, message: "down".into() });
    let d = reconnect_delay(&out).unwrap();
    assert!(d >= 10_000, "a long backoff ({delay} before)");
    d
}

#[test]
fn a_long_backoff_is_cut_short_by_online_or_a_rest_success_still_jittered() {
    let mut h = H::new();
    in_long_backoff(&mut h);
    let out = h.feed(Input::Online);
    let soon = reconnect_delay(&out);
    assert!(soon.expect("rescheduled") < 1000, "online: reconnect within the jitter window");

    let mut h = H::new();
    in_long_backoff(&mut h);
    h.send(1, "hi");
    h.token(1, "t");
    let out = h.answer(1, SendOutcome::Ok);
    let soon = reconnect_delay(&out);
    assert!(soon.expect("rescheduled") < 1000, "a send succeeded: the server is back");
    // A failed REST call changes nothing.
    let mut h = H::new();
    in_long_backoff(&mut h);
    h.send(1, "hi");
    h.token(1, "t");
    let out = h.answer(1, http(503, ""));
    assert_eq!(reconnect_delay(&out), None);
}

#[test]
fn a_leader_announces_its_status_to_a_joining_tab_and_a_follower_reports_it() {
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.relay = true;
    let mut leader = ConvoMachine::new(cfg, 1);
    let out = leader.handle(1, Input::Lead);
    assert!(out.iter().any(|a| matches!(a, Action::GetToken { .. })));
    let out = leader.handle(2, Input::Announce);
    let relayed = out.iter().find_map(|a| match a {
        Action::Relay { sse } => Some(sse.clone()),
        _ => None,
    });
    let relayed = relayed.expect("the status is relayed");
    let data = relayed.strip_prefix("event: status\ndata: ").and_then(|d| d.strip_suffix("\n\n")).expect("one status event");
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["status"], "connecting");

    let mut follower = ConvoMachine::new(ConvoConfig::new("agent", "convo"), 2);
    follower.handle(1, Input::Standby);
    let out = follower.handle(2, Input::Relayed { sse: "event: status\ndata: {\"status\":\"connected\",\"attempt\":1}\n\n".into() });
    assert!(out.iter().any(|a| matches!(a, Action::Emit { event: EventName::Status, .. })));
    assert_eq!(serde_json::to_value(follower.status()).unwrap(), "connected");
    // A standby tab does not announce (it has no stream of its own).
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.relay = true;
    let mut f = ConvoMachine::new(cfg, 3);
    f.handle(1, Input::Standby);
    assert!(f.handle(2, Input::Announce).is_empty());
}

#[test]
fn a_resumed_tab_delivers_what_an_earlier_page_had_as_history_and_resumes_the_stream_from_its_last_event() {
    use valet_core::convo::ResumePoint;
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.resume = Some(ResumePoint { id: Some("m2".into()), seq: Some(2), event_id: Some("2".into()) });
    let mut m = ConvoMachine::new(cfg, 1);
    let out = m.handle(1, Input::Start);
    let a = stream_asked(&out).unwrap();
    // The history asked for with the stream (no history is in yet).
    let early = reconcile_asked(&out);
    let out = m.handle(2, Input::Token { purpose: TokenFor::Stream(a), token: "t".into() });
    assert!(
        out.iter().any(|x| matches!(x, Action::OpenStream { last_event_id: Some(id), .. } if id == "2")),
        "resumes from the last event"
    );
    m.handle(3, Input::StreamOpened { attempt: a });
    let out = m.handle(4, Input::StreamText { attempt: a, text: "event: ready\ndata: {\"conn_id\":\"c\"}\n\n".into() });
    let req = reconcile_asked(&out).or(early).unwrap();
    // The server replays m2 (already delivered before the reload) and m3 (new) live.
    let frame = |s: u64| message_frame(s, "appuser");
    m.handle(5, Input::StreamText { attempt: a, text: format!("{}{}", frame(2), frame(3)) });
    m.handle(6, Input::Token { purpose: TokenFor::Reconcile(req), token: "t".into() });
    let hist: Vec<String> = (1..=3)
        .map(|s| format!("{{\"id\":\"m{s}\",\"content\":\"c\",\"from\":\"appuser\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"seq\":{s}}}"))
        .collect();
    let out = m.handle(7, Input::ReconcileDone { req, status: 200, body: format!("{{\"messages\":[{}]}}", hist.join(",")) });
    let delivered = delivered_as(&out);
    assert_eq!(
        delivered,
        vec![("m1".into(), true), ("m2".into(), true), ("m3".into(), false)],
        "m2 came live but the earlier page had it: history; m3 is new"
    );
    // Where it is now, for the next page.
    let out = m.handle(8, Input::PageHide);
    let persisted = out.iter().find_map(|x| match x {
        Action::Persist(json) => Some(serde_json::from_str::<ResumePoint>(json).unwrap()),
        _ => None,
    });
    assert_eq!(persisted, Some(ResumePoint { id: Some("m3".into()), seq: Some(3), event_id: Some("3".into()) }));
}

/// The resume point is stored at most once a second, and at `pagehide`;
/// the opening's first delivery starts that clock without storing (its
/// messages reach the app before any storage write).
#[test]
fn the_resume_point_is_stored_a_second_after_the_first_delivery_and_at_pagehide() {
    let persisted = |out: &[Action]| {
        out.iter().find_map(|x| match x {
            Action::Persist(json) => Some(serde_json::from_str::<Value>(json).unwrap()["id"].clone()),
            _ => None,
        })
    };
    let frame = |s: u64| message_frame(s, "ai_agent");
    // Times as the browser gives them (Unix ms).
    const T: u64 = 1_800_000_000_000;
    let mut m = ConvoMachine::new(ConvoConfig::new("agent", "convo"), 1);
    let out = m.handle(T + 1, Input::Start);
    let a = stream_asked(&out).unwrap();
    m.handle(T + 2, Input::Token { purpose: TokenFor::Stream(a), token: "t".into() });
    m.handle(T + 3, Input::StreamOpened { attempt: a });
    let out = m.handle(T + 4, Input::StreamText { attempt: a, text: format!("event: ready\ndata: {{\"conn_id\":\"c\"}}\n\n{}", frame(1)) });
    assert_eq!(delivered_as(&out), vec![("m1".into(), false)]);
    assert_eq!(persisted(&out), None, "the first delivery stores nothing");
    let out = m.handle(T + 900, Input::StreamText { attempt: a, text: frame(2) });
    assert_eq!(delivered_as(&out).len(), 1);
    assert_eq!(persisted(&out), None, "within a second of it: nothing either");
    let out = m.handle(T + 1004, Input::StreamText { attempt: a, text: frame(3) });
    assert_eq!(persisted(&out), Some(Value::from("m3")), "a second after it: stored");
    let out = m.handle(T + 1100, Input::StreamText { attempt: a, text: frame(4) });
    assert_eq!(persisted(&out), None);
    let out = m.handle(T + 1200, Input::PageHide);
    assert_eq!(persisted(&out), Some(Value::from("m4")), "and where it is at pagehide");
}

/// What came while the tab was away is new to the user however it comes:
/// here the history asked for with the stream answers before the stream
/// replays anything, with and without `seq`.
#[test]
fn a_resumed_tab_delivers_what_came_during_the_reload_live_when_the_history_brings_it() {
    use valet_core::convo::ResumePoint;
    for with_seq in [true, false] {
        let mut cfg = ConvoConfig::new("agent", "convo");
        cfg.resume = Some(ResumePoint { id: Some("m2".into()), seq: with_seq.then_some(2), event_id: Some("2".into()) });
        let mut m = ConvoMachine::new(cfg, 1);
        let out = m.handle(1, Input::Start);
        let early = reconcile_asked(&out).expect("the history is asked for with the stream");
        m.handle(2, Input::Token { purpose: TokenFor::Reconcile(early), token: "t".into() });
        let seq = |s: u64| if with_seq { format!(",\"seq\":{s}") } else { String::new() };
        let hist: Vec<String> = (1..=4)
            .map(|s| format!("{{\"id\":\"m{s}\",\"content\":\"c\",\"from\":\"appuser\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[]{}}}", seq(s)))
            .collect();
        let out = m.handle(3, Input::ReconcileDone { req: early, status: 200, body: format!("{{\"messages\":[{}]}}", hist.join(",")) });
        let delivered = delivered_as(&out);
        assert_eq!(
            delivered,
            vec![("m1".into(), true), ("m2".into(), true), ("m3".into(), false), ("m4".into(), false)],
            "the earlier page had m1 and m2; m3 and m4 came during the reload (seq: {with_seq})"
        );
    }
}

/// A send made while `fetchJwt` fails (the device offline at the opening)
/// waits in the outbox for as long as the failures may pass, and goes out
/// once, with its key, when a token comes; the app's "signed out" (`auth`)
/// fails the send at once.
#[test]
fn a_send_waits_through_token_failures_that_may_pass() {
    let mut h = H::new();
    let out = h.send(1, "queued offline");
    assert!(token_asked(&out, 1).is_some());
    let mut key = None;
    for i in 0..30 {
        let code = [ErrorCode::Network, ErrorCode::Timeout, ErrorCode::Protocol][i % 3];
        let out = h.feed(Input::TokenFailed { purpose: TokenFor::Send(1), error: valet_core::error::ClientError::new(code, "down") });
        assert!(settled(&out, 1).is_none(), "still pending after {} failures", i + 1);
        assert!(outbox_timer(&out).is_some(), "held, retried later");
        h.now += 20_000;
        let out = h.feed(Input::TimerFired(Timer::Outbox));
        assert!(token_asked(&out, 1).is_some(), "asks again");
    }
    let body = h.token(1, "t");
    key.get_or_insert(body["idempotency_key"].clone());
    assert_eq!(body["text"], "queued offline");
    assert_eq!(settled(&h.answer(1, SendOutcome::Ok), 1), Some(Ok(())));

    let out = h.send(2, "signed out");
    assert!(token_asked(&out, 2).is_some());
    let out = h.feed(Input::TokenFailed { purpose: TokenFor::Send(2), error: valet_core::error::ClientError::new(ErrorCode::Auth, "signed out") });
    assert_eq!(settled(&out, 2).unwrap().unwrap_err().code, ErrorCode::Auth);
}
