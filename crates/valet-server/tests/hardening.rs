//! The reference server closed to abuse: each attack that once got through
//! is refused, over real HTTP (or, for start-up checks, by the binary).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use valet_server::auth::mint;
use valet_server::config::dev;

/// Runs the binary with `args` and a companies file of `companies` JSON;
/// returns its exit code and stderr (it must exit by itself).
fn run_refused(args: &[&str], companies: Option<&str>) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("valet-hardening-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_valet-server"));
    cmd.args(args).args(["--db", ":memory:"]).env_remove("VALET_ADMIN_SECRET");
    if let Some(c) = companies {
        let file = dir.join("companies.json");
        std::fs::write(&file, c).unwrap();
        cmd.arg("--companies").arg(&file);
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn a_company_with_a_short_secret_is_refused_at_start() {
    for secret in ["", "x", "0123456789abcdef0123456789abcde"] {
        let companies = format!(r#"[{{"name":"Weak","api_key":"weak","secret":"{secret}","agents":["a"]}}]"#);
        let (code, err) = run_refused(&["--addr", "127.0.0.1:0"], Some(&companies));
        assert_eq!(code, Some(2), "{secret:?}: {err}");
        assert!(err.contains("at least 32 bytes"), "a clear message: {err}");
    }
}

#[test]
fn dev_mode_refuses_real_companies_and_non_loopback_addresses() {
    let good = r#"[{"name":"Acme","api_key":"acme","secret":"0123456789abcdef0123456789abcdef","agents":["a"]}]"#;
    let (code, err) = run_refused(&["--dev", "--addr", "127.0.0.1:0"], Some(good));
    assert_eq!(code, Some(2));
    assert!(err.contains("--dev can not serve real companies"), "{err}");
    let (code, err) = run_refused(&["--dev", "--addr", "0.0.0.0:0"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("loopback only"), "{err}");
    let (code, err) = run_refused(&["--dev", "--dev-allow-remote", "--addr", "0.0.0.0:0"], None);
    assert_eq!(code, Some(2), "the public default admin secret is not enough");
    assert!(err.contains("explicit --admin-secret"), "{err}");
}

#[tokio::test]
async fn the_admin_api_takes_its_exact_secret_only() {
    let s = Server::start().await;
    let probe = |secret: String| {
        let http = s.http.clone();
        let url = s.url("/dev/admin/faults");
        async move {
            http.post(url).bearer_auth(secret).json(&json!({"route": "sessions", "status": 500, "count": 0})).send().await.unwrap().status()
        }
    };
    let right = dev::ADMIN_SECRET.to_owned();
    assert_eq!(probe(right.clone()).await, StatusCode::OK);
    let mut near = right.clone();
    near.pop();
    for wrong in [near.clone(), format!("{near}X"), format!("{right}X"), String::new(), right.to_uppercase()] {
        assert_eq!(probe(wrong.clone()).await, StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
}

fn claims_at(source_key: &str, iat: i64, exp: i64, nbf: Option<i64>) -> String {
    let mut c = claims(source_key, exp);
    c.iat = iat;
    c.nbf = nbf;
    mint(dev::SECRET, &c)
}

#[tokio::test]
async fn tokens_from_the_future_or_living_too_long_are_refused() {
    let s = Server::start().await;
    let now = chrono::Utc::now().timestamp();
    let status = |t: String| {
        let http = s.http.clone();
        let url = s.url("/api/v2/sessions");
        async move { http.post(url).bearer_auth(t).send().await.unwrap() }
    };
    for (what, t, code) in [
        ("nbf an hour ahead", claims_at("u1", now, now + 900, Some(now + 3600)), "token_not_yet_valid"),
        ("iat an hour ahead", claims_at("u2", now + 3600, now + 3900, None), "invalid_token"),
        ("a day's lifetime", claims_at("u3", now, now + 86_400, None), "invalid_token"),
        ("16 minutes and a bit", claims_at("u4", now, now + 900 + 31, None), "invalid_token"),
    ] {
        let res = status(t).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], code, "{what}: {body}");
    }
    // Within the leeway: a backend clock a little ahead is fine.
    for (what, t) in [
        ("iat 10 s ahead", claims_at("u5", now + 10, now + 900, None)),
        ("nbf 10 s ahead", claims_at("u6", now, now + 900, Some(now + 10))),
        ("15 minutes exactly", claims_at("u7", now, now + 900, None)),
    ] {
        assert_eq!(status(t).await.status(), StatusCode::OK, "{what}");
    }
}

#[tokio::test]
async fn a_padded_or_dotted_email_is_not_an_opaque_source_key() {
    let s = Server::start().await;
    for key in [" a@b.com", "a@b.com ", "\ta@b.com", "a@b.com.", "user\n1", " padded"] {
        let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(token(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{key:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid_source_key", "{key:?}");
    }
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(token("user-1.")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "an opaque id ending in a dot is fine");
}

#[tokio::test]
async fn upload_filenames_lose_their_path_and_control_characters() {
    let s = Server::start().await;
    let t = token("uploader");
    let convo = s.session(&t).await;
    for (given, kept) in [
        ("../../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        ("../", "file"),
    ] {
        let form = reqwest::multipart::Form::new()
            .part("files[]", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name(given.to_owned()).mime_str("text/plain").unwrap());
        let res = s.http.post(s.url(&format!("/api/v2/agent_convos/{convo}/upload_file"))).bearer_auth(&t).multipart(form).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{given:?}");
        let draft = res.json::<Value>().await.unwrap()["message_id"].as_str().unwrap().to_owned();
        let res = s.post_json(&t, &format!("/api/v2/agent_convos/{convo}/stream_message"), json!({"text": "file", "message_id": draft})).await;
        assert_eq!(res.status(), StatusCode::OK);
        let history = s.history(&t, &convo).await;
        let file = &history.iter().rev().find(|m| m["id"] == draft.as_str()).unwrap()["files"][0];
        assert_eq!(file["filename"], kept, "{given:?}");
        let res = s.http.get(file["url"].as_str().unwrap()).send().await.unwrap();
        let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
        assert!(disposition.starts_with(&format!("attachment; filename=\"{kept}\"")), "{disposition}");
        assert!(!disposition.contains(".."), "{disposition}");
    }
    // Raw control characters in a part header are refused by the multipart
    // parser (400); encoded in `filename*` they may arrive, and are dropped.
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files[]\"; filename*=UTF-8''evil%07%1B%09name.txt\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    let res = s
        .http
        .post(s.url(&format!("/api/v2/agent_convos/{convo}/upload_file")))
        .bearer_auth(&t)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    if res.status() == StatusCode::OK {
        let draft = res.json::<Value>().await.unwrap()["message_id"].as_str().unwrap().to_owned();
        s.post_json(&t, &format!("/api/v2/agent_convos/{convo}/stream_message"), json!({"text": "file", "message_id": draft})).await;
        let history = s.history(&t, &convo).await;
        let name = history.iter().rev().find(|m| m["id"] == draft.as_str()).unwrap()["files"][0]["filename"].as_str().unwrap().to_owned();
        assert!(!name.chars().any(char::is_control), "{name:?}");
    } else {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(valet_server::api::safe_filename("evil\u{7}\u{1b}\tname.txt"), "evilname.txt");
    assert_eq!(valet_server::api::safe_filename("/abs/.hidden"), "hidden");
    // A name the ASCII fallback can not carry travels exactly in filename*.
    assert_eq!(valet_server::api::content_disposition("résumé \"x\".txt"), "attachment; filename=\"r_sum_ _x_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.txt");
}

#[tokio::test]
async fn per_user_limits_on_sessions_tickets_and_messages_across_convos() {
    let s = Server::with(|c| {
        c.rate_limit_sessions = 3;
        c.rate_limit_tickets = 2;
        c.rate_limit_user_messages = 4;
        c.rate_limit_messages = 100;
    })
    .await;
    let t = token("busy-user");
    let mut convos = Vec::new();
    for _ in 0..3 {
        convos.push(s.session(&t).await);
    }
    let res = s.http.post(s.url("/api/v2/sessions")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "rate_limited");
    assert!(body["retry_after_seconds"].as_u64().unwrap() >= 1);
    // Another user is not affected.
    s.session(&token("calm-user")).await;
    // Messages: a new convo does not reset the user's count.
    for (i, convo) in [&convos[0], &convos[0], &convos[1], &convos[2]].iter().enumerate() {
        assert_eq!(s.send(&t, convo, &format!("m{i}")).await.status(), StatusCode::OK);
    }
    let res = s.send(&t, &convos[2], "one too many").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["convo_id"].as_str()), (Some("rate_limited"), Some(convos[2].as_str())), "{body}");
    // Stream tickets.
    let ticket = |convo: String| {
        let http = s.http.clone();
        let url = s.url(&format!("/api/v2/agent_convos/{convo}/stream_ticket"));
        let t = t.clone();
        async move { http.post(url).bearer_auth(t).send().await.unwrap().status() }
    };
    assert_eq!(ticket(convos[0].clone()).await, StatusCode::OK);
    assert_eq!(ticket(convos[1].clone()).await, StatusCode::OK);
    assert_eq!(ticket(convos[2].clone()).await, StatusCode::TOO_MANY_REQUESTS);
}

/// Reads from a raw connection until the server closes it (`true`), or
/// the liveness bound passes (`false`).
fn closed_by_server(mut conn: TcpStream) -> bool {
    conn.set_read_timeout(Some(LIVENESS)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. a 408 before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn silent_and_trickling_connections_are_closed_and_streams_are_not() {
    let s = Server::with(|c| {
        c.header_read_timeout = Duration::from_millis(500);
        c.request_body_timeout = Duration::from_millis(500);
        c.ping_interval = Duration::from_millis(200);
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // A connection that sends nothing.
    let silent = TcpStream::connect(&addr).unwrap();
    // A request whose head never finishes.
    let mut trickle = TcpStream::connect(&addr).unwrap();
    trickle.write_all(b"GET /dev/stats HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A body that never arrives.
    let mut body = TcpStream::connect(&addr).unwrap();
    body.write_all(format!("POST /api/v2/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{", token("slow-body")).as_bytes()).unwrap();
    // A kept-alive connection that goes idle after one request.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /dev/stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (a, b, c, d) = tokio::task::spawn_blocking(move || (closed_by_server(silent), closed_by_server(trickle), closed_by_server(body), closed_by_server(idle)))
        .await
        .unwrap();
    assert!(a, "a silent connection is closed");
    assert!(b, "a request head that never finishes is closed");
    assert!(c, "a body that never arrives is closed");
    assert!(d, "an idle kept-alive connection is closed");
    // An SSE stream outlives the header timeout: it keeps its own rules.
    let t = token("streamer");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.send(&t, &convo, "still here").await;
    let got = message_of(&stream.until("message").await);
    assert_eq!(got["content"], "still here");
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let s = Server::with(|c| c.max_connections = 2).await;
    let t = token("capped");
    // A client of its own for the session: dropped, its pooled connection closes.
    let convo = Server::remote(&s.base).session(&t).await;
    // Two streams, one client each, hold both connections.
    let c1 = Server::remote(&s.base);
    let c2 = Server::remote(&s.base);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = c1.stream(&t, &convo).await;
    let _second = c2.stream(&t, &convo).await;
    let waiting = tokio::spawn({
        let http = reqwest::Client::new();
        let url = s.url("/dev/stats");
        async move { http.get(url).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection waits while two are served");
    first.close();
    let status = tokio::time::timeout(LIVENESS, waiting).await.expect("served once a connection is free").unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
}
