//! Server configuration: companies, agents, limits and timings.
//!
//! Every duration the contract names (stream age, the `auth_expiring` lead,
//! the ping interval, the stream cap's `Retry-After`) is a field here, so
//! tests can run them in seconds. Defaults are the Valet service's.

use std::time::Duration;

use valet_core::wire::AttachmentPolicy;

/// A customer company: its API key (the JWT `iss`), the secret its backend
/// signs tokens with, its agents and the browser origins it allows.
#[derive(Debug, Clone)]
pub struct Company {
    /// Display name.
    pub name: String,
    /// The company API key; tokens carry it as `iss` and `company_api_key`.
    pub api_key: String,
    /// HS256 signing secret.
    pub secret: String,
    /// Agent ids (`agent_uuid` claims) that belong to the company.
    pub agents: Vec<String>,
    /// Allowed browser origins: exact (`https://app.example.com`) or with a
    /// wildcard port (`http://127.0.0.1:*`).
    pub origins: Vec<String>,
    /// What may be attached to messages.
    pub attachment_policy: AttachmentPolicy,
}

/// The shortest HS256 secret a company may have (RFC 7518 §3.2: a key of
/// the hash's size, 256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

impl Company {
    /// Checks what would make the company unsafe to serve: a short secret
    /// (tokens signed with it can be forged) or no agent.
    pub fn validate(&self) -> Result<(), String> {
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "company {:?}: its `secret` is {} bytes; an HS256 secret must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)",
                self.name,
                self.secret.len()
            ));
        }
        if self.api_key.trim().is_empty() {
            return Err(format!("company {:?}: `api_key` must not be empty", self.name));
        }
        if self.agents.is_empty() {
            return Err(format!("company {:?}: `agents` must list at least one agent", self.name));
        }
        Ok(())
    }

    /// Whether `origin` is on this company's allowlist.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|pattern| origin_matches(pattern, origin))
    }
}

/// Matches an origin against `scheme://host[:port]` or `scheme://host:*`.
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.strip_suffix(":*") {
        Some(prefix) => origin
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
        None => pattern == origin,
    }
}

/// The dev company's fixed identifiers (dev mode only; printed at start).
pub mod dev {
    /// Dev company API key.
    pub const API_KEY: &str = "dev-company-key";
    /// Dev company signing secret.
    pub const SECRET: &str = "dev-company-secret-not-for-production";
    /// The dev agent's id.
    pub const AGENT_ID: &str = "00000000-0000-4000-8000-00000000a9e1";
    /// Default admin secret in dev mode.
    pub const ADMIN_SECRET: &str = "dev-admin-secret";
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Known companies.
    pub companies: Vec<Company>,
    /// Dev mode: `/dev/jwt`, `/dev/stats` and the admin API are mounted.
    pub dev: bool,
    /// Secret for `/dev/admin/*` (sent as `Authorization: Bearer`).
    pub admin_secret: String,
    /// SQLite path, or `:memory:`.
    pub db_path: String,
    /// Base URL used in file download links.
    pub public_url: String,
    /// Live streams allowed per (appuser, agent).
    pub max_streams_per_user: usize,
    /// `Retry-After` of the stream cap's 429.
    pub stream_cap_retry_after: Duration,
    /// Maximum age of a stream before `closed{server_cap}`.
    pub stream_max_age: Duration,
    /// `closed{auth_expiring}` this long before the opening token's `exp`.
    pub auth_expiring_lead: Duration,
    /// Interval between `ping` frames.
    pub ping_interval: Duration,
    /// Dev agent's delay before it answers.
    pub agent_delay: Duration,
    /// Dev agent: the pause between the tokens of a streamed reply; zero
    /// answers in one piece (no `message_delta`, a JSON answer to
    /// `stream_message`).
    pub agent_token_delay: Duration,
    /// `stream_message` calls allowed per convo per window.
    pub rate_limit_messages: usize,
    /// The rate limit's window.
    pub rate_limit_window: Duration,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest message text, in characters.
    pub max_text_chars: usize,
    /// Longest time graceful shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// A connection must send a request's whole head within this (a silent
    /// or trickling connection is closed); also the idle limit between
    /// requests of a kept-alive connection.
    pub header_read_timeout: Duration,
    /// A request body must arrive within this.
    pub request_body_timeout: Duration,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// `POST /sessions` allowed per appuser per window.
    pub rate_limit_sessions: usize,
    /// Stream tickets allowed per appuser per window.
    pub rate_limit_tickets: usize,
    /// `stream_message` calls allowed per appuser per window, across convos.
    pub rate_limit_user_messages: usize,
}

impl Config {
    /// The dev configuration: one company allowing local origins, one agent,
    /// an in-memory database, production timings.
    pub fn dev() -> Self {
        Config {
            companies: vec![Company {
                name: "Dev Company".into(),
                api_key: dev::API_KEY.into(),
                secret: dev::SECRET.into(),
                agents: vec![dev::AGENT_ID.into()],
                origins: vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()],
                attachment_policy: AttachmentPolicy {
                    max_files_per_message: 3,
                    max_files_per_convo: 20,
                    max_file_size_bytes: 5 * 1024 * 1024,
                    allowed_mime_types: vec![
                        "image/png".into(),
                        "image/jpeg".into(),
                        "image/gif".into(),
                        "application/pdf".into(),
                        "text/plain".into(),
                    ],
                },
            }],
            dev: true,
            admin_secret: dev::ADMIN_SECRET.into(),
            db_path: ":memory:".into(),
            public_url: "http://127.0.0.1:8787".into(),
            max_streams_per_user: 2,
            stream_cap_retry_after: Duration::from_secs(30),
            stream_max_age: Duration::from_secs(3600),
            auth_expiring_lead: Duration::from_secs(300),
            ping_interval: Duration::from_secs(15),
            agent_delay: Duration::from_millis(400),
            agent_token_delay: Duration::ZERO,
            rate_limit_messages: 20,
            rate_limit_window: Duration::from_secs(60),
            max_body_bytes: 64 * 1024,
            max_text_chars: 8000,
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(30),
            max_connections: 20_000,
            rate_limit_sessions: 30,
            rate_limit_tickets: 120,
            rate_limit_user_messages: 120,
        }
    }

    /// The company whose API key is `api_key`.
    pub fn company(&self, api_key: &str) -> Option<&Company> {
        self.companies.iter().find(|c| c.api_key == api_key)
    }

    /// Whether any company allows `origin` (the CORS preflight answer: the
    /// company is only known once the token is read).
    pub fn any_company_allows(&self, origin: &str) -> bool {
        self.companies.iter().any(|c| c.allows_origin(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_and_empty_companies_are_refused() {
        let mut c = Config::dev().companies.remove(0);
        assert!(c.validate().is_ok(), "the dev company is valid");
        for secret in ["", "x", "31-bytes-is-not-enough-for-hs25"] {
            c.secret = secret.into();
            let e = c.validate().unwrap_err();
            assert!(e.contains("at least 32 bytes"), "{e}");
        }
        c.secret = "x".repeat(32);
        c.agents.clear();
        assert!(c.validate().is_err());
    }

    #[test]
    fn origin_patterns() {
        assert!(origin_matches("http://127.0.0.1:*", "http://127.0.0.1:5173"));
        assert!(!origin_matches("http://127.0.0.1:*", "http://127.0.0.1"));
        assert!(!origin_matches("http://127.0.0.1:*", "http://127.0.0.1:80x"));
        assert!(!origin_matches("http://127.0.0.1:*", "http://127.0.0.10:80"));
        assert!(!origin_matches("http://localhost:*", "http://localhost.evil.com:80"));
        assert!(origin_matches("https://app.example.com", "https://app.example.com"));
        assert!(!origin_matches("https://app.example.com", "https://app.example.com:444"));
    }
}
