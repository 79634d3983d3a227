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

use std::future::{Future, IntoFuture};
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
    /// `stream_message` rate limit.
    pub rate: Arc<api::RateLimiter>,
    /// Stream tickets for `EventSource`.
    pub tickets: Arc<api::Tickets>,
}

impl AppState {
    /// Opens the store and builds the state.
    pub fn new(config: Config) -> rusqlite::Result<AppState> {
        let store = store::Store::open(&config.db_path, &config.public_url)?;
        Ok(AppState {
            rate: Arc::new(api::RateLimiter::new(config.rate_limit_messages, config.rate_limit_window)),
            config: Arc::new(config),
            store,
            hub: hub::Hub::new(1024),
            faults: Arc::new(faults::Faults::default()),
            tickets: Arc::new(api::Tickets::default()),
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
        .expose_headers([header::RETRY_AFTER])
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

/// Serves until `signal` resolves, then shuts down gracefully: every stream
/// gets `closed{shutdown}`, and connections get `shutdown_grace` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    static_dir: Option<std::path::PathBuf>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone(), static_dir.as_deref());
    let hub = state.hub.clone();
    let grace = state.config.shutdown_grace;
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        signal.await;
        tracing::info!("shutting down: closing streams");
        hub.shutdown();
        let _ = fired_tx.send(());
    });
    tokio::select! {
        result = server.into_future() => result,
        _ = async { if fired_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
            tracing::warn!("shutdown grace elapsed with connections still open");
            Ok(())
        }
    }
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
