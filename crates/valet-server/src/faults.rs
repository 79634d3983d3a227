//! Fault injection for routes (dev mode): "answer the next N requests of a
//! route with this status and `Retry-After`", and per-route request counts.
//!
//! Routes have short stable names (see [`route_name`]); the middleware runs
//! before authentication, as a failing proxy or server would.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::AppState;

/// One injected fault.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultRule {
    /// Route name: `sessions`, `list_convos`, `get_convo`, `stream_message`,
    /// `upload_file`, `events`, `stream_ticket`.
    pub route: String,
    /// HTTP status to answer.
    pub status: u16,
    /// How many requests to answer so (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// `Retry-After` seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// JSON body (default: an error body with code `injected_fault`).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

/// The stable route names.
pub const ROUTES: [&str; 7] =
    ["sessions", "list_convos", "get_convo", "stream_message", "upload_file", "events", "stream_ticket"];

/// The name of an API route, from its method and pattern.
pub fn route_name(method: &Method, pattern: &str) -> Option<&'static str> {
    Some(match (method.as_str(), pattern) {
        ("POST", "/api/v2/sessions") => "sessions",
        ("GET", "/api/v2/agent_convos") => "list_convos",
        ("GET", "/api/v2/agent_convos/{convo}") => "get_convo",
        ("POST", "/api/v2/agent_convos/{convo}/stream_message") => "stream_message",
        ("POST", "/api/v2/agent_convos/{convo}/upload_file") => "upload_file",
        ("GET", "/api/v2/agent_convos/{convo}/events") => "events",
        ("POST", "/api/v2/agent_convos/{convo}/stream_ticket") => "stream_ticket",
        _ => return None,
    })
}

/// Pending faults and request counters.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<HashMap<&'static str, VecDeque<FaultRule>>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Faults {
    /// Queues a fault; errors on an unknown route or status.
    pub fn add(&self, rule: FaultRule) -> Result<(), String> {
        let route = ROUTES.iter().find(|r| **r == rule.route).ok_or_else(|| format!("unknown route {:?}", rule.route))?;
        StatusCode::from_u16(rule.status).map_err(|_| format!("invalid status {}", rule.status))?;
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).entry(route).or_default().push_back(rule);
        Ok(())
    }

    /// Removes every pending fault.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Requests seen per route.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn take(&self, route: &'static str) -> Option<FaultRule> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let queue = rules.get_mut(route)?;
        let rule = queue.front_mut()?;
        rule.count = rule.count.saturating_sub(1);
        let taken = rule.clone();
        if rule.count == 0 {
            queue.pop_front();
        }
        Some(taken)
    }
}

/// Middleware: count the request, answer with a pending fault if any.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().and_then(|p| route_name(req.method(), p.as_str()));
    let Some(route) = route else {
        return next.run(req).await;
    };
    *state.faults.counts.lock().unwrap_or_else(|p| p.into_inner()).entry(route).or_default() += 1;
    let Some(rule) = state.faults.take(route) else {
        return next.run(req).await;
    };
    tracing::info!(route, status = rule.status, "answering with an injected fault");
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = rule.body.unwrap_or_else(|| {
        serde_json::json!({"code": "injected_fault", "message": format!("injected {} on {route}", rule.status)})
    });
    let mut res = (status, Json(body)).into_response();
    if let Some(secs) = rule.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}
