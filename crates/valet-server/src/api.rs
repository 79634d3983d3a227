//! The REST half of the Valet v2 API. Handlers are thin: authorize, call the
//! store (publishing under its lock), map failures to [`ApiError`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use valet_core::wire::{Author, ConvoHistory, ConvoList, RateLimitedBody, SendRequest, SessionResponse, StreamTicket, UploadResponse};

use crate::agent;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::store::{Appended, ConvoRow, NewFile, NewMessage, StoreError};
use crate::AppState;

/// The convo, if it exists and belongs to the caller (else 404: another
/// appuser's convo is indistinguishable from a missing one).
pub async fn owned_convo(state: &AppState, who: &Principal, convo_id: &str) -> Result<ConvoRow, ApiError> {
    let id = convo_id.to_owned();
    let convo = state.store.read(move |db| db.convo(&id)).await.map_err(ApiError::internal)?;
    convo
        .filter(|c| c.company == who.company && c.source_key == who.source_key && c.agent_id == who.agent_id)
        .ok_or_else(|| ApiError::not_found("convo_not_found", "no such convo"))
}

/// `POST /api/v2/sessions`.
pub async fn create_session(State(state): State<AppState>, who: Principal) -> Result<Json<SessionResponse>, ApiError> {
    state.user_limits.sessions.check(&user_key(&who)).map_err(|s| ApiError::rate_limited_user("sessions", s))?;
    let p = who.clone();
    let convo = state
        .store
        .write(move |db, _| db.create_convo(&p.company, &p.source_key, &p.agent_id).map_err(StoreError::Sql))
        .await
        .map_err(ApiError::internal)?;
    let policy = state.config.company(&who.company).map(|c| c.attachment_policy.clone()).unwrap_or_default();
    Ok(Json(SessionResponse {
        convo_id: convo.id,
        attachment_policy: Some(policy),
        lockout: Some(state.lockouts.snapshot(&who.company, &who.agent_id, &who.source_key)),
    }))
}

/// `GET /api/v2/agent_convos`.
pub async fn list_convos(State(state): State<AppState>, who: Principal) -> Result<Json<ConvoList>, ApiError> {
    let convos =
        state.store.read(move |db| db.list_convos(&who.company, &who.source_key, &who.agent_id)).await.map_err(ApiError::internal)?;
    Ok(Json(ConvoList { agent_convos: convos }))
}

/// Query of the reconcile fetch.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// EXTENSION: only messages after this message id. An id the server does
    /// not know in this convo yields the full history (the safe answer for a
    /// client that dedupes).
    pub after: Option<String>,
}

/// `GET /api/v2/agent_convos/{convo}`.
pub async fn get_convo(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(convo_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<ConvoHistory>, ApiError> {
    owned_convo(&state, &who, &convo_id).await?;
    let messages = state
        .store
        .read(move |db| {
            let after = match &query.after {
                Some(id) => db.seq_of(&convo_id, id)?.unwrap_or(0),
                None => 0,
            };
            db.history(&convo_id, after)
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(ConvoHistory { messages }))
}

/// Per-convo sliding-window limit on `stream_message`.
pub struct RateLimiter {
    max: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// `max` calls per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        RateLimiter { max, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Takes a slot, or says how many seconds until one frees.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        let q = hits.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = *q.front().expect("non-empty at the cap");
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        q.push_back(now);
        Ok(())
    }
}

/// Per-appuser limits (the per-convo one alone lets a user reset it with a
/// new convo): sessions, stream tickets, and messages across convos.
pub struct UserLimits {
    /// `POST /sessions`.
    pub sessions: RateLimiter,
    /// `POST .../stream_ticket`.
    pub tickets: RateLimiter,
    /// `POST .../stream_message`, every convo of the user together.
    pub messages: RateLimiter,
}

impl UserLimits {
    /// The limits of `config`, over its rate-limit window.
    pub fn new(config: &crate::Config) -> Self {
        let w = config.rate_limit_window;
        UserLimits {
            sessions: RateLimiter::new(config.rate_limit_sessions, w),
            tickets: RateLimiter::new(config.rate_limit_tickets, w),
            messages: RateLimiter::new(config.rate_limit_user_messages, w),
        }
    }
}

/// The key of an appuser for the per-user limits.
fn user_key(who: &Principal) -> String {
    format!("{}\u{0}{}\u{0}{}", who.company, who.agent_id, who.source_key)
}

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// `POST /api/v2/agent_convos/{convo}/stream_message`.
pub async fn stream_message(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(convo_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<Response, ApiError> {
    let convo = owned_convo(&state, &who, &convo_id).await?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => req.idempotency_key.clone().filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY),
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => Some(k.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
                ))
            }
        },
    };
    if req.text.chars().count() > state.config.max_text_chars {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text_too_long",
            format!("text is limited to {} characters", state.config.max_text_chars),
        ));
    }
    if req.text.trim().is_empty() && req.message_id.is_none() {
        return Err(ApiError::bad_request("empty_message", "text must not be empty"));
    }
    if let Err(retry_after_seconds) = state.rate.check(&convo.id).and_then(|()| state.user_limits.messages.check(&user_key(&who))) {
        return Err(ApiError::rate_limited(RateLimitedBody {
            status: "rate_limited".into(),
            convo_id: convo.id.clone(),
            state: convo.state,
            retry_after_seconds,
        }));
    }
    let new = NewMessage {
        from: Author::Appuser,
        content: req.text,
        turn_number: None,
        participant: None,
        idempotency_key,
        draft_id: req.message_id,
        id: None,
    };
    let appended = agent::append_and_publish(&state, &convo, new).await.map_err(|e| match e {
        StoreError::NoSuchDraft => ApiError::not_found("draft_not_found", "no unsent upload with that message_id in this convo"),
        other => ApiError::internal(other),
    })?;
    let (message, duplicate) = match appended {
        Appended::New(m) => {
            if let Some(tokens) = agent::spawn_turn(state.clone(), convo, m.clone()) {
                // A streaming agent: the answer is the reply's token stream
                // (the contract's clients drain it, unparsed).
                let tokens = tokio_stream::wrappers::ReceiverStream::new(tokens);
                let body = Body::from_stream(tokio_stream::StreamExt::map(tokens, Ok::<String, std::convert::Infallible>));
                return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
            }
            (m, false)
        }
        Appended::Existing(m) => (m, true),
    };
    Ok(Json(serde_json::json!({
        "status": "accepted",
        "message_id": message.id,
        "seq": message.seq,
        "duplicate": duplicate,
    }))
    .into_response())
}

/// `POST /api/v2/agent_convos/{convo}/upload_file`: multipart, one part per
/// file in `files[]`; checked against the company's attachment policy.
pub async fn upload_file(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(convo_id): ApiPath<String>,
    mut multipart: Multipart,
) -> Result<Json<UploadResponse>, ApiError> {
    let convo = owned_convo(&state, &who, &convo_id).await?;
    let policy = state.config.company(&who.company).map(|c| c.attachment_policy.clone()).unwrap_or_default();
    if policy.max_files_per_message == 0 {
        return Err(ApiError::forbidden("attachments_disabled", "attachments are not enabled for this agent"));
    }
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(ApiError::from_multipart)? {
        if !matches!(field.name(), Some("files[]") | Some("files")) {
            continue;
        }
        if files.len() as u32 >= policy.max_files_per_message {
            return Err(ApiError::bad_request("too_many_files", format!("at most {} files per message", policy.max_files_per_message)));
        }
        let filename = safe_filename(field.file_name().unwrap_or("file"));
        let content_type = field.content_type().unwrap_or("application/octet-stream").to_owned();
        if !policy.allowed_mime_types.iter().any(|m| m == &content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_file_type",
                format!("{content_type} is not an allowed file type"),
            ));
        }
        let data = field.bytes().await.map_err(ApiError::from_multipart)?;
        if data.len() as u64 > policy.max_file_size_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!("files are limited to {} bytes", policy.max_file_size_bytes),
            ));
        }
        files.push(NewFile { filename, content_type, data: data.to_vec() });
    }
    if files.is_empty() {
        return Err(ApiError::bad_request("no_files", "send one part per file in the `files[]` field"));
    }
    if convo.files_count + files.len() as u32 > policy.max_files_per_convo {
        return Err(ApiError::bad_request("too_many_files", format!("at most {} files per convo", policy.max_files_per_convo)));
    }
    let id = convo.id.clone();
    let message_id =
        state.store.write(move |db, _| db.create_draft(&id, files).map_err(StoreError::Sql)).await.map_err(ApiError::internal)?;
    Ok(Json(UploadResponse { message_id }))
}

/// `GET /files/{id}`: an uploaded file (the unguessable id is the capability,
/// so plain links work).
pub async fn download_file(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let file = state.store.read(move |db| db.file(&id)).await.map_err(ApiError::internal)?;
    let (filename, content_type, data) = file.ok_or_else(|| ApiError::not_found("file_not_found", "no such file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, content_disposition(&filename)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        Body::from(data),
    )
        .into_response())
}

/// `GET /avatars/{initial}.svg`: a generated avatar (a letter on a colored
/// disc), what participants' `photo_url` points at.
pub async fn avatar(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    let mut chars = name.strip_suffix(".svg").unwrap_or("").chars();
    let (Some(initial), None) = (chars.next(), chars.next()) else {
        return Err(ApiError::not_found("avatar_not_found", "avatars are /avatars/{one letter or digit}.svg"));
    };
    if !initial.is_ascii_alphanumeric() {
        return Err(ApiError::not_found("avatar_not_found", "avatars are /avatars/{one letter or digit}.svg"));
    }
    let hue = (initial.to_ascii_uppercase() as u32 * 47) % 360;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\"><circle cx=\"32\" cy=\"32\" r=\"32\" fill=\"hsl({hue},55%,45%)\"/><text x=\"32\" y=\"42\" font-family=\"sans-serif\" font-size=\"30\" text-anchor=\"middle\" fill=\"#fff\">{}</text></svg>",
        initial.to_ascii_uppercase()
    );
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=86400")], svg).into_response())
}

/// An uploaded file's name as stored and shown: the base name only (no
/// directory, either separator), no control characters, at most 255
/// characters, `file` when nothing is left.
pub fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim().trim_start_matches('.').trim();
    let clean: String = clean.chars().take(255).collect();
    if clean.is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

/// `Content-Disposition: attachment` with an ASCII fallback name (quotes,
/// backslashes and non-ASCII replaced) and the exact name in `filename*`
/// (RFC 6266, RFC 5987).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

impl ApiError {
    fn from_multipart(e: axum::extract::multipart::MultipartError) -> Self {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "payload_too_large", e.body_text())
        } else {
            ApiError::bad_request("invalid_multipart", e.body_text())
        }
    }
}

/// Single-use stream tickets (EXTENSION): an `EventSource` can not send an
/// `Authorization` header, and a token must never go in a URL, so the SDK
/// trades its token for a ticket that opens one stream within a minute.
#[derive(Default)]
pub struct Tickets {
    issued: Mutex<HashMap<String, (Principal, String, Instant)>>,
}

/// How long a ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

impl Tickets {
    /// Issues a ticket for a principal and convo.
    pub fn issue(&self, who: Principal, convo_id: &str) -> String {
        let ticket = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.retain(|_, (_, _, at)| now.duration_since(*at) < TICKET_TTL);
        issued.insert(ticket.clone(), (who, convo_id.to_owned(), now));
        ticket
    }

    /// Redeems a ticket for a convo (once).
    pub fn redeem(&self, ticket: &str, convo_id: &str) -> Option<Principal> {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let (who, convo, at) = issued.remove(ticket)?;
        (convo == convo_id && at.elapsed() < TICKET_TTL).then_some(who)
    }
}

/// `POST /api/v2/agent_convos/{convo}/stream_ticket` (EXTENSION).
pub async fn stream_ticket(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(convo_id): ApiPath<String>,
) -> Result<Json<StreamTicket>, ApiError> {
    owned_convo(&state, &who, &convo_id).await?;
    state.user_limits.tickets.check(&user_key(&who)).map_err(|s| ApiError::rate_limited_user("stream tickets", s))?;
    let ticket = state.tickets.issue(who, &convo_id);
    Ok(Json(StreamTicket { ticket, expires_in_seconds: TICKET_TTL.as_secs() }))
}
