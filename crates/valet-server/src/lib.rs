//! `valet-server`: a local, Valet-v2-compatible API server.
//!
//! It speaks the wire contract of `valet-core::wire` (REST + SSE), keeps
//! convos in SQLite, answers with a built-in dev agent and, in dev mode,
//! offers token minting, counters and fault injection for tests. See
//! `docs/protocol.md` for the API, the extensions and the dev endpoints.
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod auth;
pub mod config;
pub mod dev;
pub mod error;
pub mod events;
pub mod faults;
pub mod hub;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::Config;
use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: store::Store,
    /// Fan-out and stream registry.
    pub hub: Arc<hub::Hub>,
    /// Injected route faults and request counters.
    pub faults: Arc<faults::Faults>,
    /// `stream_message` rate limit, per convo.
    pub rate: Arc<api::RateLimiter>,
    /// Per appuser: sessions, stream tickets and messages across convos.
    pub user_limits: Arc<api::UserLimits>,
    /// Stream tickets for `EventSource`.
    pub tickets: Arc<api::Tickets>,
    /// Appusers locked out (the dev agent's `/rage`, `/hack`, `/ban`).
    pub lockouts: Arc<agent::Lockouts>,
}

impl AppState {
    /// Opens the store and builds the state.
    pub fn new(config: Config) -> rusqlite::Result<AppState> {
        let store = store::Store::open(&config.db_path, &config.public_url)?;
        Ok(AppState {
            rate: Arc::new(api::RateLimiter::new(config.rate_limit_messages, config.rate_limit_window)),
            user_limits: Arc::new(api::UserLimits::new(&config)),
            config: Arc::new(config),
            store,
            hub: hub::Hub::new(1024),
            faults: Arc::new(faults::Faults::default()),
            tickets: Arc::new(api::Tickets::default()),
            lockouts: Arc::new(agent::Lockouts::default()),
        })
    }
}

fn cors(config: Arc<Config>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|o| config.any_company_allows(o))
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::CACHE_CONTROL,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        // `Date`: the SDK corrects token expiry for a device clock that is off.
        .expose_headers([header::RETRY_AFTER, header::DATE])
        .max_age(Duration::from_secs(600))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

/// The whole application.
pub fn router(state: AppState, static_dir: Option<&std::path::Path>) -> Router {
    let config = state.config.clone();
    let upload_limit = config
        .companies
        .iter()
        .map(|c| c.attachment_policy.max_files_per_message as usize * c.attachment_policy.max_file_size_bytes as usize)
        .max()
        .unwrap_or(0)
        + 64 * 1024;
    let api = Router::new()
        .route("/api/v2/sessions", post(api::create_session))
        .route("/api/v2/agent_convos", get(api::list_convos))
        .route("/api/v2/agent_convos/{convo}", get(api::get_convo))
        .route("/api/v2/agent_convos/{convo}/stream_message", post(api::stream_message))
        .route(
            "/api/v2/agent_convos/{convo}/upload_file",
            post(api::upload_file).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/v2/agent_convos/{convo}/events", get(events::events))
        .route("/api/v2/agent_convos/{convo}/stream_ticket", post(api::stream_ticket))
        .route("/files/{id}", get(api::download_file))
        .route("/avatars/{name}", get(api::avatar))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), faults::middleware));
    let mut app = api;
    if config.dev {
        app = app.nest("/dev", dev::router(state.clone()));
    }
    let app = app.method_not_allowed_fallback(method_not_allowed);
    let app = match static_dir {
        Some(dir) => app.fallback_service(ServeDir::new(dir)),
        None => app.fallback(not_found),
    };
    app.with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The path only: never the query, never headers (tokens).
                    tracing::info_span!("request", method = %req.method(), path = req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(config.request_body_timeout))
        .layer(cors(config))
}

/// A running server.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (tests read counters from it).
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts graceful shutdown and waits for it.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task panicked")
    }
}

/// Serves until `signal`, then closes every stream with `closed{shutdown}`
/// and waits (at most `shutdown_grace`) for connections to finish.
///
/// HTTP/1.1 (what browsers speak to a plain-HTTP API): a connection must
/// send each request's head within `header_read_timeout` (a silent or
/// trickling connection is closed, and so is a kept-alive one idle that
/// long), a body within `request_body_timeout`; at most `max_connections`
/// are served at once, more wait in the listen queue. SSE streams keep their
/// own rules (pings, the stream's age limit).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    static_dir: Option<std::path::PathBuf>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = router(state.clone(), static_dir.as_deref());
    let service = hyper_util::service::TowerToHyperService::new(app);
    let config = state.config.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout).keep_alive(true);
    let signal = std::pin::pin!(signal);
    let mut signal = signal;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: closing streams");
    state.hub.shutdown();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.shutdown_grace) => {
            tracing::warn!("shutdown grace elapsed with connections still open");
        }
    }
    Ok(())
}

/// Binds `addr` and serves in the background (tests and embedding).
pub async fn start(config: Config, addr: &str) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut config = config;
    if config.public_url.is_empty() {
        config.public_url = format!("http://{addr}");
    }
    let state = AppState::new(config).map_err(std::io::Error::other)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), None, async move {
        let _ = rx.await;
    }));
    Ok(Running { addr, state, shutdown: Some(tx), task })
}
