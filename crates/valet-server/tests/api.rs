//! The Valet v2 REST + SSE contract, end to end over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use valet_core::wire::{ClosedReason, ServerFrame, TurnDoneReason, TypingState};

#[tokio::test]
async fn a_turn_end_to_end_matches_the_contract() {
    let s = Server::start().await;
    let t = token("user-1");
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let session: Value = res.json().await.unwrap();
    let convo = session["convo_id"].as_str().unwrap().to_owned();
    assert_eq!(session["lockout"]["locked_out"], false);
    assert_eq!(session["attachment_policy"]["max_files_per_message"], 3);

    let mut stream = s.stream(&t, &convo).await;
    let ready = stream.next().await.unwrap();
    assert_eq!(ready.event, "ready");
    assert!(matches!(ready.frame(), ServerFrame::Ready { .. }));

    let res = s.send(&t, &convo, "Hi, I need help with my order").await;
    assert_eq!(res.status(), StatusCode::OK);

    let mut seen = Vec::new();
    loop {
        let e = stream.next_non_ping().await.expect("stream stays open");
        seen.push(e.event.clone());
        match e.frame() {
            ServerFrame::Message { message, convo_id, action, .. } => {
                assert_eq!(convo_id, convo);
                assert_eq!(action, "create");
                assert_eq!(e.id, message.seq.unwrap().to_string(), "SSE id carries the seq");
            }
            ServerFrame::Typing { convo_id, .. } => assert_eq!(convo_id, convo),
            ServerFrame::TurnDone { reason, .. } => {
                assert_eq!(reason, TurnDoneReason::Ok);
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(seen, ["message", "typing", "message", "typing", "turn_done"]);

    let history = s.history(&t, &convo).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["from"], "appuser");
    assert_eq!(history[0]["content"], "Hi, I need help with my order");
    assert_eq!(history[1]["from"], "ai_agent");
    assert_eq!(history[1]["content"], "You said: \"Hi, I need help with my order\"");
    assert_eq!(history[1]["participant"]["kind"], "ai_agent");
    assert_eq!((history[0]["seq"].clone(), history[1]["seq"].clone()), (json!(1), json!(2)));
    assert_eq!(history[0]["turn_number"], history[1]["turn_number"]);
    assert!(history[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let list: Value = s.get(&t, "/api/v2/agent_convos").await.json().await.unwrap();
    let convos = list["agent_convos"].as_array().unwrap();
    assert_eq!(convos.len(), 1);
    assert_eq!(convos[0]["id"], convo.as_str());
    assert_eq!(convos[0]["state"], "open");
    assert_eq!(convos[0]["closed"], false);
    assert!(convos[0]["last_message_at"].is_string());
}

#[tokio::test]
async fn typing_frames_start_then_stop() {
    let s = Server::start().await;
    let t = token("typing-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    s.send(&t, &convo, "hello").await;
    let start = stream.until("typing").await;
    let ServerFrame::Typing { state, .. } = start.frame() else { unreachable!() };
    assert_eq!(state, TypingState::Start);
    let stop = stream.until("typing").await;
    let ServerFrame::Typing { state, .. } = stop.frame() else { unreachable!() };
    assert_eq!(state, TypingState::Stop);
}

#[tokio::test]
async fn another_appusers_convo_is_not_found_everywhere() {
    let s = Server::start().await;
    let (alice, mallory) = (token("alice"), token("mallory"));
    let convo = s.session(&alice).await;
    s.send(&alice, &convo, "secret").await;
    for res in [
        s.get(&mallory, &format!("/api/v2/agent_convos/{convo}")).await,
        s.get(&mallory, &format!("/api/v2/agent_convos/{convo}/events")).await,
        s.send(&mallory, &convo, "hi").await,
        s.http
            .post(s.url(&format!("/api/v2/agent_convos/{convo}/upload_file")))
            .bearer_auth(&mallory)
            .multipart(
                reqwest::multipart::Form::new()
                    .part("files[]", reqwest::multipart::Part::bytes(vec![1]).file_name("a.txt").mime_str("text/plain").unwrap()),
            )
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "convo_not_found");
    }
    let list: Value = s.get(&mallory, "/api/v2/agent_convos").await.json().await.unwrap();
    assert_eq!(list["agent_convos"], json!([]));
    assert!(!s.history(&alice, &convo).await.is_empty(), "the owner still sees it");
}

#[tokio::test]
async fn reconcile_after_returns_only_newer_messages() {
    let s = Server::with(|c| c.agent_delay = Duration::from_millis(0)).await;
    let t = token("after-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    for i in 0..3 {
        s.send(&t, &convo, &format!("m{i}")).await;
        stream.until("turn_done").await;
    }
    let all = s.history(&t, &convo).await;
    assert_eq!(all.len(), 6);
    let second = all[1]["id"].as_str().unwrap();
    let later: Value = s.get(&t, &format!("/api/v2/agent_convos/{convo}?after={second}")).await.json().await.unwrap();
    let later = later["messages"].as_array().unwrap();
    assert_eq!(later.as_slice(), &all[2..]);
    let unknown: Value = s.get(&t, &format!("/api/v2/agent_convos/{convo}?after=nope")).await.json().await.unwrap();
    assert_eq!(unknown["messages"].as_array().unwrap().len(), 6, "unknown id: full history");
}

#[tokio::test]
async fn last_event_id_resumes_with_missed_messages() {
    let s = Server::with(|c| c.agent_delay = Duration::from_millis(0)).await;
    let t = token("resume-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    s.send(&t, &convo, "one").await;
    stream.until("turn_done").await;
    stream.close();
    s.send(&t, &convo, "two").await; // seq 3 and 4 happen while disconnected
    s.wait_stats("the reply to `two`", |v| v["messages"] == 4).await;
    let mut resumed = s.stream_with(&t, &convo, Some("2")).await.unwrap();
    assert_eq!(resumed.next().await.unwrap().event, "ready");
    let a = resumed.next_non_ping().await.unwrap();
    let b = resumed.next_non_ping().await.unwrap();
    assert_eq!((a.id.as_str(), b.id.as_str()), ("3", "4"));
    assert_eq!(message_of(&a)["content"], "two");
    assert!(resumed.quiet_for(Duration::from_millis(300)).await, "no duplicates after the replay");
}

#[tokio::test]
async fn idempotency_key_stores_a_retried_send_once() {
    let s = Server::start().await;
    let t = token("idem-user");
    let convo = s.session(&t).await;
    let path = s.url(&format!("/api/v2/agent_convos/{convo}/stream_message"));
    let mut ids = Vec::new();
    for attempt in 0..3 {
        let res = s
            .http
            .post(&path)
            .bearer_auth(&t)
            .header("idempotency-key", "key-123")
            .json(&json!({"text": "pay my bill"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["duplicate"], attempt > 0);
        ids.push(v["message_id"].as_str().unwrap().to_owned());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    s.wait_stats("one reply", |v| v["messages"] == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let history = s.history(&t, &convo).await;
    assert_eq!(history.iter().filter(|m| m["from"] == "appuser").count(), 1);
    assert_eq!(history.iter().filter(|m| m["from"] == "ai_agent").count(), 1, "the agent answers once");
}

#[tokio::test]
async fn rate_limit_answers_the_contract_429() {
    let s = Server::with(|c| c.rate_limit_messages = 3).await;
    let t = token("rate-user");
    let convo = s.session(&t).await;
    for i in 0..3 {
        assert_eq!(s.send(&t, &convo, &format!("m{i}")).await.status(), StatusCode::OK);
    }
    let res = s.send(&t, &convo, "one too many").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "rate_limited");
    assert_eq!(body["convo_id"], convo.as_str());
    assert_eq!(body["state"], "open");
    assert_eq!(body["retry_after_seconds"], retry);
    assert!((1..=60).contains(&retry));
    // Another convo has its own budget.
    let other = s.session(&t).await;
    assert_eq!(s.send(&t, &other, "fine").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn magic_texts_and_admin_drive_convo_states() {
    let s = Server::start().await;
    let t = token("state-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    s.send(&t, &convo, "/escalate").await;
    let f = stream.until("convo_state").await.frame();
    let ServerFrame::ConvoState { state, prev_state, closed_user_message, convo_id, .. } = f else { unreachable!() };
    assert_eq!((state.as_str(), prev_state.unwrap().as_str()), ("escalated", "open"));
    assert_eq!(closed_user_message.as_deref(), Some("A teammate is taking it from here."), "text for every state but open");
    assert_eq!(convo_id, convo);

    s.send(&t, &convo, "/resolve").await;
    let f = stream.until("convo_state").await.frame();
    let ServerFrame::ConvoState { state, closed_user_message, .. } = f else { unreachable!() };
    assert_eq!(state.as_str(), "resolved");
    assert!(closed_user_message.is_some());
    let ServerFrame::TurnDone { reason, .. } = stream.until("turn_done").await.frame() else { unreachable!() };
    assert_eq!(reason, TurnDoneReason::Closed);

    s.send(&t, &convo, "anyone there?").await;
    let ServerFrame::TurnDone { reason, .. } = stream.until("turn_done").await.frame() else { unreachable!() };
    assert_eq!(reason, TurnDoneReason::Closed, "a closed convo takes no turn");

    s.admin(&format!("/convos/{convo}/state"), json!({"state": "open"})).await;
    let ServerFrame::ConvoState { state, prev_state, .. } = stream.until("convo_state").await.frame() else { unreachable!() };
    assert_eq!((state.as_str(), prev_state.unwrap().as_str()), ("open", "resolved"));
    let list: Value = s.get(&t, "/api/v2/agent_convos").await.json().await.unwrap();
    assert_eq!(list["agent_convos"][0]["state"], "open");
}

#[tokio::test]
async fn fail_magic_emits_server_error_frame() {
    let s = Server::start().await;
    let t = token("fail-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    s.send(&t, &convo, "/fail").await;
    let ServerFrame::Error { reason, convo_id, .. } = stream.until("error").await.frame() else { unreachable!() };
    assert_eq!((reason.as_str(), convo_id.as_str()), ("temporary_failure", convo.as_str()));
    let ServerFrame::TurnDone { reason, .. } = stream.until("turn_done").await.frame() else { unreachable!() };
    assert_eq!(reason, TurnDoneReason::TemporaryFailure);
}

#[tokio::test]
async fn admin_injected_human_message_reaches_the_stream() {
    let s = Server::start().await;
    let t = token("human-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    s.admin(&format!("/convos/{convo}/messages"), json!({"content": "Hi, I'm Sam", "from": "human_agent"})).await;
    let m = message_of(&stream.until("message").await);
    assert_eq!((m["from"].as_str(), m["content"].as_str()), (Some("human_agent"), Some("Hi, I'm Sam")));
}

#[tokio::test]
async fn upload_then_send_finalizes_the_draft_with_files() {
    let s = Server::start().await;
    let t = token("upload-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    let upload = |parts: Vec<(&'static str, Vec<u8>, &'static str)>| {
        let mut form = reqwest::multipart::Form::new();
        for (name, data, mime) in parts {
            form = form.part("files[]", reqwest::multipart::Part::bytes(data).file_name(name).mime_str(mime).unwrap());
        }
        s.http.post(s.url(&format!("/api/v2/agent_convos/{convo}/upload_file"))).bearer_auth(&t).multipart(form).send()
    };
    let res = upload(vec![("a.txt", b"hello".to_vec(), "text/plain"), ("b.png", vec![0x89, b'P', b'N', b'G'], "image/png")]).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let draft: Value = res.json().await.unwrap();
    let message_id = draft["message_id"].as_str().unwrap().to_owned();
    assert_eq!(s.history(&t, &convo).await.len(), 0, "a draft is not a message yet");

    let res = s
        .post_json(&t, &format!("/api/v2/agent_convos/{convo}/stream_message"), json!({"text": "see attached", "message_id": message_id}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let m = message_of(&stream.until("message").await);
    assert_eq!(m["id"], message_id.as_str());
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!((files[0]["filename"].as_str(), files[0]["byte_size"].as_u64()), (Some("a.txt"), Some(5)));
    let body = s.http.get(files[0]["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(body.headers()["content-type"], "text/plain");
    assert_eq!(body.bytes().await.unwrap().as_ref(), b"hello");
    let reply = message_of(&stream.until("message").await);
    assert!(reply["content"].as_str().unwrap().contains("a.txt, b.png"));
    let history = s.history(&t, &convo).await;
    assert_eq!(history[0]["files"].as_array().unwrap().len(), 2, "reconcile carries files");

    // The draft is used up.
    let again =
        s.post_json(&t, &format!("/api/v2/agent_convos/{convo}/stream_message"), json!({"text": "x", "message_id": message_id})).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // Policy: type, size, count.
    let bad_type = upload(vec![("x.exe", vec![0; 10], "application/x-msdownload")]).await.unwrap();
    assert_eq!(bad_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(bad_type.json::<Value>().await.unwrap()["code"], "unsupported_file_type");
    let too_big = upload(vec![("big.txt", vec![b'a'; 5 * 1024 * 1024 + 1], "text/plain")]).await.unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.json::<Value>().await.unwrap()["code"], "file_too_large");
    let too_many = upload(vec![("1.txt", vec![1], "text/plain"); 4]).await.unwrap();
    assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
    assert_eq!(too_many.json::<Value>().await.unwrap()["code"], "too_many_files");
    let none = s
        .http
        .post(s.url(&format!("/api/v2/agent_convos/{convo}/upload_file")))
        .bearer_auth(&t)
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.json::<Value>().await.unwrap()["code"], "no_files");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = Server::start().await;
    let res = s.http.get(s.url("/api/v2/nope")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "not_found");
    let res = s.http.delete(s.url("/api/v2/sessions")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "method_not_allowed");
}

#[tokio::test]
async fn closed_reasons_parse_as_the_contract_names() {
    // Guards the encoding the server emits for every closed reason.
    for (reason, name) in [
        (ClosedReason::ServerCap, "server_cap"),
        (ClosedReason::Shutdown, "shutdown"),
        (ClosedReason::AuthExpiring, "auth_expiring"),
        (ClosedReason::Stalled, "stalled"),
    ] {
        let data = valet_core::wire::encode_frame(&ServerFrame::Closed { reason });
        assert_eq!(data, format!("{{\"type\":\"closed\",\"reason\":\"{name}\"}}"));
    }
}

#[tokio::test]
async fn stream_tickets_open_one_stream_once_without_a_header() {
    let s = Server::start().await;
    let t = token("ticket-user");
    let convo = s.session(&t).await;
    let other = s.session(&t).await;
    let ticket = |convo: String| {
        let s = &s;
        let t = t.clone();
        async move {
            let res = s.post_json(&t, &format!("/api/v2/agent_convos/{convo}/stream_ticket"), json!({})).await;
            assert_eq!(res.status(), StatusCode::OK);
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["expires_in_seconds"], 60);
            v["ticket"].as_str().unwrap().to_owned()
        }
    };
    let events = |convo: &str, ticket: &str| s.http.get(s.url(&format!("/api/v2/agent_convos/{convo}/events?ticket={ticket}"))).send();

    let tk = ticket(convo.clone()).await;
    let res = events(&convo, &tk).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    let again = events(&convo, &tk).await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "single use");
    assert_eq!(again.json::<Value>().await.unwrap()["code"], "invalid_ticket");

    let tk = ticket(convo.clone()).await;
    assert_eq!(events(&other, &tk).await.unwrap().status(), StatusCode::UNAUTHORIZED, "bound to its convo");
    let res = s.http.get(s.url(&format!("/api/v2/agent_convos/{convo}/events"))).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "missing_token");
    let mallory = token("mallory");
    let res = s.post_json(&mallory, &format!("/api/v2/agent_convos/{convo}/stream_ticket"), json!({})).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A ticket redeemed from a foreign origin is refused.
    let tk = ticket(convo.clone()).await;
    let res = s
        .http
        .get(s.url(&format!("/api/v2/agent_convos/{convo}/events?ticket={tk}")))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn idempotency_key_in_the_body_works_like_the_header() {
    let s = Server::start().await;
    let t = token("idem-body-user");
    let convo = s.session(&t).await;
    let path = format!("/api/v2/agent_convos/{convo}/stream_message");
    let first: Value = s.post_json(&t, &path, json!({"text": "once", "idempotency_key": "k-1"})).await.json().await.unwrap();
    let second: Value = s.post_json(&t, &path, json!({"text": "once", "idempotency_key": "k-1"})).await.json().await.unwrap();
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(second["duplicate"], true);
    let third: Value = s.post_json(&t, &path, json!({"text": "twice", "idempotency_key": "k-2"})).await.json().await.unwrap();
    assert_eq!(third["duplicate"], false);
}

/// With a token delay (`--agent-token-ms`) the dev agent streams its reply:
/// `message_delta` frames in order whose pieces make the stored reply and
/// carry its id, all before its `message`; the same pieces are the answer
/// to `stream_message`. (Without it, `a_turn_end_to_end_matches_the_contract`
/// sees no delta.)
#[tokio::test]
async fn a_streaming_agent_sends_deltas_then_the_message_and_answers_with_the_tokens() {
    let s = Server::with(|c| c.agent_token_delay = Duration::from_millis(5)).await;
    let t = token("streamer");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    stream.until("ready").await;
    let res = s.send(&t, &convo, "stream this reply to me please").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let want = "You said: \"stream this reply to me please\"";
    assert_eq!(res.text().await.unwrap(), want, "the answer is the token stream");

    let (mut pieces, mut delta_id) = (Vec::<String>::new(), None::<String>);
    loop {
        let e = stream.next_non_ping().await.expect("stream stays open");
        match e.event.as_str() {
            "message_delta" => {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                assert_eq!(v["type"], "message_delta");
                assert_eq!(v["convo_id"], convo.as_str());
                assert_eq!(v["index"], pieces.len(), "in order");
                let id = v["message_id"].as_str().unwrap().to_owned();
                assert_eq!(delta_id.get_or_insert(id.clone()), &id, "one message id");
                pieces.push(v["delta"].as_str().unwrap().to_owned());
            }
            "message" if message_of(&e)["from"] == "ai_agent" => {
                let m = message_of(&e);
                assert_eq!(m["id"].as_str(), delta_id.as_deref(), "the reply has the announced id");
                assert_eq!(m["content"], pieces.concat(), "the pieces make the reply");
                break;
            }
            _ => {}
        }
    }
    assert!(pieces.len() >= 5, "word by word: {pieces:?}");
    assert_eq!(s.history(&t, &convo).await[1]["content"], want, "stored whole");
}
