//! Client configuration: option validation and the API's URLs.
//!
//! Decisions:
//! - Options are checked once, at `new ValetClient(...)`, with a message that
//!   names the option: a missing `agentId` or `fetchJwt` throws at once.
//! - The base URL loses trailing `/`s; ids are percent-encoded as path
//!   segments, so no id can change the path or the query.

#[allow(unused_imports)]
use crate::prelude::*;

/// The default API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.valet.red";
/// The default cap on one `fetchJwt` call, in ms.
pub const DEFAULT_FETCH_JWT_TIMEOUT_MS: u64 = 10_000;

/// How the event stream is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `fetch` + `ReadableStream`: `Authorization` header, sees HTTP status.
    Fetch,
    /// Native `EventSource`, opened with a single-use ticket (EXTENSION).
    EventSource,
}

/// Validated client options.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The agent.
    pub agent_id: String,
    /// API base URL, without trailing `/`.
    pub base_url: String,
    /// Cap on `fetchJwt`.
    pub fetch_jwt_timeout_ms: u64,
    /// Debug logging.
    pub debug: bool,
    /// Pause streams while the page is hidden.
    pub pause_on_hidden: bool,
    /// Stream transport.
    pub transport: Transport,
    /// Silence after which a stream is considered dead.
    pub stall_timeout_ms: u64,
    /// `persist: "local"`: keep a local history (see [`crate::cache`]).
    pub local_history: bool,
}

/// Raw options as given by the caller (already read from JS).
#[derive(Debug, Clone, Default)]
pub struct RawOptions {
    /// `agentId`.
    pub agent_id: Option<String>,
    /// Whether `fetchJwt` is a function.
    pub has_fetch_jwt: bool,
    /// `baseUrl`.
    pub base_url: Option<String>,
    /// `fetchJwtTimeoutMs`.
    pub fetch_jwt_timeout_ms: Option<f64>,
    /// `debug`.
    pub debug: Option<bool>,
    /// `pauseOnHidden`.
    pub pause_on_hidden: Option<bool>,
    /// `transport`.
    pub transport: Option<String>,
    /// `stallTimeoutMs`.
    pub stall_timeout_ms: Option<f64>,
    /// `persist`.
    pub persist: Option<String>,
}

fn positive_ms(name: &str, v: Option<f64>, default: u64) -> Result<u64, String> {
    match v {
        None => Ok(default),
        Some(x) if (1.0..=86_400_000.0).contains(&x) => Ok(x as u64),
        Some(_) => Err(crate::cat!("`", name, "` must be a number of milliseconds between 1 and 86400000")),
    }
}

impl ClientConfig {
    /// Validates options; the error names the option at fault.
    pub fn from_raw(raw: RawOptions) -> Result<ClientConfig, String> {
        let agent_id = raw.agent_id.filter(|a| !a.trim_ascii().is_empty()).ok_or("`agentId` is required (a non-empty string)")?;
        if !raw.has_fetch_jwt {
            return Err("`fetchJwt` is required (a function returning a Promise of a JWT string)".into());
        }
        let base_url = raw.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        // Without the trailing slashes (by bytes: `/` is ASCII, and byte
        // matching needs no char decoding).
        let base_url = base_url.trim_ascii();
        let base_url = base_url.get(..base_url.bytes().rposition(|b| b != b'/').map_or(0, |i| i + 1)).unwrap_or(base_url).to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(crate::cat!("`baseUrl` must be an http(s) URL, got ", crate::error::json_string(&base_url)));
        }
        let transport = match raw.transport.as_deref() {
            None | Some("fetch") => Transport::Fetch,
            Some("eventsource") => Transport::EventSource,
            Some(other) => {
                return Err(crate::cat!("`transport` must be \"fetch\" or \"eventsource\", got ", crate::error::json_string(other)))
            }
        };
        let local_history = match raw.persist.as_deref() {
            None | Some("none") => false,
            Some("local") => true,
            Some(other) => return Err(crate::cat!("`persist` must be \"local\" or \"none\", got ", crate::error::json_string(other))),
        };
        Ok(ClientConfig {
            local_history,
            agent_id,
            base_url,
            fetch_jwt_timeout_ms: positive_ms("fetchJwtTimeoutMs", raw.fetch_jwt_timeout_ms, DEFAULT_FETCH_JWT_TIMEOUT_MS)?,
            debug: raw.debug.unwrap_or(false),
            pause_on_hidden: raw.pause_on_hidden.unwrap_or(true),
            transport,
            stall_timeout_ms: positive_ms("stallTimeoutMs", raw.stall_timeout_ms, 45_000)?,
        })
    }

    fn convo_path(&self, convo_id: &str) -> String {
        crate::cat!(self.base_url, "/api/v2/agent_convos/", encode_segment(convo_id))
    }

    /// `POST /api/v2/sessions`.
    pub fn sessions_url(&self) -> String {
        crate::cat!(self.base_url, "/api/v2/sessions")
    }

    /// `GET /api/v2/agent_convos`.
    pub fn convos_url(&self) -> String {
        crate::cat!(self.base_url, "/api/v2/agent_convos")
    }

    /// `GET /api/v2/agent_convos/{convo}` (`?after=` when given).
    pub fn history_url(&self, convo_id: &str, after: Option<&str>) -> String {
        match after {
            Some(id) => crate::cat!(self.convo_path(convo_id), "?after=", encode_segment(id)),
            None => self.convo_path(convo_id),
        }
    }

    /// `POST .../stream_message`.
    pub fn send_url(&self, convo_id: &str) -> String {
        crate::cat!(self.convo_path(convo_id), "/stream_message")
    }

    /// `POST .../upload_file`.
    pub fn upload_url(&self, convo_id: &str) -> String {
        crate::cat!(self.convo_path(convo_id), "/upload_file")
    }

    /// `GET .../events` (with a ticket for `EventSource`).
    pub fn events_url(&self, convo_id: &str, ticket: Option<&str>) -> String {
        match ticket {
            Some(t) => crate::cat!(self.convo_path(convo_id), "/events?ticket=", encode_segment(t)),
            None => crate::cat!(self.convo_path(convo_id), "/events"),
        }
    }

    /// `POST .../stream_ticket` (EXTENSION).
    pub fn ticket_url(&self, convo_id: &str) -> String {
        crate::cat!(self.convo_path(convo_id), "/stream_ticket")
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            crate::text::push_hex(&mut out, b, true);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawOptions {
        RawOptions { agent_id: Some("a1".into()), has_fetch_jwt: true, ..Default::default() }
    }

    #[test]
    fn defaults_and_trailing_slash() {
        let c = ClientConfig::from_raw(raw()).unwrap();
        assert_eq!(c.base_url, "https://api.valet.red");
        assert_eq!(c.fetch_jwt_timeout_ms, 10_000);
        assert!(c.pause_on_hidden);
        assert_eq!(c.transport, Transport::Fetch);
        let c = ClientConfig::from_raw(RawOptions { base_url: Some("http://127.0.0.1:8787//".into()), ..raw() }).unwrap();
        assert_eq!(c.sessions_url(), "http://127.0.0.1:8787/api/v2/sessions");
        // White space around it goes too, and only trailing slashes do.
        let c = ClientConfig::from_raw(RawOptions { base_url: Some(" \thttps://x.test/v/é/ \n".into()), ..raw() }).unwrap();
        assert_eq!(c.base_url, "https://x.test/v/é");
        let e = ClientConfig::from_raw(RawOptions { base_url: Some("///".into()), ..raw() }).unwrap_err();
        assert_eq!(e, "`baseUrl` must be an http(s) URL, got \"\"");
    }

    #[test]
    fn missing_required_options_name_themselves() {
        let e = ClientConfig::from_raw(RawOptions { agent_id: None, ..raw() }).unwrap_err();
        assert!(e.contains("agentId"));
        let e = ClientConfig::from_raw(RawOptions { agent_id: Some(" \t\r\n".into()), ..raw() }).unwrap_err();
        assert!(e.contains("agentId"));
        let e = ClientConfig::from_raw(RawOptions { has_fetch_jwt: false, ..raw() }).unwrap_err();
        assert!(e.contains("fetchJwt"));
        let e = ClientConfig::from_raw(RawOptions { transport: Some("ws".into()), ..raw() }).unwrap_err();
        assert!(e.contains("transport"));
        let e = ClientConfig::from_raw(RawOptions { persist: Some("session".into()), ..raw() }).unwrap_err();
        assert_eq!(e, "`persist` must be \"local\" or \"none\", got \"session\"");
        assert!(!ClientConfig::from_raw(raw()).unwrap().local_history);
        assert!(ClientConfig::from_raw(RawOptions { persist: Some("local".into()), ..raw() }).unwrap().local_history);
        let e = ClientConfig::from_raw(RawOptions { fetch_jwt_timeout_ms: Some(-1.0), ..raw() }).unwrap_err();
        assert!(e.contains("fetchJwtTimeoutMs"));
        assert!(ClientConfig::from_raw(RawOptions { base_url: Some("ftp://x".into()), ..raw() }).is_err());
    }

    #[test]
    fn ids_can_not_escape_their_path_segment() {
        let c = ClientConfig::from_raw(raw()).unwrap();
        assert_eq!(c.history_url("../x?y", Some("m 1&z")), "https://api.valet.red/api/v2/agent_convos/..%2Fx%3Fy?after=m%201%26z");
        assert_eq!(c.events_url("c", Some("t")), "https://api.valet.red/api/v2/agent_convos/c/events?ticket=t");
    }
}
