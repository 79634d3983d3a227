//! The convo machine, driven natively: one test per JS SDK defect that
//! concerns one tab, and generated fault sequences checked for invariants.

use proptest::prelude::*;
use serde_json::Value;
use valet_core::convo::{Action, ConvoConfig, ConvoMachine, Input, Timer, TokenFor};
use valet_core::error::{ClientError, ErrorCode};
use valet_core::events::EventName;
use valet_core::outbox::Outgoing;
use valet_core::send::SendOutcome;

const T1: &str = "tok-1";

struct Harness {
    m: ConvoMachine,
    now: u64,
    log: Vec<Action>,
}

impl Harness {
    fn new(seed: u64) -> Self {
        let mut cfg = ConvoConfig::new("agent", "convo");
        cfg.stall_timeout_ms = 1000;
        Harness { m: ConvoMachine::new(cfg, seed), now: 1_000_000, log: Vec::new() }
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        let out = self.m.handle(self.now, input);
        self.log.extend(out.iter().cloned());
        out
    }

    /// Start and connect to `ready`, answering the token and the (empty) reconcile.
    fn connect(&mut self) -> u64 {
        let out = self.feed(Input::Start);
        let (attempt, reconcile) = self.until_ready(&out);
        if let Some(req) = reconcile {
            let out = self.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
            assert!(out.iter().any(|a| matches!(a, Action::Reconcile { .. })));
            self.feed(Input::ReconcileDone { req, status: 200, body: r#"{"messages":[]}"#.into() });
        }
        attempt
    }

    /// Answers the stream token `out` asks for, opens the stream and reads
    /// `ready`: the attempt, and the reconcile request in flight (made with
    /// the first stream, or by `ready`), if any. A history asked for with
    /// the stream (before any history is in) answers first, empty.
    fn until_ready(&mut self, out: &[Action]) -> (u64, Option<u64>) {
        let attempt = stream_token_request(out).expect("asks for a token");
        let mut early = reconcile_token_request(out);
        if let Some(req) = early.take() {
            let out = self.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
            assert!(out.iter().any(|a| matches!(a, Action::Reconcile { .. })));
            self.feed(Input::ReconcileDone { req, status: 200, body: r#"{"messages":[]}"#.into() });
        }
        let out = self.feed(Input::Token { purpose: TokenFor::Stream(attempt), token: T1.into() });
        assert!(out.iter().any(|a| matches!(a, Action::OpenStream { attempt: x, .. } if *x == attempt)));
        self.feed(Input::StreamOpened { attempt });
        let out = self.bytes(attempt, "event: ready\ndata: {\"conn_id\":\"c1\"}\n\n");
        (attempt, reconcile_token_request(&out).or(early))
    }

    fn bytes(&mut self, attempt: u64, s: &str) -> Vec<Action> {
        self.feed(Input::StreamText { attempt, text: s.to_owned() })
    }
}

fn stream_token_request(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        Action::GetToken { purpose: TokenFor::Stream(n), .. } => Some(*n),
        _ => None,
    })
}

fn reconcile_token_request(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        Action::GetToken { purpose: TokenFor::Reconcile(n), .. } => Some(*n),
        _ => None,
    })
}

fn reconnect_delay(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        Action::SetTimer { timer: Timer::Reconnect, delay_ms } => Some(*delay_ms),
        _ => None,
    })
}

fn emitted(out: &[Action], name: EventName) -> Vec<Value> {
    out.iter()
        .flat_map(|a| match a {
            Action::Emit { event, payload } if *event == name => {
                vec![serde_json::from_str(payload).unwrap()]
            }
            Action::EmitMany { event, json_array, count } if *event == name => {
                let v: Vec<Value> = serde_json::from_str(json_array).unwrap();
                assert_eq!(v.len(), *count);
                v
            }
            _ => vec![],
        })
        .collect()
}

fn msg_frame(seq: u64) -> String {
    format!(
        "event: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{{\"id\":\"m{seq}\",\"content\":\"c{seq}\",\"from\":\"appuser\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"seq\":{seq}}}}}\n\n"
    )
}

fn history(seqs: impl IntoIterator<Item = u64>) -> String {
    let msgs: Vec<String> = seqs
        .into_iter()
        .map(|s| format!("{{\"id\":\"m{s}\",\"content\":\"c{s}\",\"from\":\"ai_agent\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"seq\":{s}}}"))
        .collect();
    format!("{{\"messages\":[{}]}}", msgs.join(","))
}

// Defect 1: the status of a refused stream decides what happens.

#[test]
fn not_found_stops_with_an_error_and_no_retry() {
    let mut h = Harness::new(1);
    let out = h.feed(Input::Start);
    let a = stream_token_request(&out).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
    let out = h.feed(Input::StreamRefused {
        attempt: a,
        status: 404,
        retry_after: None,
        body: r#"{"code":"convo_not_found","message":"no such convo"}"#.into(),
    });
    assert_eq!(reconnect_delay(&out), None, "no retry loop");
    let errors = emitted(&out, EventName::Error);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0]["phase"].as_str(), errors[0]["stage"].as_str()), (Some("stream"), Some("connect")));
    assert_eq!(errors[0]["error"]["code"], "http");
    assert_eq!(errors[0]["error"]["status"], 404);
    let body: serde_json::Value = serde_json::from_str(errors[0]["error"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["code"], "convo_not_found", "the body as JSON text (JS parses it)");
    assert_eq!(emitted(&out, EventName::Status).last().unwrap()["status"], "stopped");
    // Timers firing later do nothing.
    assert!(h.feed(Input::TimerFired(Timer::Reconnect)).iter().all(|a| !matches!(a, Action::GetToken { .. })));
}

#[test]
fn too_many_requests_waits_retry_after_body_value_first() {
    let mut h = Harness::new(2);
    let out = h.feed(Input::Start);
    let a = stream_token_request(&out).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
    let out = h.feed(Input::StreamRefused {
        attempt: a,
        status: 429,
        retry_after: Some("30".into()),
        body: r#"{"retry_after_seconds":7}"#.into(),
    });
    let d = reconnect_delay(&out).unwrap();
    assert!((7000..7500).contains(&d), "waited 7 s (+jitter): {d}");
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    let a2 = stream_token_request(&out).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Stream(a2), token: T1.into() });
    let out = h.feed(Input::StreamRefused { attempt: a2, status: 429, retry_after: Some("600".into()), body: String::new() });
    assert!(reconnect_delay(&out).unwrap() <= 30_500, "Retry-After is capped");
}

/// A stream refused at the cap waits the server's `Retry-After`: a sign
/// that the server is reachable (the history answered, a send stored, the
/// browser online) does not cut that wait short, as it does a wait after
/// a network failure (each early try would be refused again, and told to
/// wait again).
#[test]
fn a_stream_refused_at_the_cap_waits_even_when_the_server_shows_it_is_back() {
    let mut h = Harness::new(4);
    let out = h.feed(Input::Start);
    let a = stream_token_request(&out).unwrap();
    let history = reconcile_token_request(&out).expect("the history asked for with the stream");
    h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
    let out = h.feed(Input::StreamRefused { attempt: a, status: 429, retry_after: Some("30".into()), body: String::new() });
    assert!(reconnect_delay(&out).unwrap() >= 30_000);
    h.now += 1_000;
    h.feed(Input::Token { purpose: TokenFor::Reconcile(history), token: T1.into() });
    let out = h.feed(Input::ReconcileDone { req: history, status: 200, body: r#"{"messages":[]}"#.into() });
    assert_eq!(reconnect_delay(&out), None, "the history's answer does not cut the wait short");
    h.now += 1_000;
    let out = h.feed(Input::Online);
    assert_eq!(reconnect_delay(&out), None, "nor the browser online");
    h.feed(Input::Send { id: 1, key: None, what: Outgoing::Message { text: "hi".into(), files: false, draft: None }, detached: false });
    h.feed(Input::Token { purpose: TokenFor::Send(1), token: T1.into() });
    let out = h.feed(Input::Posted { id: 1, outcome: SendOutcome::Ok, body: String::new() });
    assert_eq!(reconnect_delay(&out), None, "nor a send stored");
    assert!(h.log.iter().filter_map(|a| match a {
        Action::GetToken { purpose: TokenFor::Stream(n), .. } => Some(*n),
        _ => None,
    }).all(|n| n == a), "no second stream asked for");
    // The timer ends the wait.
    h.now += 28_500;
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    assert!(stream_token_request(&out).is_some());
}

#[test]
fn unauthorized_rejects_the_token_and_three_in_a_row_stop_with_auth() {
    let mut h = Harness::new(3);
    let mut out = h.feed(Input::Start);
    for i in 1..=3 {
        let a = stream_token_request(&out).unwrap();
        let token = format!("tok-{i}");
        h.feed(Input::Token { purpose: TokenFor::Stream(a), token: token.clone() });
        let refused = h.feed(Input::StreamRefused { attempt: a, status: 401, retry_after: None, body: String::new() });
        if i < 3 {
            let d = reconnect_delay(&refused).expect("retries");
            assert!(d < 500, "at once (with jitter)");
            out = h.feed(Input::TimerFired(Timer::Reconnect));
            let reject = out.iter().find_map(|a| match a {
                Action::GetToken { reject, .. } => Some(reject.clone()),
                _ => None,
            });
            assert_eq!(reject, Some(Some(token)), "the refused token is rejected, forcing a refresh");
        } else {
            assert_eq!(reconnect_delay(&refused), None);
            let errors = emitted(&refused, EventName::Error);
            assert_eq!((errors[0]["phase"].as_str(), errors[0]["error"]["code"].as_str()), (Some("auth"), Some("auth")));
        }
    }
}

/// "In a row": a stream the server opened in between starts the count again,
/// so 401s spread over a long session (a token revoked now and then) never
/// add up to a stop.
#[test]
fn unauthorized_counts_start_again_after_a_stream_opened() {
    let mut h = Harness::new(4);
    let mut out = h.feed(Input::Start);
    for round in 0..3 {
        for _ in 0..2 {
            let a = stream_token_request(&out).unwrap();
            h.feed(Input::Token { purpose: TokenFor::Stream(a), token: format!("tok-{round}") });
            let refused = h.feed(Input::StreamRefused { attempt: a, status: 401, retry_after: None, body: String::new() });
            assert!(reconnect_delay(&refused).is_some(), "two 401s in a row retry");
            out = h.feed(Input::TimerFired(Timer::Reconnect));
        }
        let a = stream_token_request(&out).unwrap();
        h.feed(Input::Token { purpose: TokenFor::Stream(a), token: format!("good-{round}") });
        h.feed(Input::StreamOpened { attempt: a });
        out = h.feed(Input::StreamFailed { attempt: a, message: "reset".into() });
        assert!(reconnect_delay(&out).is_some(), "a failure after an opening retries");
        out = h.feed(Input::TimerFired(Timer::Reconnect));
    }
    assert!(emitted(&h.log, EventName::Status).iter().all(|s| s["status"] != "stopped"), "never stopped");
}

#[test]
fn server_errors_and_network_failures_back_off_exponentially() {
    let mut h = Harness::new(4);
    let mut out = h.feed(Input::Start);
    let mut delays = Vec::new();
    for i in 0..6 {
        let a = stream_token_request(&out).unwrap();
        h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
        let r = if i % 2 == 0 {
            h.feed(Input::StreamRefused { attempt: a, status: 503, retry_after: None, body: String::new() })
        } else {
            h.feed(Input::StreamFailed { attempt: a, message: "connection refused".into() })
        };
        delays.push(reconnect_delay(&r).unwrap());
        out = h.feed(Input::TimerFired(Timer::Reconnect));
    }
    for (i, d) in delays.iter().enumerate() {
        let nominal = 250u64 << i;
        assert!(*d >= nominal / 2 && *d <= nominal, "attempt {i}: {d} in [{}, {nominal}]", nominal / 2);
    }
}

// Defect 2: auth_expiring forces a new token.

#[test]
fn auth_expiring_reconnects_at_once_with_a_fresh_token() {
    let mut h = Harness::new(5);
    let a = h.connect();
    let out = h.bytes(a, "event: closed\ndata: {\"reason\":\"auth_expiring\"}\n\n");
    assert_eq!(emitted(&out, EventName::Closed)[0]["reason"], "auth_expiring");
    assert!(out.iter().any(|x| matches!(x, Action::CloseStream { attempt } if *attempt == a)));
    assert!(reconnect_delay(&out).unwrap() < 500);
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    assert!(out.iter().any(|x| matches!(x, Action::GetToken { purpose: TokenFor::Stream(_), reject: Some(t) } if t == T1)));
}

#[test]
fn graceful_closes_reconnect_at_once_stalled_and_bare_ends_back_off() {
    for (reason, immediate) in [("server_cap", true), ("shutdown", true), ("stalled", false), ("something_new", false)] {
        let mut h = Harness::new(6);
        let a = h.connect();
        // Several failures first so that backoff is visibly longer than the jitter.
        let out = h.bytes(a, &format!("event: closed\ndata: {{\"reason\":\"{reason}\"}}\n\n"));
        let d = reconnect_delay(&out).unwrap();
        if immediate {
            assert!(d < 500, "{reason}: {d}");
            assert!(!out.iter().any(|x| matches!(x, Action::GetToken { .. })), "{reason}: token kept");
        } else {
            assert!((125..=250).contains(&d), "{reason}: first backoff step, {d}");
        }
    }
    let mut h = Harness::new(7);
    let a = h.connect();
    let out = h.feed(Input::StreamEnded { attempt: a });
    assert!((125..=250).contains(&reconnect_delay(&out).unwrap()));
}

// Defect 5: pause/resume/close never leave two streams or a zombie.

#[test]
fn pause_during_backoff_then_resume_opens_exactly_one_stream() {
    let mut h = Harness::new(8);
    let a = h.connect();
    h.feed(Input::StreamFailed { attempt: a, message: "reset".into() });
    let out = h.feed(Input::Pause);
    assert!(out.contains(&Action::ClearTimer(Timer::Reconnect)));
    // The old backoff timer fires anyway (a race in the glue): nothing happens.
    assert!(stream_token_request(&h.feed(Input::TimerFired(Timer::Reconnect))).is_none());
    let out = h.feed(Input::Start); // resume
    let b = stream_token_request(&out).unwrap();
    assert!(stream_token_request(&h.feed(Input::Start)).is_none(), "a second resume opens nothing");
    h.feed(Input::Token { purpose: TokenFor::Stream(b), token: T1.into() });
    // Late input from the old attempt is ignored.
    assert!(h.feed(Input::StreamText { attempt: a, text: msg_frame(1) }).is_empty());
    assert_eq!(open_streams(&h.log), 1);
}

#[test]
fn close_stops_everything_and_later_input_does_nothing() {
    let mut h = Harness::new(9);
    let a = h.connect();
    let out = h.feed(Input::Close);
    assert!(out.iter().any(|x| matches!(x, Action::CloseStream { attempt } if *attempt == a)));
    for t in [Timer::Reconnect, Timer::Stall, Timer::Reconcile] {
        assert!(out.contains(&Action::ClearTimer(t)));
    }
    assert!(h.m.is_closed());
    for input in [
        Input::Start,
        Input::StreamText { attempt: a, text: msg_frame(1) },
        Input::TimerFired(Timer::Reconnect),
        Input::StreamEnded { attempt: a },
    ] {
        assert!(h.feed(input).is_empty());
    }
    assert_eq!(open_streams(&h.log), 0);
}

fn open_streams(log: &[Action]) -> usize {
    let mut open = std::collections::HashSet::new();
    for a in log {
        match a {
            Action::OpenStream { attempt, .. } => {
                open.insert(*attempt);
            }
            Action::CloseStream { attempt } => {
                open.remove(attempt);
            }
            _ => {}
        }
    }
    open.len()
}

// Defect 7: history never arrives after newer live messages.

#[test]
fn live_messages_wait_for_history_and_come_out_in_order() {
    let mut h = Harness::new(10);
    let out = h.feed(Input::Start);
    let (a, req) = h.until_ready(&out);
    let req = req.unwrap();
    let out = h.bytes(a, &msg_frame(3));
    assert!(emitted(&out, EventName::Message).is_empty(), "held until history arrives");
    let out = h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    assert!(out.iter().any(|x| matches!(x, Action::Reconcile { after: None, .. })));
    let out = h.feed(Input::ReconcileDone { req, status: 200, body: history([1, 2, 3]) });
    let msgs = emitted(&out, EventName::Message);
    let ids: Vec<&str> = msgs.iter().map(|m| m["message"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    // `from_reconcile`: present and `true` on reconcile output only.
    let from: Vec<Option<bool>> = msgs.iter().map(|m| m.get("from_reconcile").map(|f| f.as_bool().unwrap())).collect();
    assert_eq!(from, [Some(true), Some(true), None]);
    assert_eq!(msgs[0]["convo_id"], "convo");
    // The next reconcile asks only for what is newer.
    h.feed(Input::StreamEnded { attempt: a });
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    let req = h.until_ready(&out).1.unwrap();
    let out = h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    assert!(out.iter().any(|x| matches!(x, Action::Reconcile { after: Some(id), .. } if id == "m3")));
}

/// The ids of the `message` events of `out`, in order.
fn ids(out: &[Action]) -> Vec<String> {
    emitted(out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_first_opening_asks_for_the_history_with_the_stream_and_shows_it_at_once() {
    let mut h = Harness::new(21);
    let out = h.feed(Input::Start);
    let attempt = stream_token_request(&out).expect("the stream's token");
    let early = reconcile_token_request(&out).expect("the history's, side by side");
    let out = h.feed(Input::Token { purpose: TokenFor::Reconcile(early), token: T1.into() });
    assert!(out.iter().any(|x| matches!(x, Action::Reconcile { after: None, .. })));
    // The history answers before the stream is open: shown at once.
    let out = h.feed(Input::ReconcileDone { req: early, status: 200, body: history([1, 2]) });
    assert_eq!(ids(&out), ["m1", "m2"]);
    assert!(emitted(&out, EventName::Message).iter().all(|m| m["from_reconcile"] == true));
    // The stream: `ready` asks for the history again, which places what came meanwhile.
    h.feed(Input::Token { purpose: TokenFor::Stream(attempt), token: T1.into() });
    h.feed(Input::StreamOpened { attempt });
    let out = h.bytes(attempt, "event: ready\ndata: {\"conn_id\":\"c1\"}\n\n");
    let req = reconcile_token_request(&out).expect("`ready` asks for the history");
    assert!(ids(&h.bytes(attempt, &msg_frame(4))).is_empty(), "held: 3 may have been stored meanwhile");
    let out = h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    assert!(out.iter().any(|x| matches!(x, Action::Reconcile { after: Some(id), .. } if id == "m2")));
    let out = h.feed(Input::ReconcileDone { req, status: 200, body: history([3, 4]) });
    assert_eq!(ids(&out), ["m3", "m4"]);
    // A later reconnect asks for the history after `ready` only.
    h.feed(Input::StreamEnded { attempt });
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    assert!(reconcile_token_request(&out).is_none());
}

#[test]
fn an_early_history_that_answers_after_ready_places_what_it_has_and_the_next_the_rest() {
    let mut h = Harness::new(22);
    let out = h.feed(Input::Start);
    let attempt = stream_token_request(&out).unwrap();
    let early = reconcile_token_request(&out).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Reconcile(early), token: T1.into() });
    h.feed(Input::Token { purpose: TokenFor::Stream(attempt), token: T1.into() });
    h.feed(Input::StreamOpened { attempt });
    let out = h.bytes(attempt, "event: ready\ndata: {\"conn_id\":\"c1\"}\n\n");
    assert!(reconcile_token_request(&out).is_none(), "one history in flight at a time");
    assert!(ids(&h.bytes(attempt, &msg_frame(4))).is_empty());
    // Asked for before `ready`: it can not place 4 (3 may come between).
    let out = h.feed(Input::ReconcileDone { req: early, status: 200, body: history([1, 2]) });
    assert_eq!(ids(&out), ["m1", "m2"]);
    let req = reconcile_token_request(&out).expect("the history of this sync is asked for now");
    h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    let out = h.feed(Input::ReconcileDone { req, status: 200, body: history([1, 2, 3, 4]) });
    assert_eq!(ids(&out), ["m3", "m4"], "each once, in order");
}

#[test]
fn an_early_history_that_fails_says_nothing_and_ready_asks_again() {
    for fail in 0..3 {
        let mut h = Harness::new(23);
        let out = h.feed(Input::Start);
        let attempt = stream_token_request(&out).unwrap();
        let early = reconcile_token_request(&out).unwrap();
        let out = match fail {
            0 => h.feed(Input::TokenFailed { purpose: TokenFor::Reconcile(early), error: ClientError::new(ErrorCode::Network, "backend down") }),
            1 => {
                h.feed(Input::Token { purpose: TokenFor::Reconcile(early), token: T1.into() });
                h.feed(Input::ReconcileFailed { req: early, message: "offline".into() })
            }
            _ => {
                h.feed(Input::Token { purpose: TokenFor::Reconcile(early), token: T1.into() });
                h.feed(Input::ReconcileDone { req: early, status: 503, body: String::new() })
            }
        };
        assert!(emitted(&out, EventName::Error).is_empty(), "case {fail}: no error");
        assert!(!out.iter().any(|x| matches!(x, Action::SetTimer { timer: Timer::Reconcile, .. })), "case {fail}: no retry of its own");
        h.feed(Input::Token { purpose: TokenFor::Stream(attempt), token: T1.into() });
        h.feed(Input::StreamOpened { attempt });
        let out = h.bytes(attempt, "event: ready\ndata: {\"conn_id\":\"c1\"}\n\n");
        let req = reconcile_token_request(&out).expect("`ready` asks for the history");
        h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
        let out = h.feed(Input::ReconcileDone { req, status: 200, body: history([1]) });
        assert_eq!(ids(&out), ["m1"], "case {fail}");
    }
}

#[test]
fn pause_drops_an_in_flight_reconcile_and_resume_delivers_once() {
    let mut h = Harness::new(13);
    let out = h.feed(Input::Start);
    let (a, req) = h.until_ready(&out);
    let req = req.unwrap();
    h.bytes(a, &msg_frame(2));
    h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    h.feed(Input::Pause);
    // The answer of the fetch made before the pause comes in while paused.
    let out = h.feed(Input::ReconcileDone { req, status: 200, body: history([1, 2, 3]) });
    assert!(emitted(&out, EventName::Message).is_empty(), "nothing is delivered while paused");
    let out = h.feed(Input::Start);
    let again = h.until_ready(&out).1.expect("the resumed stream reconciles");
    assert_ne!(again, req);
    h.feed(Input::Token { purpose: TokenFor::Reconcile(again), token: T1.into() });
    let out = h.feed(Input::ReconcileDone { req: again, status: 200, body: history([1, 2, 3]) });
    let ids: Vec<String> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"], "after resume: each once, in order");
}

#[test]
fn a_failed_reconcile_is_reported_and_retried_and_order_holds() {
    let mut h = Harness::new(11);
    let out = h.feed(Input::Start);
    let (a, req) = h.until_ready(&out);
    let mut req = req.unwrap();
    h.bytes(a, &msg_frame(2));
    for round in 0..3 {
        h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
        let out = h.feed(Input::ReconcileFailed { req, message: "offline".into() });
        assert!(emitted(&out, EventName::Message).is_empty(), "round {round}: m2 waits: m1 may exist");
        let e = &emitted(&out, EventName::Error)[0];
        assert_eq!((e["phase"].as_str(), e["stage"].as_str()), (Some("fetch"), Some("reconcile")));
        assert!(out.iter().any(|x| matches!(x, Action::SetTimer { timer: Timer::Reconcile, .. })));
        req = reconcile_token_request(&h.feed(Input::TimerFired(Timer::Reconcile))).unwrap();
    }
    h.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    let out = h.feed(Input::ReconcileDone { req, status: 200, body: history([1, 2]) });
    let ids: Vec<String> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["m1", "m2"]);
}

// Defect 9: pings keep a stream alive; silence kills it.

#[test]
fn a_silent_stream_is_detected_and_replaced() {
    let mut h = Harness::new(12);
    let a = h.connect();
    h.now += 600;
    h.bytes(a, "event: ping\ndata: {}\n\n");
    h.now += 600;
    let out = h.feed(Input::TimerFired(Timer::Stall));
    assert!(out.iter().any(|x| matches!(x, Action::SetTimer { timer: Timer::Stall, delay_ms: 400 })), "re-armed for the rest: {out:?}");
    h.now += 400;
    let out = h.feed(Input::TimerFired(Timer::Stall));
    assert!(out.iter().any(|x| matches!(x, Action::CloseStream { attempt } if *attempt == a)));
    assert!(reconnect_delay(&out).is_some());
}

#[test]
fn immediate_reconnects_are_jittered_across_clients() {
    let delays: std::collections::HashSet<u64> = (0..50)
        .map(|seed| {
            let mut h = Harness::new(seed);
            let a = h.connect();
            reconnect_delay(&h.bytes(a, "event: closed\ndata: {\"reason\":\"shutdown\"}\n\n")).unwrap()
        })
        .collect();
    assert!(delays.len() > 25, "50 clients spread over many delays: {}", delays.len());
}

// Bad input is reported and loses nothing.

#[test]
fn malformed_frames_are_protocol_errors_and_the_stream_goes_on() {
    let mut h = Harness::new(13);
    let a = h.connect();
    let out = h.bytes(a, "event: message\ndata: {\"type\":\"message\",\"message\":{\"id\":\n\nevent: presence\ndata: {}\n\n");
    let errors = emitted(&out, EventName::Error);
    assert_eq!(errors.len(), 1, "unknown frame types are skipped silently");
    assert_eq!((errors[0]["phase"].as_str(), errors[0]["error"]["code"].as_str()), (Some("stream"), Some("protocol")));
    let out = h.bytes(a, &msg_frame(1));
    assert_eq!(emitted(&out, EventName::Message).len(), 1);
    assert!(!out.iter().any(|x| matches!(x, Action::CloseStream { .. })));
}

/// A hostile server's `message` frames that handlers typed as `Message`
/// could not read (no `convo_id` or another convo's, no `from`, no
/// `created_at`) are dropped with a `protocol` error each; what follows in
/// the same chunk is still delivered, once, in order.
#[test]
fn message_frames_without_what_handlers_read_are_dropped_and_the_stream_goes_on() {
    let mut h = Harness::new(15);
    let a = h.connect();
    let hostile = [
        r#"{"type":"message","action":"create","message":{"id":"h1","content":"no convo"}}"#,
        r#"{"type":"message","convo_id":"someone-else","message":{"id":"h2","content":"x","from":"ai_agent","created_at":"t"}}"#,
        r#"{"type":"message","convo_id":"convo","message":{"id":"h3","content":"x","created_at":"t"}}"#,
        r#"{"type":"message","convo_id":"convo","message":{"id":"h4","content":"x","from":"ai_agent"}}"#,
    ];
    let mut chunk = msg_frame(1);
    for f in hostile {
        chunk.push_str(&format!("event: message\ndata: {f}\n\n"));
    }
    chunk.push_str(&msg_frame(2));
    let out = h.bytes(a, &chunk);
    let errors = emitted(&out, EventName::Error);
    assert_eq!(errors.len(), hostile.len(), "{errors:?}");
    assert!(errors.iter().all(|e| e["error"]["code"] == "protocol" && e["phase"] == "stream"));
    let ids: Vec<String> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["m1", "m2"], "only the messages of this convo, whole");
    assert!(!out.iter().any(|x| matches!(x, Action::CloseStream { .. })), "the stream goes on");
}

#[test]
fn server_frames_are_emitted_in_wire_shape() {
    let mut h = Harness::new(14);
    let a = h.connect();
    let out = h.bytes(
        a,
        "event: typing\ndata: {\"kind\":\"thinking\",\"state\":\"start\",\"label\":null,\"convo_id\":\"convo\"}\n\n\
         event: turn_done\ndata: {\"type\":\"turn_done\",\"convo_id\":\"convo\",\"reason\":\"ok\",\"at\":\"t\"}\n\n\
         event: error\ndata: {\"convo_id\":\"convo\",\"reason\":\"temporary_failure\",\"at\":\"t\"}\n\n",
    );
    assert_eq!(emitted(&out, EventName::Typing)[0]["type"], "typing");
    assert_eq!(emitted(&out, EventName::TurnDone)[0]["reason"], "ok");
    // A server `error` frame reaches `error` handlers as the frame itself.
    let e = &emitted(&out, EventName::Error)[0];
    assert_eq!(e, &serde_json::json!({"type": "error", "convo_id": "convo", "reason": "temporary_failure", "at": "t"}));
}

#[test]
fn last_event_id_is_sent_only_once_the_server_used_ids() {
    let mut h = Harness::new(15);
    let a = h.connect();
    h.feed(Input::StreamEnded { attempt: a });
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    let b = stream_token_request(&out).unwrap();
    let out = h.feed(Input::Token { purpose: TokenFor::Stream(b), token: T1.into() });
    assert!(out.iter().any(|x| matches!(x, Action::OpenStream { last_event_id: None, .. })));
    h.feed(Input::StreamOpened { attempt: b });
    h.bytes(b, &format!("id: 1\n{}", msg_frame(1)));
    h.feed(Input::StreamEnded { attempt: b });
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    let c = stream_token_request(&out).unwrap();
    let out = h.feed(Input::Token { purpose: TokenFor::Stream(c), token: T1.into() });
    assert!(out.iter().any(|x| matches!(x, Action::OpenStream { last_event_id: Some(id), .. } if id == "1")));
}

#[test]
fn no_action_ever_carries_a_token_in_a_log_line() {
    let mut h = Harness::new(16);
    let a = h.connect();
    h.bytes(a, "event: closed\ndata: {\"reason\":\"auth_expiring\"}\n\n");
    for action in &h.log {
        if let Action::Log(line) = action {
            assert!(!line.contains(T1), "{line}");
        }
    }
}

// Generated fault sequences.

#[derive(Debug, Clone)]
enum Fault {
    Message,
    Duplicate(u64),
    Closed(&'static str),
    End,
    Fail,
    Refuse(u16),
    Stall,
    Pause,
    Resume,
    OldAttemptBytes(u64),
    ReconcileFails,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::Message),
        1 => (1u64..30).prop_map(Fault::Duplicate),
        1 => prop::sample::select(vec!["server_cap", "shutdown", "auth_expiring", "stalled"]).prop_map(Fault::Closed),
        1 => Just(Fault::End),
        1 => Just(Fault::Fail),
        1 => prop::sample::select(vec![401u16, 429, 500, 503]).prop_map(Fault::Refuse),
        1 => Just(Fault::Stall),
        1 => Just(Fault::Pause),
        1 => Just(Fault::Resume),
        1 => (1u64..30).prop_map(Fault::OldAttemptBytes),
        1 => Just(Fault::ReconcileFails),
    ]
}

/// A simulated server and glue: answers tokens, opens streams, answers
/// reconciles with the committed history, fires timers.
struct Sim {
    h: Harness,
    committed: u64,
    live: Option<u64>,
    pending: Vec<Action>,
    delivered: Vec<String>,
    fail_next_reconcile: bool,
    paused: bool,
}

impl Sim {
    fn apply(&mut self, out: Vec<Action>) {
        self.pending.extend(out);
        while !self.pending.is_empty() {
            let actions = std::mem::take(&mut self.pending);
            for a in actions {
                let next = match a {
                    Action::GetToken { purpose, .. } => self.h.feed(Input::Token { purpose, token: T1.into() }),
                    Action::OpenStream { attempt, .. } => {
                        assert!(self.live.is_none() || self.live == Some(attempt), "two streams at once");
                        self.live = Some(attempt);
                        let mut o = self.h.feed(Input::StreamOpened { attempt });
                        o.extend(self.h.bytes(attempt, "event: ready\ndata: {\"conn_id\":\"c\"}\n\n"));
                        o
                    }
                    Action::CloseStream { attempt } => {
                        if self.live == Some(attempt) {
                            self.live = None;
                        }
                        vec![]
                    }
                    Action::Reconcile { req, .. } => {
                        if std::mem::take(&mut self.fail_next_reconcile) {
                            self.h.feed(Input::ReconcileFailed { req, message: "x".into() })
                        } else {
                            self.h.feed(Input::ReconcileDone { req, status: 200, body: history(1..=self.committed) })
                        }
                    }
                    a @ (Action::Emit { event: EventName::Message, .. } | Action::EmitMany { event: EventName::Message, .. }) => {
                        for v in emitted(&[a], EventName::Message) {
                            self.delivered.push(v["message"]["id"].as_str().unwrap().to_owned());
                        }
                        vec![]
                    }
                    _ => vec![],
                };
                self.pending.extend(next);
            }
        }
    }

    fn fire_reconnect(&mut self) {
        let out = self.h.feed(Input::TimerFired(Timer::Reconnect));
        self.apply(out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_fault_sequences_keep_the_invariants(seed in any::<u64>(), faults in prop::collection::vec(fault(), 0..60)) {
        let mut sim = Sim { h: Harness::new(seed), committed: 0, live: None, pending: vec![], delivered: vec![], fail_next_reconcile: false, paused: false };
        let out = sim.h.feed(Input::Start);
        sim.apply(out);
        for f in faults {
            let out = match (f, sim.live) {
                (Fault::Message, Some(a)) => {
                    sim.committed += 1;
                    sim.h.bytes(a, &msg_frame(sim.committed))
                }
                (Fault::Message, None) => { sim.committed += 1; vec![] } // sent while disconnected
                (Fault::Duplicate(s), Some(a)) if s <= sim.committed => sim.h.bytes(a, &msg_frame(s)),
                (Fault::Closed(r), Some(a)) => sim.h.bytes(a, &format!("event: closed\ndata: {{\"reason\":\"{r}\"}}\n\n")),
                (Fault::End, Some(a)) => { sim.live = None; sim.h.feed(Input::StreamEnded { attempt: a }) }
                (Fault::Fail, Some(a)) => { sim.live = None; sim.h.feed(Input::StreamFailed { attempt: a, message: "x".into() }) }
                (Fault::Stall, Some(_)) => { sim.h.now += 2000; sim.h.feed(Input::TimerFired(Timer::Stall)) }
                (Fault::Refuse(status), None) => {
                    // The next connection attempt is refused.
                    let out = sim.h.feed(Input::TimerFired(Timer::Reconnect));
                    let mut next = vec![];
                    for a in out {
                        match a {
                            Action::GetToken { purpose: TokenFor::Stream(n), .. } => {
                                sim.h.feed(Input::Token { purpose: TokenFor::Stream(n), token: T1.into() });
                                next.extend(sim.h.feed(Input::StreamRefused { attempt: n, status, retry_after: Some("1".into()), body: String::new() }));
                            }
                            other => next.push(other),
                        }
                    }
                    next
                }
                (Fault::Pause, _) => { sim.paused = true; sim.h.feed(Input::Pause) }
                (Fault::Resume, _) => { sim.paused = false; sim.h.feed(Input::Start) }
                (Fault::OldAttemptBytes(s), _) => {
                    let out = sim.h.feed(Input::StreamText { attempt: 0, text: msg_frame(s) });
                    prop_assert!(out.is_empty(), "input for a dead attempt is ignored");
                    out
                }
                (Fault::ReconcileFails, _) => { sim.fail_next_reconcile = true; vec![] }
                _ => vec![],
            };
            sim.apply(out);
            if sim.live.is_none() && !sim.paused {
                sim.fire_reconnect();
            }
            let ids: std::collections::HashSet<&String> = sim.delivered.iter().collect();
            prop_assert_eq!(ids.len(), sim.delivered.len(), "a message was delivered twice");
        }
        // Settle: resume, reconnect, and a final successful reconcile delivers everything, in order.
        sim.fail_next_reconcile = false;
        let out = sim.h.feed(Input::Start);
        sim.apply(out);
        for _ in 0..5 { if sim.live.is_none() { sim.fire_reconnect(); } }
        let out = sim.h.feed(Input::TimerFired(Timer::Reconcile));
        sim.apply(out);
        if let Some(a) = sim.live {
            // A gap-free final message forces order to settle.
            sim.committed += 1;
            let out = sim.h.bytes(a, &msg_frame(sim.committed));
            sim.apply(out);
        }
        let stopped = sim.h.log.iter().any(|a| matches!(a, Action::Emit { event: EventName::Status, payload } if payload.contains("\"stopped\"")));
        if !stopped {
            let expected: Vec<String> = (1..=sim.committed).map(|s| format!("m{s}")).collect();
            prop_assert_eq!(&sim.delivered, &expected, "every message once, in order");
        }
        let out = sim.h.feed(Input::Close);
        sim.apply(out);
        prop_assert!(sim.live.is_none(), "close leaves no stream");
    }
}

#[test]
fn a_hidden_page_pauses_and_a_visible_one_resumes_unless_the_user_paused() {
    let mut h = Harness::new(17);
    let a = h.connect();
    let out = h.feed(Input::Visibility { hidden: true });
    assert!(out.iter().any(|x| matches!(x, Action::CloseStream { attempt } if *attempt == a)));
    assert_eq!(emitted(&out, EventName::Status)[0]["status"], "paused");
    let out = h.feed(Input::Visibility { hidden: false });
    assert!(stream_token_request(&out).is_some(), "visible again: reconnects");
    h.feed(Input::Pause);
    h.feed(Input::Visibility { hidden: true });
    assert!(stream_token_request(&h.feed(Input::Visibility { hidden: false })).is_none(), "the user's pause wins");
    assert!(stream_token_request(&h.feed(Input::Start)).is_some());
}

#[test]
fn with_pause_on_hidden_off_visibility_changes_nothing() {
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.pause_on_hidden = false;
    let mut m = ConvoMachine::new(cfg, 1);
    m.handle(0, Input::Start);
    assert!(m.handle(0, Input::Visibility { hidden: true }).is_empty());
}

fn opened(out: &[Action]) -> Option<Result<(), String>> {
    out.iter().find_map(|a| match a {
        Action::Opened(r) => Some(r.clone().map_err(|e| format!("{:?}", e.code))),
        _ => None,
    })
}

#[test]
fn the_first_outcome_is_reported_once() {
    // Live: Ok at `ready`, and only once.
    let mut h = Harness::new(20);
    h.connect();
    assert_eq!(h.log.iter().filter(|a| matches!(a, Action::Opened(_))).count(), 1);
    assert_eq!(opened(&h.log), Some(Ok(())));
    // A 404: Err, so openConvo rejects.
    let mut h = Harness::new(21);
    let a = stream_token_request(&h.feed(Input::Start)).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
    let out = h.feed(Input::StreamRefused { attempt: a, status: 404, retry_after: None, body: String::new() });
    assert_eq!(opened(&out), Some(Err("Http".into())));
    // A 401 is retried with a new token before anything is reported.
    let mut h = Harness::new(22);
    let a = stream_token_request(&h.feed(Input::Start)).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
    let out = h.feed(Input::StreamRefused { attempt: a, status: 401, retry_after: None, body: String::new() });
    assert_eq!(opened(&out), None);
    // A network failure: Ok (the convo keeps retrying).
    let mut h = Harness::new(23);
    let a = stream_token_request(&h.feed(Input::Start)).unwrap();
    h.feed(Input::Token { purpose: TokenFor::Stream(a), token: T1.into() });
    let out = h.feed(Input::StreamFailed { attempt: a, message: "offline".into() });
    assert_eq!(opened(&out), Some(Ok(())));
}

#[test]
fn the_type_field_wins_over_the_event_name_and_payloads_keep_the_wire_shape() {
    let mut h = Harness::new(30);
    let a = h.connect();
    let out = h.bytes(a, "event: message\ndata: {\"type\":\"turn_done\",\"convo_id\":\"convo\",\"reason\":\"ok\",\"at\":\"t\"}\n\n");
    assert_eq!(emitted(&out, EventName::TurnDone).len(), 1);
    // A message frame without `type`: handed over with `type` added, as received otherwise.
    let out = h.bytes(a, "event: message\ndata: {\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{\"id\":\"x1\",\"content\":\"hi\",\"from\":\"ai_agent\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"extra\":{\"id\":\"nested\"}}}\n\n");
    let m = &emitted(&out, EventName::Message)[0];
    assert_eq!(m["type"], "message");
    assert_eq!(m["message"]["id"], "x1", "a nested `id` is not the message id");
    assert_eq!(m["message"]["extra"]["id"], "nested", "unknown fields pass through");
    assert!(m.get("from_reconcile").is_none(), "live: no flag");
}

#[test]
fn a_failing_fetch_jwt_is_reported_and_retried_with_backoff() {
    let mut h = Harness::new(31);
    let a = h.connect();
    h.feed(Input::StreamEnded { attempt: a });
    let mut delays = Vec::new();
    for _ in 0..3 {
        let out = h.feed(Input::TimerFired(Timer::Reconnect));
        let b = stream_token_request(&out).expect("asks for a token again");
        let out = h.feed(Input::TokenFailed {
            purpose: TokenFor::Stream(b),
            error: ClientError::new(ErrorCode::Network, "fetchJwt failed: backend down"),
        });
        let e = &emitted(&out, EventName::Error)[0];
        assert_eq!((e["phase"].as_str(), e["error"]["code"].as_str()), (Some("auth"), Some("network")));
        delays.push(reconnect_delay(&out).expect("retried"));
    }
    assert!(delays[2] > delays[0], "backing off: {delays:?}");
    assert_eq!(emitted(&h.log, EventName::Status).last().unwrap()["status"], "reconnecting", "never stopped");
}

/// The opening bug: the API and the token endpoint unreachable when the
/// convo opens. Every failure that may pass (a network error, a timeout,
/// junk from a 502 page) opens the convo as `reconnecting` with the wait,
/// retries with backoff, and connects once the network is back; `online`
/// cuts a long wait short.
#[test]
fn an_opening_without_network_retries_until_it_connects() {
    for (code, why) in [
        (ErrorCode::Network, "fetchJwt failed: Failed to fetch"),
        (ErrorCode::Timeout, "fetchJwt did not settle within 10000 ms"),
        (ErrorCode::Protocol, "fetchJwt returned an unusable token: not a JWT"),
    ] {
        let mut h = Harness::new(40);
        let out = h.feed(Input::Start);
        let a = stream_token_request(&out).unwrap();
        let out = h.feed(Input::TokenFailed { purpose: TokenFor::Stream(a), error: ClientError::new(code, why) });
        assert_eq!(opened(&out), Some(Ok(())), "{why}: openConvo resolves while it retries");
        let status = emitted(&out, EventName::Status);
        assert_eq!(status.last().unwrap()["status"], "reconnecting", "{why}");
        assert!(status.last().unwrap()["retry_in_ms"].as_u64().is_some(), "{why}: the wait is told");
        assert_eq!(emitted(&out, EventName::Error)[0]["error"]["message"], why);
        // Many failures in a row never stop it.
        for _ in 0..20 {
            h.now += 60_000;
            let out = h.feed(Input::TimerFired(Timer::Reconnect));
            let b = stream_token_request(&out).expect("retries");
            let out = h.feed(Input::TokenFailed { purpose: TokenFor::Stream(b), error: ClientError::new(code, why) });
            assert!(opened(&out).is_none(), "told once");
            assert!(reconnect_delay(&out).is_some());
        }
        // Then the stream itself fails (the API is down too): still retrying.
        h.now += 60_000;
        let out = h.feed(Input::TimerFired(Timer::Reconnect));
        let b = stream_token_request(&out).unwrap();
        h.feed(Input::Token { purpose: TokenFor::Stream(b), token: T1.into() });
        let out = h.feed(Input::StreamFailed { attempt: b, message: "Failed to fetch".into() });
        let wait = reconnect_delay(&out).expect("backs off");
        assert!(wait > 1_000, "a long wait by now: {wait}");
        // The network is back: `online` cuts the wait short, and it connects.
        let out = h.feed(Input::Online);
        let soon = reconnect_delay(&out).expect("rescheduled");
        assert!(soon < wait && soon <= 1_000, "{soon} < {wait}");
        let out = h.feed(Input::TimerFired(Timer::Reconnect));
        h.until_ready(&out);
        assert_eq!(emitted(&h.log, EventName::Status).last().unwrap()["status"], "connected");
        assert!(!emitted(&h.log, EventName::Status).iter().any(|s| s["status"] == "stopped"), "{why}: never stopped");
    }
}

/// Only a definite refusal stops: the app's `fetchJwt` says the user is
/// signed out (a `ValetError` of code `auth`). `openConvo` rejects with it.
#[test]
fn a_signed_out_fetch_jwt_stops_the_opening() {
    let mut h = Harness::new(41);
    let out = h.feed(Input::Start);
    let a = stream_token_request(&out).unwrap();
    let out = h.feed(Input::TokenFailed { purpose: TokenFor::Stream(a), error: ClientError::new(ErrorCode::Auth, "fetchJwt: signed out: no session") });
    assert_eq!(opened(&out), Some(Err("Auth".into())), "openConvo rejects");
    assert_eq!(emitted(&out, EventName::Status).last().unwrap()["status"], "stopped");
    assert!(reconnect_delay(&out).is_none(), "no retry");
    // `resume()` (the user signed in again) starts over.
    let out = h.feed(Input::Start);
    h.until_ready(&out);
    assert_eq!(emitted(&h.log, EventName::Status).last().unwrap()["status"], "connected");
}

/// A convo that was open stops too when the app says the user signed out
/// (the reconcile's token), instead of retrying for ever.
#[test]
fn signed_out_later_stops_an_open_convo() {
    let mut h = Harness::new(42);
    let a = h.connect();
    h.feed(Input::StreamEnded { attempt: a });
    let out = h.feed(Input::TimerFired(Timer::Reconnect));
    let b = stream_token_request(&out).unwrap();
    let out = h.feed(Input::TokenFailed { purpose: TokenFor::Stream(b), error: ClientError::new(ErrorCode::Auth, "signed out") });
    assert_eq!(emitted(&out, EventName::Status).last().unwrap()["status"], "stopped");
    assert!(opened(&out).is_none(), "opened long ago");
    // A follower's reconcile token: the same.
    let mut f = Harness::new(43);
    f.feed(Input::Standby);
    let out = f.feed(Input::Sync);
    let r = reconcile_token_request(&out).unwrap();
    let out = f.feed(Input::TokenFailed { purpose: TokenFor::Reconcile(r), error: ClientError::new(ErrorCode::Auth, "signed out") });
    assert_eq!(emitted(&out, EventName::Status).last().unwrap()["status"], "stopped");
    assert!(!out.iter().any(|a| matches!(a, Action::SetTimer { timer: Timer::Reconcile, .. })), "no retry");
}

#[test]
fn a_leader_relays_frames_and_a_follower_delivers_them_once_in_order() {
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.relay = true;
    let mut leader = Harness { m: ConvoMachine::new(cfg.clone(), 40), now: 0, log: vec![] };
    let a = leader.connect();
    let out = leader.bytes(a, &format!("{}{}", msg_frame(2), msg_frame(3)));
    let posts: Vec<&String> = out
        .iter()
        .filter_map(|x| match x {
            Action::Relay { sse } => Some(sse),
            _ => None,
        })
        .collect();
    assert_eq!(posts.len(), 1, "one post per chunk: {posts:?}");
    let relayed: Vec<(String, String)> = valet_core::sse::SseParser::new()
        .feed(posts[0].as_bytes())
        .into_iter()
        .filter_map(|i| match i {
            valet_core::sse::SseItem::Event(e) => Some((e.event, e.data)),
            _ => None,
        })
        .collect();
    assert_eq!(relayed.iter().filter(|(e, _)| e == "message").count(), 2);
    let one = |event: &str, data: &str| {
        let mut sse = String::new();
        valet_core::sse::encode(&mut sse, event, data);
        Input::Relayed { sse }
    };
    // When no other tab listens, nothing is relayed.
    leader.feed(Input::Relay(false));
    let out = leader.bytes(a, &msg_frame(4));
    assert!(!out.iter().any(|x| matches!(x, Action::Relay { .. })));

    let mut follower = Harness { m: ConvoMachine::new(cfg, 41), now: 0, log: vec![] };
    let out = follower.feed(Input::Standby);
    assert!(out.iter().any(|x| matches!(x, Action::Opened(Ok(())))), "a follower is open without a stream");
    let out = follower.feed(Input::Sync);
    let req = reconcile_token_request(&out).unwrap();
    // Live relayed frames wait for the follower's own history (m1 may exist).
    let mut got = Vec::new();
    for (event, data) in relayed.iter().rev() {
        got.extend(emitted(&follower.feed(one(event, data)), EventName::Message));
    }
    assert!(got.is_empty(), "held until history");
    follower.feed(Input::Token { purpose: TokenFor::Reconcile(req), token: T1.into() });
    let out = follower.feed(Input::ReconcileDone { req, status: 200, body: history([1]) });
    got.extend(emitted(&out, EventName::Message));
    let ids: Vec<&str> = got.iter().map(|m| m["message"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    // A duplicate relay (two leaders for a moment) changes nothing.
    let (event, data) = relayed[0].clone();
    assert!(emitted(&follower.feed(one(&event, &data)), EventName::Message).is_empty());
    assert!(!follower.log.iter().any(|x| matches!(x, Action::OpenStream { .. })), "a follower never streams");
    // Promoted, it streams.
    let out = follower.feed(Input::Lead);
    assert!(stream_token_request(&out).is_some());
}

/// The messages one chunk delivers go to JS as one batch (one crossing and
/// one parse), in order; a frame of another kind between them splits it.
#[test]
fn the_messages_of_one_chunk_go_out_as_one_batch() {
    let mut h = Harness::new(7);
    let a = h.connect();
    let chunk = format!("{}{}{}", msg_frame(1), msg_frame(2), msg_frame(3));
    let out = h.bytes(a, &chunk);
    let batches: Vec<usize> = out
        .iter()
        .filter_map(|x| match x {
            Action::Emit { event: EventName::Message, .. } => Some(1),
            Action::EmitMany { event: EventName::Message, count, .. } => Some(*count),
            _ => None,
        })
        .collect();
    assert_eq!(batches, [3]);
    let ids: Vec<Value> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["id"].clone()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    let typing = "event: typing\ndata: {\"type\":\"typing\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"is_typing\":true}\n\n";
    let out = h.bytes(a, &format!("{}{typing}{}", msg_frame(4), msg_frame(5)));
    let kinds: Vec<&str> = out
        .iter()
        .filter_map(|x| match x {
            Action::Emit { event, .. } | Action::EmitMany { event, .. } => Some(event.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["message", "typing", "message"], "order across kinds is kept");
}

/// A huge chunk goes out in bounded batches, every message once and in
/// order: what a burst costs at once does not grow with the chunk.
#[test]
fn a_huge_chunk_goes_out_in_bounded_batches() {
    let mut h = Harness::new(8);
    let a = h.connect();
    let chunk: String = (1..=2000).map(msg_frame).collect();
    let out = h.bytes(a, &chunk);
    let sizes: Vec<usize> = out
        .iter()
        .filter_map(|x| match x {
            Action::EmitMany { event: EventName::Message, json_array, .. } => Some(json_array.len()),
            Action::Emit { event: EventName::Message, payload } => Some(payload.len()),
            _ => None,
        })
        .collect();
    assert!(sizes.len() >= (chunk.len() / valet_core::convo::EMIT_BATCH_BYTES), "{} batches", sizes.len());
    let frame = msg_frame(2000).len();
    assert!(sizes.iter().all(|&s| s < valet_core::convo::EMIT_BATCH_BYTES + frame), "{sizes:?}");
    let seqs: Vec<u64> = emitted(&out, EventName::Message).iter().map(|m| m["message"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=2000).collect::<Vec<_>>());
}

/// A tab that joins after the convo closed shows the server's text as every
/// other tab does: the leader tells the last `convo_state` with its status
/// when a tab says hello (`Announce`), and a tab that heard it already does
/// not emit it again.
#[test]
fn a_tab_that_joins_late_gets_the_last_convo_state_once() {
    let mut cfg = ConvoConfig::new("agent", "convo");
    cfg.relay = true;
    let mut leader = Harness { m: ConvoMachine::new(cfg.clone(), 50), now: 0, log: vec![] };
    let a = leader.connect();
    let state = "event: message\ndata: {\"type\":\"convo_state\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"state\":\"resolved\",\"prev_state\":\"open\",\"closed_user_message\":\"This conversation has been resolved. Start a new one any time.\"}\n\n";
    let out = leader.bytes(a, state);
    assert_eq!(emitted(&out, EventName::ConvoState).len(), 1);
    let relayed = |out: &[Action]| -> Vec<String> {
        out.iter()
            .filter_map(|x| match x {
                Action::Relay { sse } => Some(sse.clone()),
                _ => None,
            })
            .collect()
    };
    let early = relayed(&out);
    // The server says it again: not emitted twice.
    let out = leader.bytes(a, state);
    assert!(emitted(&out, EventName::ConvoState).is_empty(), "told once");
    // A tab says hello: the leader tells its status and the last state.
    let out = leader.feed(Input::Announce);
    let told = relayed(&out);
    assert_eq!(told.len(), 1);
    assert!(told[0].contains("closed_user_message"), "{told:?}");
    let mut late = Harness { m: ConvoMachine::new(ConvoConfig::new("agent", "convo"), 51), now: 0, log: vec![] };
    late.feed(Input::Standby);
    let out = late.feed(Input::Relayed { sse: told[0].clone() });
    let states = emitted(&out, EventName::ConvoState);
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["closed_user_message"], "This conversation has been resolved. Start a new one any time.");
    assert_eq!(states[0]["state"], "resolved");
    // A tab that heard it live hears it again on another tab's hello: once in all.
    let mut early_tab = Harness { m: ConvoMachine::new(ConvoConfig::new("agent", "convo"), 52), now: 0, log: vec![] };
    early_tab.feed(Input::Standby);
    let mut seen = 0;
    for sse in early.iter().chain(told.iter()) {
        seen += emitted(&early_tab.feed(Input::Relayed { sse: sse.clone() }), EventName::ConvoState).len();
    }
    assert_eq!(seen, 1);
}
