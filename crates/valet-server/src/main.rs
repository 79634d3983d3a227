//! `valet-server` command line. `--help` lists every option.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use valet_core::wire::AttachmentPolicy;
use valet_server::config::{dev, Company, Config};

/// A local, Valet-v2-compatible API server with an embedded SQLite store,
/// a built-in dev agent and (in dev mode) fault injection.
#[derive(Debug, Parser)]
#[command(version, args_override_self = true)]
struct Cli {
    /// Dev mode: a dev company and agent, `POST /dev/jwt`, `GET /dev/stats`
    /// and the admin API under `/dev/admin`.
    #[arg(long)]
    dev: bool,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: String,
    /// SQLite database file (`:memory:` for none).
    #[arg(long, default_value = "target/valet-dev.db")]
    db: String,
    /// Companies (JSON list of {name, api_key, secret, agents, origins,
    /// attachment_policy?}); required without --dev, added to the dev
    /// company with it.
    #[arg(long)]
    companies: Option<PathBuf>,
    /// Serve this directory's files at `/` (the demo page).
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Base URL for file links (default: http://<addr>).
    #[arg(long)]
    public_url: Option<String>,
    /// Secret of the admin API (`Authorization: Bearer <secret>`).
    #[arg(long, env = "VALET_ADMIN_SECRET", default_value = dev::ADMIN_SECRET, hide_default_value = true)]
    admin_secret: String,
    /// Live streams allowed per (appuser, agent).
    #[arg(long, default_value_t = 2)]
    max_streams_per_user: usize,
    /// `Retry-After` (seconds) of the stream cap's 429.
    #[arg(long, default_value_t = 30)]
    stream_cap_retry_after_secs: u64,
    /// Maximum stream age (ms) before `closed{server_cap}`.
    #[arg(long, default_value_t = 3_600_000)]
    stream_max_age_ms: u64,
    /// `closed{auth_expiring}` this many ms before the token's `exp`.
    #[arg(long, default_value_t = 300_000)]
    auth_expiring_lead_ms: u64,
    /// Interval between `ping` frames (ms).
    #[arg(long, default_value_t = 15_000)]
    ping_interval_ms: u64,
    /// Dev agent's answer delay (ms).
    #[arg(long, default_value_t = 400)]
    agent_delay_ms: u64,
    /// Dev agent: stream each reply token by token, this many ms apart
    /// (`message_delta` frames on the convo stream, and the token stream
    /// as `stream_message`'s answer); 0 answers in one piece.
    #[arg(long, default_value_t = 0)]
    agent_token_ms: u64,
    /// `stream_message` calls allowed per convo per window.
    #[arg(long, default_value_t = 20)]
    rate_limit_messages: usize,
    /// The rate limit window (ms).
    #[arg(long, default_value_t = 60_000)]
    rate_limit_window_ms: u64,
    /// Largest JSON request body (bytes).
    #[arg(long, default_value_t = 65_536)]
    max_body_bytes: usize,
    /// Longest message text (characters).
    #[arg(long, default_value_t = 8000)]
    max_text_chars: usize,
    /// How long graceful shutdown waits for connections (ms).
    #[arg(long, default_value_t = 10_000)]
    shutdown_grace_ms: u64,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Dev mode on an address other than loopback (needs an explicit
    /// --admin-secret of 16 or more characters).
    #[arg(long)]
    dev_allow_remote: bool,
    /// A request's head must arrive within this (ms); also the idle limit of
    /// a kept-alive connection.
    #[arg(long, default_value_t = 10_000)]
    header_read_timeout_ms: u64,
    /// A request body must arrive within this (ms).
    #[arg(long, default_value_t = 30_000)]
    request_body_timeout_ms: u64,
    /// Connections served at once.
    #[arg(long, default_value_t = 20_000)]
    max_connections: usize,
    /// `POST /sessions` allowed per appuser per rate-limit window.
    #[arg(long, default_value_t = 30)]
    rate_limit_sessions: usize,
    /// Stream tickets allowed per appuser per rate-limit window.
    #[arg(long, default_value_t = 120)]
    rate_limit_tickets: usize,
    /// `stream_message` calls allowed per appuser per window, across convos.
    #[arg(long, default_value_t = 120)]
    rate_limit_user_messages: usize,
}

/// Whether `addr` (`host:port`) is a loopback address.
fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr.rsplit_once(':').is_some_and(|(host, _)| host == "localhost"),
    }
}

#[derive(Debug, Deserialize)]
struct CompanyFile {
    name: String,
    api_key: String,
    secret: String,
    agents: Vec<String>,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default)]
    attachment_policy: AttachmentPolicy,
}

fn load_companies(path: &PathBuf) -> Result<Vec<Company>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let list: Vec<CompanyFile> = serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let companies: Vec<Company> = list
        .into_iter()
        .map(|c| Company {
            name: c.name,
            api_key: c.api_key,
            secret: c.secret,
            agents: c.agents,
            origins: c.origins,
            attachment_policy: c.attachment_policy,
        })
        .collect();
    for c in &companies {
        c.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(companies)
}

fn config(cli: &Cli) -> Result<Config, String> {
    if cli.dev && cli.companies.is_some() {
        return Err("--dev can not serve real companies (--companies): dev mode mints tokens for anyone and has an admin API \
                    that injects messages; run real companies without --dev"
            .into());
    }
    if cli.dev && !is_loopback(&cli.addr) {
        if !cli.dev_allow_remote {
            return Err(format!(
                "dev mode listens on loopback only (127.0.0.1, ::1, localhost), not {}: anyone who reaches it can mint tokens; \
                 pass --dev-allow-remote with an explicit --admin-secret to expose it anyway",
                cli.addr
            ));
        }
        if cli.admin_secret == dev::ADMIN_SECRET || cli.admin_secret.len() < 16 {
            return Err("dev mode off loopback needs an explicit --admin-secret (or VALET_ADMIN_SECRET) of 16 or more characters".into());
        }
    }
    let mut config = Config::dev();
    if !cli.dev {
        config.companies.clear();
    }
    if let Some(path) = &cli.companies {
        config.companies.extend(load_companies(path)?);
    }
    if config.companies.is_empty() {
        return Err("no companies configured: pass --dev or --companies FILE".into());
    }
    let ms = Duration::from_millis;
    config.dev = cli.dev;
    config.admin_secret = cli.admin_secret.clone();
    config.db_path = cli.db.clone();
    // Without --public-url, the bound address (known once listening: the port may be 0).
    config.public_url = cli.public_url.clone().unwrap_or_default();
    config.max_streams_per_user = cli.max_streams_per_user;
    config.stream_cap_retry_after = Duration::from_secs(cli.stream_cap_retry_after_secs);
    config.stream_max_age = ms(cli.stream_max_age_ms);
    config.auth_expiring_lead = ms(cli.auth_expiring_lead_ms);
    config.ping_interval = ms(cli.ping_interval_ms.max(1));
    config.agent_delay = ms(cli.agent_delay_ms);
    config.agent_token_delay = ms(cli.agent_token_ms);
    config.rate_limit_messages = cli.rate_limit_messages;
    config.rate_limit_window = ms(cli.rate_limit_window_ms);
    config.max_body_bytes = cli.max_body_bytes;
    config.max_text_chars = cli.max_text_chars;
    config.shutdown_grace = ms(cli.shutdown_grace_ms);
    config.header_read_timeout = ms(cli.header_read_timeout_ms.max(1));
    config.request_body_timeout = ms(cli.request_body_timeout_ms.max(1));
    config.max_connections = cli.max_connections.max(1);
    config.rate_limit_sessions = cli.rate_limit_sessions;
    config.rate_limit_tickets = cli.rate_limit_tickets;
    config.rate_limit_user_messages = cli.rate_limit_user_messages;
    Ok(config)
}

async fn terminate() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=info".into());
    if cli.log_format == "json" {
        tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        {
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_env_filter(filter)
                .init();
        }
    }
    let config = match config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("valet-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(parent) = PathBuf::from(&config.db_path).parent().filter(|p| !p.as_os_str().is_empty()) {
        if config.db_path != ":memory:" {
            let _ = std::fs::create_dir_all(parent);
        }
    }
    let listener = match tokio::net::TcpListener::bind(&cli.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("valet-server: cannot listen on {}: {e}", cli.addr);
            return std::process::ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().expect("bound");
    let mut config = config;
    if config.public_url.is_empty() {
        config.public_url = format!("http://{addr}");
    }
    let dev_mode = config.dev;
    let state = match valet_server::AppState::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("valet-server: cannot open database {}: {e}", cli.db);
            return std::process::ExitCode::from(1);
        }
    };
    // The first line is for people and scripts: where to go. Written with
    // errors ignored: a closed stdout must not take the server down.
    let mut banner = format!("valet-server listening on http://{addr}\n");
    if dev_mode {
        banner += &format!("dev mode: company api key {}, agent id {}\n", dev::API_KEY, dev::AGENT_ID);
        banner += &format!("dev mode: POST http://{addr}/dev/jwt {{\"source_key\":\"...\"}} mints a token\n");
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    match valet_server::serve(listener, state, cli.static_dir.clone(), terminate()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valet-server: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
