//! The SSE stream's lifecycle: caps, closes, pings, faults, shutdown, load.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use valet_core::wire::{decode_frame, ClosedReason, ServerFrame};

fn closed_reason(raw: &Raw) -> ClosedReason {
    match raw.frame() {
        ServerFrame::Closed { reason } => reason,
        other => panic!("expected closed, got {other:?}"),
    }
}

#[tokio::test]
async fn third_stream_gets_429_with_retry_after_and_a_slot_frees_on_disconnect() {
    let s = Server::start().await;
    let t = token("cap-user");
    let (c1, c2, c3) = (s.session(&t).await, s.session(&t).await, s.session(&t).await);
    let first = s.stream(&t, &c1).await;
    let _second = s.stream(&t, &c2).await;
    let res = s.stream_with(&t, &c3, None).await.err().expect("third stream refused");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "too_many_streams");
    // Another appuser is not affected.
    let other = token("other-user");
    let oc = s.session(&other).await;
    let _o = s.stream(&other, &oc).await;
    let stats = s.stats().await;
    assert_eq!(stats["live_streams_by_appuser"]["cap-user"], 2);
    assert_eq!(stats["live_streams"], 3);
    // A departed client frees its slot.
    first.close();
    s.wait_stats("the closed stream to be counted out", |v| v["live_streams_by_appuser"]["cap-user"] == 1).await;
    let mut third = s.stream(&t, &c3).await;
    assert_eq!(third.next().await.unwrap().event, "ready");
}

#[tokio::test]
async fn auth_expiring_closes_the_stream_before_the_token_expires() {
    // Token lives 4 s; the server must close 2 s before exp.
    let s = Server::with(|c| c.auth_expiring_lead = Duration::from_secs(2)).await;
    let t = token_ttl("expiring-user", 4);
    let exp = valet_core::token::read_claims(&t).unwrap().exp.unwrap();
    let convo = s.session(&t).await;
    let opened = Instant::now();
    let mut stream = s.stream(&t, &convo).await;
    assert_eq!(stream.next().await.unwrap().event, "ready");
    let closed = stream.next_non_ping().await.unwrap();
    let at_ms = chrono::Utc::now().timestamp_millis();
    assert_eq!(closed_reason(&closed), ClosedReason::AuthExpiring);
    assert!(at_ms < exp * 1000, "closed before the token expired");
    assert!(at_ms >= (exp - 2) * 1000 - 50, "not earlier than the lead: {} ms before exp", exp * 1000 - at_ms);
    assert!(opened.elapsed() >= Duration::from_millis(900), "the stream lived until the lead, not closed at once");
    assert!(stream.next().await.is_none(), "the server ends the stream after `closed`");
    s.wait_stats("slot freed", |v| v["live_streams"] == 0).await;
}

#[tokio::test]
async fn a_token_already_inside_the_lead_is_closed_right_after_ready() {
    let s = Server::start().await; // lead 5 min
    let t = token_ttl("short-user", 60);
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    assert_eq!(stream.next().await.unwrap().event, "ready");
    assert_eq!(closed_reason(&stream.next_non_ping().await.unwrap()), ClosedReason::AuthExpiring);
}

#[tokio::test]
async fn max_age_closes_with_server_cap_and_pings_keep_coming() {
    let s = Server::with(|c| {
        c.stream_max_age = Duration::from_millis(1200);
        c.ping_interval = Duration::from_millis(200);
    })
    .await;
    let t = token("age-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    let mut pings = 0;
    let closed = loop {
        let e = stream.next().await.unwrap();
        match e.event.as_str() {
            "ping" => {
                assert!(matches!(e.frame(), ServerFrame::Ping {}));
                pings += 1;
            }
            "ready" => {}
            _ => break e,
        }
    };
    assert_eq!(closed_reason(&closed), ClosedReason::ServerCap);
    assert!(pings >= 2, "pings while the stream lived: {pings}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn route_faults_answer_the_next_n_requests_then_stop() {
    let s = Server::start().await;
    let t = token("fault-user");
    let convo = s.session(&t).await;
    s.admin("/faults", json!({"route": "events", "status": 503, "count": 2, "retry_after": 7})).await;
    for _ in 0..2 {
        let res = s.stream_with(&t, &convo, None).await.err().expect("fault answers");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "7");
    }
    let mut ok = s.stream(&t, &convo).await;
    assert_eq!(ok.next().await.unwrap().event, "ready");
    s.admin("/faults", json!({"route": "stream_message", "status": 401})).await;
    assert_eq!(s.send(&t, &convo, "x").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.send(&t, &convo, "x").await.status(), StatusCode::OK);
    let stats = s.stats().await;
    assert_eq!(stats["requests"]["events"], 3);
    assert_eq!(stats["requests"]["stream_message"], 2);
    // A custom body, then clearing.
    s.admin("/faults", json!({"route": "get_convo", "status": 429, "count": 5, "body": {"status": "rate_limited"}})).await;
    let res = s.get(&t, &format!("/api/v2/agent_convos/{convo}")).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "rate_limited"}));
    let res = s.http.delete(s.url("/dev/admin/faults")).bearer_auth(valet_server::config::dev::ADMIN_SECRET).send().await.unwrap();
    assert!(res.status().is_success());
    assert_eq!(s.get(&t, &format!("/api/v2/agent_convos/{convo}")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn stream_faults_end_drop_malformed_duplicate() {
    let s = Server::start().await;
    let (a, b) = (token("fa"), token("fb"));
    let (ca, cb) = (s.session(&a).await, s.session(&b).await);
    let mut sa = s.stream(&a, &ca).await;
    let mut sb = s.stream(&b, &cb).await;
    sa.until("ready").await;
    sb.until("ready").await;

    // End with closed, filtered to one convo.
    let v = s.admin("/streams/end", json!({"convo_id": ca, "reason": "server_cap"})).await;
    assert_eq!(v["affected"], 1);
    assert_eq!(closed_reason(&sa.next_non_ping().await.unwrap()), ClosedReason::ServerCap);
    assert!(sa.next().await.is_none());

    // Malformed frame: the raw data is not JSON; the stream goes on.
    s.admin("/streams/malformed", json!({"source_key": "fb"})).await;
    let bad = sb.next_non_ping().await.unwrap();
    assert_eq!(bad.event, "message");
    assert!(decode_frame(&bad.event, &bad.data).is_err());
    s.send(&b, &cb, "after malformed").await;
    assert_eq!(message_of(&sb.until("message").await)["content"], "after malformed");
    sb.until("turn_done").await;

    // Duplicate: the next message frame arrives twice, same id.
    s.admin("/streams/duplicate", json!({"convo_id": cb})).await;
    s.send(&b, &cb, "dup me").await;
    let first = sb.until("message").await;
    let second = sb.next_non_ping().await.unwrap();
    assert_eq!(second.event, "message");
    assert_eq!(message_of(&first)["id"], message_of(&second)["id"]);
    sb.until("turn_done").await;

    // Drop: the stream ends with no closed frame.
    s.admin("/streams/drop", json!({})).await;
    while let Some(e) = sb.next().await {
        assert_ne!(e.event, "closed", "drop sends no closed frame");
    }
    s.wait_stats("dropped streams counted out", |v| v["live_streams"] == 0).await;
}

#[tokio::test]
async fn a_stalled_stream_sends_nothing_and_is_freed_when_the_client_leaves() {
    let s = Server::with(|c| c.ping_interval = Duration::from_millis(100)).await;
    let t = token("stall-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    stream.until("ping").await;
    s.admin("/streams/stall", json!({"convo_id": convo})).await;
    s.send(&t, &convo, "into the void").await;
    // Drain what was already in flight, then expect silence (10 ping intervals).
    let mut quiet = false;
    for _ in 0..20 {
        if stream.quiet_for(Duration::from_secs(1)).await {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "a stalled stream goes silent");
    assert_eq!(s.stats().await["live_streams"], 1, "still open while stalled");
    stream.close();
    s.wait_stats("stalled stream freed after the client left", |v| v["live_streams"] == 0).await;
    // The message was stored: a reconcile finds it.
    assert_eq!(s.history(&t, &convo).await[0]["content"], "into the void");
}

#[tokio::test]
async fn graceful_shutdown_sends_closed_shutdown_to_every_stream() {
    let s = Server::start().await;
    let mut streams = Vec::new();
    for i in 0..5 {
        let t = token(&format!("sd-{i}"));
        let c = s.session(&t).await;
        let mut st = s.stream(&t, &c).await;
        st.until("ready").await;
        streams.push(st);
    }
    let Server { running, .. } = s;
    let stopping = tokio::spawn(running.unwrap().shutdown());
    for st in &mut streams {
        assert_eq!(closed_reason(&st.next_non_ping().await.unwrap()), ClosedReason::Shutdown);
        assert!(st.next().await.is_none());
    }
    tokio::time::timeout(LIVENESS, stopping).await.unwrap().unwrap().unwrap();
}

/// 200 appusers stream at once; each posts while the others post; each
/// receives every message of its convo exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_appusers_each_get_their_messages_once_in_order() {
    const USERS: usize = 200;
    const SENDS: usize = 3;
    let s = std::sync::Arc::new(Server::with(|c| c.agent_delay = Duration::from_millis(5)).await);
    let mut setup = Vec::new();
    for i in 0..USERS {
        let s = s.clone();
        setup.push(tokio::spawn(async move {
            let t = token(&format!("load-{i}"));
            let convo = s.session(&t).await;
            let mut stream = s.stream(&t, &convo).await;
            assert_eq!(stream.next().await.unwrap().event, "ready");
            (t, convo, stream)
        }));
    }
    let mut users = Vec::new();
    for h in setup {
        users.push(h.await.unwrap());
    }
    let stats = s.stats().await;
    assert_eq!(stats["live_streams"], USERS, "all {USERS} streams held at once");

    let mut runs = Vec::new();
    for (i, (t, convo, mut stream)) in users.into_iter().enumerate() {
        let s = s.clone();
        runs.push(tokio::spawn(async move {
            for k in 0..SENDS {
                assert_eq!(s.send(&t, &convo, &format!("u{i}-m{k}")).await.status(), StatusCode::OK);
            }
            let (mut got, mut turns): (Vec<Value>, usize) = (Vec::new(), 0);
            while got.len() < SENDS * 2 || turns < SENDS {
                let e = stream.next_non_ping().await.expect("stream open");
                match e.event.as_str() {
                    "message" => got.push(message_of(&e)),
                    "turn_done" => turns += 1,
                    _ => {}
                }
            }
            assert!(stream.quiet_for(Duration::from_millis(200)).await, "user {i}: nothing after the last turn");
            let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
            assert_eq!(seqs, (1..=(SENDS * 2) as u64).collect::<Vec<_>>(), "user {i}: in order, once");
            let ids: std::collections::HashSet<_> = got.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
            assert_eq!(ids.len(), SENDS * 2);
            let mine: Vec<&str> =
                got.iter().filter(|m| m["from"] == "appuser").map(|m| m["content"].as_str().unwrap()).collect();
            let expected: Vec<String> = (0..SENDS).map(|k| format!("u{i}-m{k}")).collect();
            assert_eq!(mine, expected, "user {i} sees only its own messages, in send order");
        }));
    }
    for r in runs {
        tokio::time::timeout(Duration::from_secs(120), r).await.expect("liveness").unwrap();
    }
    assert_eq!(s.stats().await["messages"], USERS * SENDS * 2);
}
