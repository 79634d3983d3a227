//! Every frame value of the contract, produced by the dev agent's magic
//! texts (or the admin API) and checked as a client reads it: `at` a number
//! (epoch ms), closing text for every state but `open`, whole participants,
//! lockouts reported by `startSession`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn frame(stream: &mut Stream, event: &str) -> Value {
    serde_json::from_str(&stream.until(event).await.data).unwrap()
}

fn assert_epoch_ms(v: &Value, what: &str) {
    let at = v.as_i64().unwrap_or_else(|| panic!("{what}: `at` is a number: {v}"));
    let now = chrono::Utc::now().timestamp_millis();
    assert!((now - 60_000..=now + 1_000).contains(&at), "{what}: `at` is epoch milliseconds: {at}");
}

#[tokio::test]
async fn turn_done_reasons_and_server_errors_carry_epoch_ms() {
    let s = Server::start().await;
    let t = token("frames-turns");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    for (text, reason) in [("hello", "ok"), ("/blocked", "blocked"), ("/unavailable", "unavailable"), ("/rate_limited", "rate_limited"), ("/fail", "temporary_failure")] {
        assert_eq!(s.send(&t, &convo, text).await.status(), StatusCode::OK);
        if text == "/fail" {
            let err = frame(&mut stream, "error").await;
            assert_eq!((err["type"].as_str(), err["reason"].as_str(), err["convo_id"].as_str()), (Some("error"), Some("temporary_failure"), Some(convo.as_str())));
            assert_epoch_ms(&err["at"], "error");
        }
        let done = frame(&mut stream, "turn_done").await;
        assert_eq!(done["reason"], reason, "{text}");
        assert_epoch_ms(&done["at"], text);
        if reason == "rate_limited" {
            assert_eq!(done["retry_after_seconds"], 30);
        } else {
            assert!(done.get("retry_after_seconds").is_none(), "{text}: only rate_limited has it");
        }
    }
}

#[tokio::test]
async fn every_state_but_open_has_text_for_the_user() {
    let s = Server::start().await;
    let t = token("frames-states");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    for (text, state, expect) in [
        ("/escalate", "escalated", Some("A teammate is taking it from here.")),
        ("/reopen", "open", None),
        ("/feedback", "pending_feedback", Some("How did we do?")),
        ("/reopen", "open", None),
        ("/resolve", "resolved", Some("resolved")),
    ] {
        s.send(&t, &convo, text).await;
        let ev = frame(&mut stream, "convo_state").await;
        assert_eq!(ev["state"], state, "{text}");
        match expect {
            None => assert!(ev["closed_user_message"].is_null(), "open: null"),
            Some(part) => assert!(ev["closed_user_message"].as_str().unwrap().contains(part), "{text}: {ev}"),
        }
    }
    // Every state, set by the admin API.
    for state in ["auto_resolved", "assumed_resolved", "rage_locked", "attempted_hack"] {
        s.admin(&format!("/convos/{convo}/state"), json!({ "state": state })).await;
        let ev = frame(&mut stream, "convo_state").await;
        let text = ev["closed_user_message"].as_str().unwrap_or_else(|| panic!("{state}: text"));
        assert!(!text.is_empty());
        if state.ends_with("locked") || state == "attempted_hack" {
            assert!(text.contains("UTC"), "{state}: a lockout says until when: {text}");
        }
    }
}

#[tokio::test]
async fn agents_and_humans_come_with_a_whole_participant_and_a_served_avatar() {
    let s = Server::start().await;
    let t = token("frames-participants");
    let convo = s.session(&t).await;
    s.send(&t, &convo, "hi").await;
    s.admin(&format!("/convos/{convo}/messages"), json!({ "content": "Sam here" })).await;
    let deadline = tokio::time::Instant::now() + LIVENESS;
    let history = loop {
        let h = s.history(&t, &convo).await;
        if h.len() >= 3 || tokio::time::Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for (from, kind) in [("ai_agent", "ai_agent"), ("human_agent", "human_agent")] {
        let m = history.iter().find(|m| m["from"] == from).unwrap_or_else(|| panic!("a {from} message: {history:?}"));
        let p = &m["participant"];
        for field in ["id", "kind", "name", "photo_url", "initial"] {
            assert!(p[field].is_string(), "{from}: participant.{field} is a string: {p}");
        }
        assert_eq!(p["kind"], kind);
        let avatar = s.http.get(p["photo_url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(avatar.status(), StatusCode::OK, "{from}: the avatar is served");
        assert_eq!(avatar.headers()["content-type"], "image/svg+xml");
    }
    let user = history.iter().find(|m| m["from"] == "appuser").unwrap();
    assert!(user["participant"].is_null(), "the user's own messages have none");
    assert_eq!(s.http.get(s.url("/avatars/../x.svg")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rage_hack_and_ban_lock_the_user_out_and_start_session_says_so() {
    let s = Server::start().await;
    for (text, reason, state, permanent) in [("/rage", "rage", "rage_locked", false), ("/hack", "hack", "attempted_hack", false), ("/ban", "permanent", "attempted_hack", true)] {
        let t = token(&format!("frames-lockout-{reason}"));
        let convo = s.session(&t).await;
        let before: Value = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        assert_eq!(before["lockout"]["locked_out"], false);
        let mut stream = s.stream(&t, &convo).await;
        s.send(&t, &convo, text).await;
        assert_eq!(frame(&mut stream, "convo_state").await["state"], state);
        assert_eq!(frame(&mut stream, "turn_done").await["reason"], "closed");
        let after: Value = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        let l = &after["lockout"];
        assert_eq!((l["locked_out"].as_bool(), l["reason"].as_str(), l["permanent"].as_bool()), (Some(true), Some(reason), Some(permanent)), "{text}: {l}");
        assert!(l["user_message"].as_str().is_some_and(|m| !m.is_empty()), "{text}: {l}");
        assert_eq!(l["expires_at"].is_null(), permanent, "{text}: a dated lockout has expires_at: {l}");
        // Other users are not affected.
        let other: Value = s.http.post(s.url("/api/v2/sessions")).bearer_auth(token("frames-innocent")).send().await.unwrap().json().await.unwrap();
        assert_eq!(other["lockout"]["locked_out"], false);
    }
}
