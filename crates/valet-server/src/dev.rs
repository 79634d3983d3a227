//! Dev-mode endpoints: `POST /dev/jwt` plays the customer backend (and
//! `GET /dev/jwt` one that knows its user by a session cookie),
//! `GET /dev/stats` reads counters, `/dev/admin/*` (its own secret) injects
//! faults and drives convos for tests.

use axum::extract::{Query, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use valet_core::wire::{Author, ClosedReason, ConvoState};

use crate::agent;
use crate::auth::{mint, Claims, AUDIENCE};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::faults::FaultRule;
use crate::hub::{Control, StreamFilter};
use crate::store::NewMessage;
use crate::AppState;

/// Body of `POST /dev/jwt`.
#[derive(Debug, Deserialize)]
pub struct JwtRequest {
    /// The appuser.
    pub source_key: String,
    /// Lifetime; default and most 900 s (the contract's 15 minutes, the most
    /// the server accepts). Negative mints an already expired token.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// The agent; default the company's first.
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// `POST /dev/jwt`: a token for the dev company, as a customer backend mints it.
pub async fn mint_jwt(State(state): State<AppState>, ApiJson(req): ApiJson<JwtRequest>) -> Result<Response, ApiError> {
    Ok(Json(token_for(&state, req)?).into_response())
}

/// The cookie that names the user of `GET /dev/jwt`.
const USER_COOKIE: &str = "valet_dev_user";

/// Query of `GET /dev/jwt`.
#[derive(Debug, Default, Deserialize)]
pub struct SessionJwt {
    /// The appuser, instead of the cookie's.
    #[serde(default)]
    pub source_key: Option<String>,
}

/// `GET /dev/jwt`: a token for the user a session cookie names, as an
/// app's own backend answers a signed-in page (what `<valet-chat jwt-url>`
/// calls). A browser without the cookie gets a new anonymous user, kept a
/// year; `?source_key=` names one instead.
pub async fn session_jwt(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<SessionJwt>) -> Result<Response, ApiError> {
    let cookie = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(USER_COOKIE)?.strip_prefix('='))
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned);
    let new_user = q.source_key.is_none() && cookie.is_none();
    let source_key = q.source_key.or(cookie).unwrap_or_else(|| format!("dev-{}", uuid::Uuid::new_v4()));
    let body = token_for(&state, JwtRequest { source_key: source_key.clone(), ttl_seconds: None, agent_id: None })?;
    let mut res = Json(body).into_response();
    res.headers_mut().insert(CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    if new_user {
        let cookie = format!("{USER_COOKIE}={source_key}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly");
        if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(SET_COOKIE, v);
        }
    }
    Ok(res)
}

fn token_for(state: &AppState, req: JwtRequest) -> Result<serde_json::Value, ApiError> {
    let company = &state.config.companies[0];
    let agent_id = req.agent_id.unwrap_or_else(|| company.agents[0].clone());
    if req.source_key.is_empty() {
        return Err(ApiError::bad_request("invalid_source_key", "source_key must not be empty"));
    }
    let ttl = req.ttl_seconds.unwrap_or(900).clamp(-86_400, crate::auth::MAX_TOKEN_LIFETIME_SECS);
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: company.api_key.clone(),
        aud: AUDIENCE.into(),
        company_api_key: company.api_key.clone(),
        agent_uuid: agent_id.clone(),
        source_key: req.source_key,
        iat: now,
        exp: now + ttl,
        jti: Some(uuid::Uuid::new_v4().to_string()),
        nbf: None,
    };
    let token = mint(&company.secret, &claims);
    Ok(serde_json::json!({"token": token, "agent_id": agent_id, "expires_at": claims.exp}))
}

/// `GET /dev/stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (messages, convos) =
        state.store.read(|db| Ok::<_, rusqlite::Error>((db.count_messages()?, db.count_convos()?))).await.map_err(ApiError::internal)?;
    let streams = state.hub.stats();
    Ok(Json(serde_json::json!({
        "live_streams": streams.live_streams,
        "live_streams_by_appuser": streams.live_streams_by_appuser,
        "live_streams_by_convo": streams.live_streams_by_convo,
        "streams_opened_total": streams.streams_opened_total,
        "messages": messages,
        "convos": convos,
        "requests": state.faults.counts(),
    }))
    .into_response())
}

async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    // Compared in constant time: how long a wrong guess takes says nothing
    // about how much of it was right.
    let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(state.config.admin_secret.as_bytes())));
    if !ok {
        return ApiError::unauthorized("admin_unauthorized", "admin API needs `Authorization: Bearer <admin secret>`").into_response();
    }
    next.run(req).await
}

/// Body of the stream fault endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct StreamFault {
    /// Which streams.
    #[serde(flatten)]
    pub filter: StreamFilter,
    /// For `end`: the `closed` reason (default `shutdown`).
    #[serde(default)]
    pub reason: Option<ClosedReason>,
}

async fn stream_fault(
    State(state): State<AppState>,
    ApiPath(action): ApiPath<String>,
    ApiJson(body): ApiJson<StreamFault>,
) -> Result<Response, ApiError> {
    let command = match action.as_str() {
        "end" => Control::End(body.reason.unwrap_or(ClosedReason::Shutdown)),
        "drop" => Control::Drop,
        "stall" => Control::Stall,
        "malformed" => Control::Malformed,
        "duplicate" => Control::DuplicateNext,
        _ => return Err(ApiError::not_found("unknown_action", "actions: end, drop, stall, malformed, duplicate")),
    };
    let affected = state.hub.control(&body.filter, command);
    Ok(Json(serde_json::json!({ "affected": affected })).into_response())
}

async fn add_fault(State(state): State<AppState>, ApiJson(rule): ApiJson<FaultRule>) -> Result<Response, ApiError> {
    state.faults.add(rule).map_err(|e| ApiError::bad_request("invalid_fault", e))?;
    Ok(Json(serde_json::json!({ "ok": true })).into_response())
}

async fn clear_faults(State(state): State<AppState>) -> Response {
    state.faults.clear();
    Json(serde_json::json!({ "ok": true })).into_response()
}

#[derive(Debug, Deserialize)]
struct SetState {
    state: String,
}

async fn admin_convo(state: &AppState, id: String) -> Result<crate::store::ConvoRow, ApiError> {
    state
        .store
        .read(move |db| db.convo(&id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("convo_not_found", "no such convo"))
}

async fn set_convo_state(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetState>,
) -> Result<Response, ApiError> {
    let new_state = ConvoState::parse(&body.state)
        .ok_or_else(|| ApiError::bad_request("invalid_state", format!("unknown convo state {:?}", body.state)))?;
    let convo = admin_convo(&state, id).await?;
    agent::set_state(&state, &convo, new_state).await.map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "ok": true })).into_response())
}

#[derive(Debug, Deserialize)]
struct InjectMessage {
    content: String,
    #[serde(default)]
    from: Option<Author>,
}

async fn inject_message(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<InjectMessage>,
) -> Result<Response, ApiError> {
    let convo = admin_convo(&state, id).await?;
    let from = body.from.unwrap_or(Author::HumanAgent);
    let participant = match from {
        Author::AiAgent => Some(agent::participant(&state, &convo.agent_id)),
        Author::HumanAgent => Some(agent::human_participant(&state)),
        _ => None,
    };
    let new = NewMessage {
        from,
        content: body.content,
        turn_number: Some(convo.turn_number),
        participant,
        idempotency_key: None,
        draft_id: None,
        id: None,
    };
    let appended = agent::append_and_publish(&state, &convo, new).await.map_err(ApiError::internal)?;
    let message = match appended {
        crate::store::Appended::New(m) | crate::store::Appended::Existing(m) => m,
    };
    Ok(Json(message).into_response())
}

/// The dev router (mounted only with `--dev`).
pub fn router(state: AppState) -> Router<AppState> {
    let admin = Router::new()
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/streams/{action}", post(stream_fault))
        .route("/convos/{id}/state", post(set_convo_state))
        .route("/convos/{id}/messages", post(inject_message))
        .layer(axum::middleware::from_fn_with_state(state, require_admin));
    Router::new().route("/jwt", post(mint_jwt).get(session_jwt)).route("/stats", get(stats)).nest("/admin", admin)
}
