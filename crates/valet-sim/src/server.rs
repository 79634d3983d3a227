//! The Valet server, as the SDK sees it over HTTP: a message store with
//! `seq`, event streams that carry a message only once it is stored, the
//! cap of 2 streams per (user, agent), `closed` frames of every reason,
//! refusals (401/404/408/429/5xx), stalls, `kill -9` and a restart that
//! loses nothing stored, idempotency keys, `Last-Event-ID` and `?after=`.
//!
//! Variants drawn per session: `seq` on the wire or not (an older server),
//! SSE ids and `?after=` or not, the server's clock ahead of or behind the
//! browser's.

use crate::{Ev, PageEv, Rng, World};
use valet_core::convo::Input;
use valet_core::send::SendOutcome;
use valet_core::session::SessionInput;

/// The streams one (user, agent) may hold.
pub const STREAM_CAP: usize = 2;
/// Interval of `ping` frames.
pub const PING_MS: u64 = 15_000;
/// How long a browser may keep the socket of a stream given up while its
/// answer was on the way, to drain it for reuse (Chromium: up to 5 s, on a
/// server that keeps the connection alive): the server holds the stream,
/// against the cap, until then.
pub const DRAIN_MS: u64 = 5_000;

/// An endpoint a refusal applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET .../events`.
    Stream,
    /// `GET .../agent_convos/{id}` (history).
    Reconcile,
    /// `POST .../stream_message`.
    Post,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its `seq` (1, 2, …: its index + 1).
    pub seq: u64,
    /// The idempotency key of the send that stored it.
    pub key: Option<String>,
    /// Its JSON, as the wire carries it.
    pub json: String,
}

/// A stream the server holds.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The page it serves.
    pub pid: u64,
    /// The page's attempt number.
    pub attempt: u64,
    /// Not ended yet (it counts against the cap).
    pub alive: bool,
    /// Silent: what is written never arrives.
    pub stalled: bool,
    /// Bytes wait for the browser to be online again (TCP holds them).
    pub held: Vec<String>,
    /// When its last bytes arrive (bytes keep their order).
    pub next_at: u64,
    /// When its answer (`StreamOpened`) reaches the page.
    pub answered_at: u64,
}

/// What the server is asked, or does by itself.
#[derive(Debug, Clone)]
pub enum ServerEv {
    /// A stream request arrives.
    Open {
        /// From page.
        pid: u64,
        /// Its attempt.
        attempt: u64,
        /// Bearer token.
        token: String,
        /// `Last-Event-ID`.
        last_event_id: Option<String>,
    },
    /// The client dropped stream `sid`.
    ClientClosed {
        /// The stream.
        sid: usize,
    },
    /// A history request arrives.
    Reconcile {
        /// From page.
        pid: u64,
        /// Its request number.
        req: u64,
        /// Bearer token.
        token: String,
        /// `?after=`.
        after: Option<String>,
    },
    /// A send arrives.
    Post {
        /// From page.
        pid: u64,
        /// The send.
        id: u64,
        /// Bearer token.
        token: String,
        /// Body.
        json: String,
    },
    /// Time for stream `sid`'s ping.
    Ping {
        /// The stream.
        sid: usize,
    },
    /// The token of stream `sid` has under 5 minutes left.
    AuthExpiring {
        /// The stream.
        sid: usize,
    },
    /// The agent answers.
    AgentReply,
}

/// The server's state.
#[derive(Debug)]
pub struct Server {
    /// Running (false between a kill and the restart).
    pub up: bool,
    /// The store (survives a kill).
    pub messages: Vec<Stored>,
    /// Every stream ever opened (index: its id).
    pub streams: Vec<Stream>,
    refusals: Vec<(Endpoint, u16, u32)>,
    /// Sends to store whose answer is then lost.
    pub lose_next_answer: u32,
    /// History answers still to come slowly (read at once, sent late).
    pub slow_history: u32,
    /// Messages carry `seq`.
    pub seq_on_wire: bool,
    /// Frames carry `id:` and `Last-Event-ID` replays.
    pub ids: bool,
    /// History takes `?after=`.
    pub after: bool,
    /// The server's clock minus the browser's.
    pub skew_ms: i64,
    revoked_before: u64,
    /// Per page: 401s in a row.
    refused_401: std::collections::HashMap<(u64, Endpoint), u32>,
}

impl Server {
    /// A server of a drawn variant.
    pub fn new(rng: &mut Rng) -> Server {
        let seq_on_wire = rng.chance(0.85);
        Server {
            up: true,
            messages: Vec::new(),
            streams: Vec::new(),
            refusals: Vec::new(),
            lose_next_answer: 0,
            slow_history: 0,
            seq_on_wire,
            ids: seq_on_wire && rng.chance(0.7),
            after: rng.chance(0.7),
            skew_ms: rng.range(0, 240_000) as i64 - 120_000,
            revoked_before: 0,
            refused_401: Default::default(),
        }
    }

    /// The next `n` requests to `ep` get `status`.
    pub fn refuse(&mut self, ep: Endpoint, status: u16, n: u32) {
        // Three 401s in a row stop a convo by design: one at a time.
        let n = if status == 401 { 1 } else { n };
        self.refusals.push((ep, status, n));
    }

    /// Tokens issued before `now` are refused from now on.
    pub fn revoke(&mut self, now: u64) {
        self.revoked_before = now;
    }

    /// No refusal or lost answer is pending.
    pub fn clear_faults(&mut self) {
        self.refusals.clear();
        self.lose_next_answer = 0;
        self.slow_history = 0;
    }

    fn take_refusal(&mut self, ep: Endpoint) -> Option<u16> {
        let i = self.refusals.iter().position(|r| r.0 == ep)?;
        let status = self.refusals[i].1;
        self.refusals[i].2 -= 1;
        if self.refusals[i].2 == 0 {
            self.refusals.remove(i);
        }
        Some(status)
    }

    /// How many stored messages carry idempotency key `key`.
    pub fn stored_with_key(&self, key: &str) -> usize {
        self.messages.iter().filter(|m| m.key.as_deref() == Some(key)).count()
    }

    /// How many stored messages have this text.
    pub fn stored_with_text(&self, text: &str) -> usize {
        let content = format!("\"content\":{},", serde_json::to_string(text).unwrap());
        self.messages.iter().filter(|m| m.json.contains(&content)).count()
    }

    /// Streams counted against the cap.
    pub fn alive_streams(&self) -> usize {
        self.streams.iter().filter(|s| s.alive).count()
    }

    fn frame(&self, m: &Stored) -> String {
        let id = if self.ids { format!("id: {}\n", m.seq) } else { String::new() };
        format!(
            "{id}event: message\ndata: {{\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{}}}\n\n",
            m.json
        )
    }
}

fn status_body(status: u16, retry_after_s: u64) -> (Option<String>, String) {
    match status {
        429 => (
            Some(retry_after_s.to_string()),
            format!("{{\"status\":\"rate_limited\",\"convo_id\":\"convo\",\"state\":\"open\",\"retry_after_seconds\":{retry_after_s}}}"),
        ),
        401 => (None, "{\"error\":\"unauthorized\"}".into()),
        404 => (None, "{\"error\":\"not_found\"}".into()),
        _ => (None, format!("{{\"error\":\"status {status}\"}}")),
    }
}

impl World {
    /// One-way network latency, ms.
    pub fn latency(&mut self) -> u64 {
        let base = self.browser.latency_ms;
        base + self.rng.range(0, base)
    }

    /// The token's verdict at the server: `true` when good. Faults never
    /// refuse a page's tokens three times in a row (by design that stops
    /// a convo: a token setup that is broken for good).
    fn token_ok(&mut self, pid: u64, ep: Endpoint, token: &str) -> bool {
        let good = match self.browser.issued.get(token) {
            Some(&(iat, exp_ms)) => iat >= self.server.revoked_before && (exp_ms as i64) > self.now as i64 + self.server.skew_ms,
            None => false,
        };
        self.auth_verdict(pid, ep, good)
    }

    /// Counts a 401 for `pid` at `ep`, within the faults' limit: a third
    /// one in a row (no success in between) is not given.
    fn auth_verdict(&mut self, pid: u64, ep: Endpoint, good: bool) -> bool {
        let streak = self.server.refused_401.entry((pid, ep)).or_default();
        if good || *streak >= 2 {
            true
        } else {
            *streak += 1;
            false
        }
    }

    /// `pid`'s request to `ep` succeeded.
    pub(crate) fn succeeded(&mut self, pid: u64, ep: Endpoint) {
        self.server.refused_401.remove(&(pid, ep));
    }

    /// A refusal due for `ep`, but a third 401 in a row for `pid`.
    fn refusal(&mut self, pid: u64, ep: Endpoint) -> Option<u16> {
        match self.server.take_refusal(ep) {
            Some(401) if self.auth_verdict(pid, ep, false) => None,
            other => other,
        }
    }

    fn answer(&mut self, pid: u64, input: Input) {
        let d = self.latency();
        self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(input)) });
    }

    /// Writes `text` on stream `sid` (nothing arrives from a stalled or
    /// ended stream; while the browser is offline it waits).
    pub fn write(&mut self, sid: usize, text: String) {
        let s = &self.server.streams[sid];
        if !s.alive || s.stalled {
            return;
        }
        if !self.browser.online {
            self.server.streams[sid].held.push(text);
            return;
        }
        // A frame is sometimes cut in two chunks.
        let cut = text.len() > 8 && self.rng.chance(0.1);
        let lat = self.latency();
        let s = &mut self.server.streams[sid];
        let at = (self.now + lat).max(s.next_at);
        s.next_at = at;
        let (pid, attempt) = (s.pid, s.attempt);
        let chunks = if cut {
            let i = 1 + self.rng.next_u64() as usize % (text.len() - 1);
            vec![text[..i].to_owned(), text[i..].to_owned()]
        } else {
            vec![text]
        };
        for text in chunks {
            let d = at - self.now;
            self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::StreamText { attempt, text })) });
        }
    }

    /// Ends stream `sid` from the server's side (after its bytes), with
    /// `failed`: a reset rather than a clean end.
    pub fn end_stream(&mut self, sid: usize, failed: bool) {
        let lat = self.latency();
        let s = &mut self.server.streams[sid];
        if !s.alive {
            return;
        }
        s.alive = false;
        let at = (self.now + lat).max(s.next_at);
        let (pid, attempt) = (s.pid, s.attempt);
        let input = if failed { Input::StreamFailed { attempt, message: "network error".into() } } else { Input::StreamEnded { attempt } };
        let d = at - self.now;
        self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(input)) });
    }

    /// The browser is back online: what TCP held arrives.
    pub fn flush_held(&mut self) {
        for sid in 0..self.server.streams.len() {
            let held = std::mem::take(&mut self.server.streams[sid].held);
            for text in held {
                self.write(sid, text);
            }
        }
    }

    /// Stores a message and streams it to every open stream.
    pub fn store(&mut self, from: &str, key: Option<String>, text: &str) {
        let seq = self.server.messages.len() as u64 + 1;
        let seq_field = if self.server.seq_on_wire { format!(",\"seq\":{seq}") } else { String::new() };
        let json = format!(
            "{{\"id\":\"m{seq}\",\"content\":{},\"from\":\"{from}\",\"turn_number\":{seq},\"created_at\":\"2027-01-15T08:00:00.000Z\",\"participant\":null,\"files\":[]{seq_field}}}",
            serde_json::to_string(text).unwrap()
        );
        let m = Stored { seq, key, json };
        let frame = self.server.frame(&m);
        self.server.messages.push(m);
        trace!(self, "server stored m{seq} ({from})");
        for sid in 0..self.server.streams.len() {
            if self.server.streams[sid].alive {
                self.write(sid, frame.clone());
            }
        }
    }

    /// The agent says something (not while the server is down).
    pub fn store_agent_message(&mut self) {
        if self.server.up {
            let n = self.server.messages.len();
            self.store("ai_agent", None, &format!("agent says {n}"));
        }
    }

    /// `kill -9`: every stream resets, nothing stored is lost.
    pub fn kill_server(&mut self) {
        self.server.up = false;
        for sid in 0..self.server.streams.len() {
            if self.server.streams[sid].alive {
                self.server.streams[sid].stalled = false;
                self.end_stream(sid, true);
            }
        }
    }

    /// The server is up again.
    pub fn restart_server(&mut self) {
        if !self.server.up {
            trace!(self, "server restarted");
            self.server.up = true;
        }
    }

    fn random_alive_stream(&mut self, speaking: bool) -> Option<usize> {
        let alive: Vec<usize> =
            (0..self.server.streams.len()).filter(|&i| self.server.streams[i].alive && !(speaking && self.server.streams[i].stalled)).collect();
        if alive.is_empty() {
            None
        } else {
            Some(alive[self.rng.next_u64() as usize % alive.len()])
        }
    }

    /// A `closed` frame of `reason`, then the end.
    pub fn close_a_stream(&mut self, reason: &str) {
        if let Some(sid) = self.random_alive_stream(true) {
            self.write(sid, format!("event: closed\ndata: {{\"type\":\"closed\",\"reason\":\"{reason}\"}}\n\n"));
            self.end_stream(sid, false);
        }
    }

    /// A connection reset.
    pub fn reset_a_stream(&mut self) {
        if let Some(sid) = self.random_alive_stream(false) {
            self.server.streams[sid].stalled = false;
            self.end_stream(sid, true);
        }
    }

    /// A stream goes silent for good.
    pub fn stall_a_stream(&mut self) {
        if let Some(sid) = self.random_alive_stream(true) {
            self.server.streams[sid].stalled = true;
        }
    }

    /// A frame no handler may see.
    pub fn malformed_frame(&mut self) {
        const BAD: &[&str] = &[
            "event: message\ndata: {not json\n\n",
            "event: message\ndata: {\"type\":\"message\",\"action\":\"create\",\"message\":{\"id\":\"x1\",\"content\":\"c\"}}\n\n",
            "event: message\ndata: {\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"other\",\"message\":{\"id\":\"x2\",\"content\":\"c\",\"from\":\"ai_agent\",\"turn_number\":1,\"created_at\":\"t\",\"participant\":null,\"files\":[],\"seq\":1}}\n\n",
            "event: message\ndata: {\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":{\"id\":\"x3\",\"content\":\"c\",\"turn_number\":1,\"participant\":null,\"files\":[]}}\n\n",
            "data: \u{1}\u{2}garbage\n\n",
            "event: message\ndata: [1,2,3]\n\n",
            "event: message\ndata: {\"type\":\"message\",\"action\":\"create\",\"agent_id\":\"agent\",\"convo_id\":\"convo\",\"message\":null}\n\n",
        ];
        if let Some(sid) = self.random_alive_stream(true) {
            let bad = self.rng.pick(BAD);
            self.write(sid, bad.to_owned());
        }
    }

    /// A stored message's frame, again.
    pub fn duplicate_frame(&mut self) {
        if self.server.messages.is_empty() {
            return;
        }
        if let Some(sid) = self.random_alive_stream(true) {
            let i = self.rng.next_u64() as usize % self.server.messages.len();
            let frame = self.server.frame(&self.server.messages[i].clone());
            self.write(sid, frame);
        }
    }

    /// Handles what reaches the server.
    pub fn server_event(&mut self, e: ServerEv) {
        match e {
            ServerEv::Open { pid, attempt, token, last_event_id } => self.open(pid, attempt, &token, last_event_id),
            ServerEv::ClientClosed { sid } => {
                self.server.streams[sid].alive = false;
            }
            ServerEv::Reconcile { pid, req, token, after } => {
                if !self.server.up {
                    return self.answer(pid, Input::ReconcileFailed { req, message: "connection refused".into() });
                }
                let status = if !self.token_ok(pid, Endpoint::Reconcile, &token) { Some(401) } else { self.refusal(pid, Endpoint::Reconcile) };
                if let Some(status) = status {
                    let (retry_after, body) = status_body(status, self.rng.range(1, 5));
                    let _ = retry_after;
                    return self.answer(pid, Input::ReconcileDone { req, status, body });
                }
                let from = match (&after, self.server.after) {
                    (Some(id), true) => self.server.messages.iter().position(|m| m.json.starts_with(&format!("{{\"id\":{}", serde_json::to_string(id).unwrap()))).map_or(0, |i| i + 1),
                    _ => 0,
                };
                self.succeeded(pid, Endpoint::Reconcile);
                let list: Vec<&str> = self.server.messages[from..].iter().map(|m| m.json.as_str()).collect();
                let body = format!("{{\"messages\":[{}]}}", list.join(","));
                // The history is read now; a busy server sends it late.
                let busy = if self.server.slow_history > 0 {
                    self.server.slow_history -= 1;
                    self.rng.range(1000, 8000)
                } else {
                    self.rng.range(0, 50)
                };
                let d = self.latency() + busy;
                self.at(d, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::ReconcileDone { req, status: 200, body })) });
            }
            ServerEv::Post { pid, id, token, json } => self.post(pid, id, &token, &json),
            ServerEv::Ping { sid } => {
                if self.server.streams[sid].alive {
                    self.write(sid, "event: ping\ndata: {\"type\":\"ping\"}\n\n".into());
                    self.at(PING_MS, Ev::Server(ServerEv::Ping { sid }));
                }
            }
            ServerEv::AuthExpiring { sid } => {
                if self.server.streams[sid].alive && !self.server.streams[sid].stalled {
                    self.write(sid, "event: closed\ndata: {\"type\":\"closed\",\"reason\":\"auth_expiring\"}\n\n".into());
                    self.end_stream(sid, false);
                }
            }
            ServerEv::AgentReply => {
                let n = self.rng.range(1, 3);
                for _ in 0..n {
                    self.store_agent_message();
                }
            }
        }
    }

    fn open(&mut self, pid: u64, attempt: u64, token: &str, last_event_id: Option<String>) {
        if !self.server.up {
            return self.answer(pid, Input::StreamFailed { attempt, message: "connection refused".into() });
        }
        let status = if !self.token_ok(pid, Endpoint::Stream, token) {
            Some(401)
        } else if let Some(s) = self.refusal(pid, Endpoint::Stream) {
            Some(s)
        } else if self.server.alive_streams() >= STREAM_CAP {
            trace!(self, "server: stream cap for page {pid}");
            self.cap_refusals += 1;
            Some(429)
        } else {
            None
        };
        if let Some(status) = status {
            let secs = if self.server.alive_streams() >= STREAM_CAP { 30 } else { self.rng.range(1, 5) };
            let (retry_after, body) = status_body(status, secs);
            return self.answer(pid, Input::StreamRefused { attempt, status, retry_after, body });
        }
        // The 401 streak ends when the page takes this answer (see `page_event`).
        let sid = self.server.streams.len();
        let lat = self.latency();
        self.server.streams.push(Stream { pid, attempt, alive: true, stalled: false, held: Vec::new(), next_at: self.now + lat, answered_at: self.now + lat });
        self.at(lat, Ev::Page { pid, what: PageEv::Input(SessionInput::Convo(Input::StreamOpened { attempt })) });
        self.write(sid, format!("event: ready\ndata: {{\"type\":\"ready\",\"conn_id\":\"c{sid}\"}}\n\n"));
        if let (true, Some(last)) = (self.server.ids, last_event_id.and_then(|l| l.parse::<u64>().ok())) {
            let replay: Vec<String> = self.server.messages.iter().filter(|m| m.seq > last).map(|m| self.server.frame(m)).collect();
            for f in replay {
                self.write(sid, f);
            }
        }
        self.at(PING_MS, Ev::Server(ServerEv::Ping { sid }));
        let exp_ms = self.browser.issued.get(token).map_or(0, |t| t.1);
        let server_now = (self.now as i64 + self.server.skew_ms) as u64;
        let expiring_in = exp_ms.saturating_sub(5 * 60_000).saturating_sub(server_now);
        self.at(expiring_in, Ev::Server(ServerEv::AuthExpiring { sid }));
        // The page gave up on this attempt while it was on its way.
        if !self.page_streams(pid, attempt) {
            let d = self.latency();
            self.at(d, Ev::Server(ServerEv::ClientClosed { sid }));
        }
    }

    fn post(&mut self, pid: u64, id: u64, token: &str, json: &str) {
        let answer = |w: &mut World, outcome: SendOutcome| w.answer(pid, Input::Posted { id, outcome, body: String::new() });
        if !self.server.up {
            return answer(self, SendOutcome::Network("connection refused".into()));
        }
        let status = if !self.token_ok(pid, Endpoint::Post, token) { Some(401) } else { self.refusal(pid, Endpoint::Post) };
        if let Some(status) = status {
            let (retry_after, body) = status_body(status, self.rng.range(1, 5));
            return answer(self, SendOutcome::Http { status, retry_after, body });
        }
        self.succeeded(pid, Endpoint::Post);
        let v: serde_json::Value = serde_json::from_str(json).expect("a send body is JSON");
        let key = v["idempotency_key"].as_str().map(str::to_owned);
        let text = v["text"].as_str().unwrap_or("").to_owned();
        let known = key.as_deref().is_some_and(|k| self.server.stored_with_key(k) > 0);
        if !known {
            self.store("appuser", key, &text);
            if self.rng.chance(0.5) {
                let d = self.rng.range(100, 2000);
                self.at(d, Ev::Server(ServerEv::AgentReply));
            }
        }
        if self.server.lose_next_answer > 0 {
            self.server.lose_next_answer -= 1;
            return answer(self, SendOutcome::Network("connection reset".into()));
        }
        answer(self, SendOutcome::Ok)
    }
}
