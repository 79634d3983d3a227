//! Test harness: a real server on 127.0.0.1, a reqwest client, and an SSE
//! reader built on valet-core's parser.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;
use valet_core::sse::{SseItem, SseParser};
use valet_core::wire::{decode_frame, ServerFrame};
use valet_server::auth::{mint, Claims, AUDIENCE};
use valet_server::config::{dev, Config};
use valet_server::Running;

/// Liveness timeout for anything a test waits for.
pub const LIVENESS: Duration = Duration::from_secs(20);

pub fn test_config() -> Config {
    let mut c = Config::dev();
    c.public_url = String::new();
    c.agent_delay = Duration::from_millis(20);
    c.ping_interval = Duration::from_secs(5);
    c.shutdown_grace = Duration::from_secs(3);
    c
}

pub struct Server {
    /// The in-process server (`None` for a server run as a process).
    pub running: Option<Running>,
    pub base: String,
    pub http: Client,
}

impl Server {
    pub async fn start() -> Server {
        Self::with(|_| {}).await
    }

    pub async fn with(f: impl FnOnce(&mut Config)) -> Server {
        let mut c = test_config();
        f(&mut c);
        let running = valet_server::start(c, "127.0.0.1:0").await.expect("server starts");
        let base = format!("http://{}", running.addr);
        Server { running: Some(running), base, http: Client::new() }
    }

    /// Helpers for a server started elsewhere (a child process).
    pub fn remote(base: &str) -> Server {
        Server { running: None, base: base.to_owned(), http: Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stats(&self) -> Value {
        self.http.get(self.url("/dev/stats")).send().await.unwrap().json().await.unwrap()
    }

    /// Polls `/dev/stats` until `pred` holds (liveness-bounded).
    pub async fn wait_stats(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + LIVENESS;
        loop {
            let s = self.stats().await;
            if pred(&s) {
                return s;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; stats: {s}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn session(&self, token: &str) -> String {
        let res = self.http.post(self.url("/api/v2/sessions")).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        v["convo_id"].as_str().unwrap().to_owned()
    }

    pub async fn send(&self, token: &str, convo: &str, text: &str) -> Response {
        self.post_json(token, &format!("/api/v2/agent_convos/{convo}/stream_message"), serde_json::json!({ "text": text }))
            .await
    }

    pub async fn history(&self, token: &str, convo: &str) -> Vec<Value> {
        let res = self.get(token, &format!("/api/v2/agent_convos/{convo}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(self.url(&format!("/dev/admin{path}")))
            .bearer_auth(dev::ADMIN_SECRET)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "admin {path}: {}", res.status());
        res.json().await.unwrap()
    }

    pub async fn stream(&self, token: &str, convo: &str) -> Stream {
        self.stream_with(token, convo, None).await.expect("stream opens")
    }

    pub async fn stream_with(&self, token: &str, convo: &str, last_event_id: Option<&str>) -> Result<Stream, Response> {
        let mut req = self
            .http
            .get(self.url(&format!("/api/v2/agent_convos/{convo}/events")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        if res.status() != StatusCode::OK {
            return Err(res);
        }
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        // Over HTTP/1.1 the stream's connection is not kept for reuse.
        assert_eq!(res.headers()["connection"], "close");
        Ok(Stream::spawn(res))
    }
}

/// Mints a dev-company token for `source_key` valid for `ttl` seconds.
pub fn token(source_key: &str) -> String {
    token_ttl(source_key, 900)
}

pub fn token_ttl(source_key: &str, ttl: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    mint(dev::SECRET, &claims(source_key, now + ttl))
}

pub fn claims(source_key: &str, exp: i64) -> Claims {
    Claims {
        iss: dev::API_KEY.into(),
        aud: AUDIENCE.into(),
        company_api_key: dev::API_KEY.into(),
        agent_uuid: dev::AGENT_ID.into(),
        source_key: source_key.into(),
        iat: chrono::Utc::now().timestamp(),
        exp,
        jti: None,
        nbf: None,
    }
}

/// One raw SSE event as received.
#[derive(Debug, Clone)]
pub struct Raw {
    pub event: String,
    pub data: String,
    pub id: String,
}

impl Raw {
    pub fn frame(&self) -> ServerFrame {
        decode_frame(&self.event, &self.data).expect("valid frame").expect("known frame")
    }
}

/// A live SSE stream read in the background. `None` from `next` = ended.
pub struct Stream {
    rx: mpsc::UnboundedReceiver<Raw>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream {
    fn spawn(res: Response) -> Stream {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = res.bytes_stream();
            let mut parser = SseParser::new();
            while let Some(Ok(chunk)) = body.next().await {
                for item in parser.feed(&chunk) {
                    if let SseItem::Event(e) = item {
                        if tx.send(Raw { event: e.event, data: e.data, id: e.id }).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Stream { rx, task }
    }

    /// The next event, or `None` when the stream ended; panics after the liveness timeout.
    pub async fn next(&mut self) -> Option<Raw> {
        tokio::time::timeout(LIVENESS, self.rx.recv()).await.expect("stream event within liveness timeout")
    }

    /// The next event other than `ping`.
    pub async fn next_non_ping(&mut self) -> Option<Raw> {
        loop {
            let e = self.next().await?;
            if e.event != "ping" {
                return Some(e);
            }
        }
    }

    /// Whether an event arrives within `d` (for "nothing more arrives").
    pub async fn quiet_for(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.rx.recv()).await.is_err()
    }

    /// Waits for the first frame of `event` type, skipping others; returns it.
    pub async fn until(&mut self, event: &str) -> Raw {
        loop {
            let e = self.next().await.unwrap_or_else(|| panic!("stream ended before a `{event}` frame"));
            if e.event == event {
                return e;
            }
        }
    }

    /// Disconnects.
    pub fn close(self) {
        self.task.abort();
    }
}

/// The message inside a `message` frame.
pub fn message_of(raw: &Raw) -> Value {
    let v: Value = serde_json::from_str(&raw.data).unwrap();
    assert_eq!(v["type"], "message");
    v["message"].clone()
}
