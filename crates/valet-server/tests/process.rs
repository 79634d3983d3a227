//! The server as a process: durability across `kill -9`, SIGTERM shutdown,
//! the command line.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use valet_core::wire::{ClosedReason, ServerFrame};

struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(db: &str) -> Proc {
    spawn_logging(db, Stdio::null())
}

fn spawn_logging(db: &str, stderr: Stdio) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_valet-server"))
        .args(["--dev", "--addr", "127.0.0.1:0", "--db", db, "--agent-delay-ms", "10", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("server binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("valet-server listening on ").expect("first line names the URL").to_owned();
    Proc { child, base }
}

async fn as_server(p: &Proc) -> Server {
    Server::remote(&p.base)
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9_and_restart() {
    let dir = std::env::temp_dir().join(format!("valet-durability-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("valet.db");
    let db = db.to_str().unwrap();
    let t = token("durable-user");
    let (convo, acked) = {
        let p = spawn(db);
        let s = as_server(&p).await;
        let convo = s.session(&t).await;
        let mut acked = Vec::new();
        for i in 0..20 {
            let res = s.send(&t, &convo, &format!("durable {i}")).await;
            assert_eq!(res.status(), StatusCode::OK);
            acked.push(format!("durable {i}"));
        }
        let mut p = p;
        // SIGKILL: no chance to flush anything.
        unsafe { libc::kill(p.child.id() as i32, libc::SIGKILL) };
        p.child.wait().unwrap();
        (convo, acked)
    };
    let p = spawn(db);
    let s = as_server(&p).await;
    let history = s.history(&t, &convo).await;
    let mine: Vec<String> =
        history.iter().filter(|m| m["from"] == "appuser").map(|m| m["content"].as_str().unwrap().to_owned()).collect();
    assert_eq!(mine, acked, "every acknowledged message survived, in order");
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seq stays contiguous: {seqs:?}");
    // New messages continue the sequence after the restart.
    s.send(&t, &convo, "after restart").await;
    let history = s.history(&t, &convo).await;
    let last = history.iter().rfind(|m| m["from"] == "appuser").unwrap();
    assert_eq!(last["content"], "after restart");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigterm_closes_streams_with_shutdown_and_exits_cleanly() {
    let mut p = spawn(":memory:");
    let s = as_server(&p).await;
    let t = token("term-user");
    let convo = s.session(&t).await;
    let mut stream = s.stream(&t, &convo).await;
    assert_eq!(stream.next().await.unwrap().event, "ready");
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    let closed = stream.next_non_ping().await.unwrap();
    assert!(matches!(closed.frame(), ServerFrame::Closed { reason: ClosedReason::Shutdown }));
    assert!(stream.next().await.is_none());
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + LIVENESS;
        loop {
            if let Some(st) = p.child.try_wait().unwrap() {
                return st;
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn help_lists_every_option_and_bad_config_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_valet-server")).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--dev", "--addr", "--db", "--companies", "--static-dir", "--admin-secret", "--max-streams-per-user",
        "--stream-max-age-ms", "--auth-expiring-lead-ms", "--ping-interval-ms", "--agent-delay-ms",
        "--rate-limit-messages", "--max-body-bytes",
    ] {
        assert!(help.contains(opt), "--help mentions {opt}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_valet-server")).args(["--addr", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no companies configured"));
}

#[tokio::test]
async fn companies_file_configures_a_production_company() {
    let dir = std::env::temp_dir().join(format!("valet-companies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("companies.json");
    std::fs::write(
        &file,
        r#"[{"name":"Acme","api_key":"acme-key","secret":"acme-secret-0123456789abcdef0123456789","agents":["acme-agent"],"origins":["https://chat.acme.example"]}]"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_valet-server"))
        .args(["--addr", "127.0.0.1:0", "--db", ":memory:", "--companies", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("valet-server listening on ").unwrap().to_owned();
    let p = Proc { child, base };
    let http = Client::new();
    let mut c = claims("acme-user", chrono::Utc::now().timestamp() + 900);
    c.iss = "acme-key".into();
    c.company_api_key = "acme-key".into();
    c.agent_uuid = "acme-agent".into();
    let t = valet_server::auth::mint("acme-secret-0123456789abcdef0123456789", &c);
    let res = http.post(format!("{}/api/v2/sessions", p.base)).bearer_auth(&t).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["attachment_policy"]["max_files_per_message"], 0, "default policy: attachments off");
    // No dev endpoints, and the dev company is unknown.
    assert_eq!(http.post(format!("{}/dev/jwt", p.base)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let res = http.post(format!("{}/api/v2/sessions", p.base)).bearer_auth(token("x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn logs_are_structured_and_never_contain_a_token() {
    let log = std::env::temp_dir().join(format!("valet-log-{}.txt", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let p = spawn_logging(":memory:", Stdio::from(file));
    let s = as_server(&p).await;
    let good = token("log-user");
    let convo = s.session(&good).await;
    s.send(&good, &convo, "hello").await;
    let bad = valet_server::auth::mint("wrong-secret", &claims("log-user", chrono::Utc::now().timestamp() + 60));
    assert_eq!(s.get(&bad, "/api/v2/agent_convos").await.status(), StatusCode::UNAUTHORIZED);
    let mut st = s.stream(&good, &convo).await;
    st.until("ready").await;
    st.close();
    s.wait_stats("stream end logged", |v| v["live_streams"] == 0).await;
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("stream opened") && text.contains("/api/v2/sessions"), "logs were written: {text}");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string());
    }
    for secret in [good.as_str(), bad.as_str(), good.split('.').nth(2).unwrap(), bad.split('.').nth(2).unwrap()] {
        assert!(!text.contains(secret), "a token leaked into the logs");
    }
}
