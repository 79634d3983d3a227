//! `GET /api/v2/agent_convos/{convo}/events`: the SSE stream.
//!
//! One task per stream writes frames into the response body. It ends the
//! stream, with a `closed` frame first, when: the opening token is within
//! `auth_expiring_lead` of its `exp`; the stream reaches its maximum age
//! (`server_cap`); the server shuts down; or a fault says so. It notices a
//! departed client when the body is dropped, and then frees the slot.
//!
//! EXTENSION (resume): message frames carry `id: <seq>`; a request with
//! `Last-Event-ID: <seq>` first gets every message after that `seq`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{sleep_until, Instant};
use tokio_stream::wrappers::ReceiverStream;
use valet_core::wire::{ClosedReason, ServerFrame};

use crate::auth::Principal;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::hub::{Control, HubEvent, StreamGuard};
use crate::{api::owned_convo, AppState};

type Tx = mpsc::Sender<Result<Event, Infallible>>;

/// Query of the events route.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    /// EXTENSION: a single-use ticket from `stream_ticket`, for clients that
    /// can not send `Authorization` (`EventSource`).
    pub ticket: Option<String>,
}

/// The handler.
pub async fn events(
    State(state): State<AppState>,
    ApiPath(convo_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    request: Parts,
) -> Result<Response, ApiError> {
    let mut parts = request;
    let headers = parts.headers.clone();
    let http1 = parts.version <= axum::http::Version::HTTP_11;
    let principal = match (&query.ticket, headers.contains_key(axum::http::header::AUTHORIZATION)) {
        (Some(ticket), false) => {
            let who = state
                .tickets
                .redeem(ticket, &convo_id)
                .ok_or_else(|| ApiError::unauthorized("invalid_ticket", "the stream ticket is unknown, used or expired"))?;
            crate::auth::check_origin(&state, &who, &headers)?;
            who
        }
        _ => Principal::from_request_parts(&mut parts, &state).await?,
    };
    owned_convo(&state, &principal, &convo_id).await?;
    let cap = state.config.max_streams_per_user;
    let Some(guard) = state.hub.register(&principal.company, &principal.source_key, &principal.agent_id, &convo_id, cap)
    else {
        let retry = state.config.stream_cap_retry_after.as_secs();
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("at most {cap} concurrent streams per user and agent"),
        )
        .with_retry_after(retry));
    };
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run_stream(state, principal, convo_id, guard, tx, resume_after));
    let mut res = Sse::new(ReceiverStream::new(rx)).into_response();
    res.headers_mut().insert("x-accel-buffering", "no".parse().expect("static header"));
    if http1 {
        // A stream's connection carries nothing after it. Kept alive, a
        // browser that gives the stream up may hold the socket for seconds
        // to drain it (Chromium: up to 5 s, and it may send the next
        // stream's request twice meanwhile), each stream counted against
        // the user's cap; told so, it closes the socket at once.
        res.headers_mut().insert(axum::http::header::CONNECTION, "close".parse().expect("static header"));
    }
    Ok(res)
}

fn to_event(ev: &HubEvent) -> Event {
    let e = Event::default().event(ev.event).data(&*ev.data);
    match ev.seq {
        Some(seq) => e.id(seq.to_string()),
        None => e,
    }
}

async fn send_frame(tx: &Tx, frame: &ServerFrame) -> bool {
    tx.send(Ok(to_event(&HubEvent::new(frame)))).await.is_ok()
}

/// Sends stored messages after `last_seq`; returns false if the client left.
async fn replay(state: &AppState, tx: &Tx, convo_id: &str, agent_id: &str, last_seq: &mut u64) -> bool {
    let (convo, after) = (convo_id.to_owned(), *last_seq);
    let messages = match state.store.read(move |db| db.history(&convo, after)).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "replay failed");
            return true;
        }
    };
    for message in messages {
        *last_seq = message.seq.unwrap_or(*last_seq).max(*last_seq);
        let frame = ServerFrame::Message {
            action: "create".into(),
            agent_id: agent_id.into(),
            convo_id: convo_id.into(),
            message,
        };
        if !send_frame(tx, &frame).await {
            return false;
        }
    }
    true
}

async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}

fn secs_until(exp_unix: i64, lead: Duration) -> Duration {
    let now = chrono::Utc::now().timestamp_millis();
    let at = exp_unix * 1000 - lead.as_millis() as i64;
    Duration::from_millis(at.saturating_sub(now).max(0) as u64)
}

async fn run_stream(
    state: AppState,
    principal: Principal,
    convo_id: String,
    mut guard: StreamGuard,
    tx: Tx,
    resume_after: Option<u64>,
) {
    let conn_id = uuid::Uuid::new_v4().to_string();
    tracing::info!(conn_id, convo_id, "stream opened");
    let agent_id = principal.agent_id.clone();
    let started = Instant::now();
    let auth_deadline = sleep_until(started + secs_until(principal.exp, state.config.auth_expiring_lead));
    let age_deadline = sleep_until(started + state.config.stream_max_age);
    tokio::pin!(auth_deadline, age_deadline);
    let ping_every = state.config.ping_interval;
    let mut ping = tokio::time::interval_at(started + ping_every, ping_every);
    let mut last_seq = resume_after.unwrap_or(0);
    let mut stalled = false;
    let mut duplicate_next = false;

    let ended_by = 'stream: {
        if !send_frame(&tx, &ServerFrame::Ready { conn_id: conn_id.clone() }).await {
            break 'stream "client_gone";
        }
        if resume_after.is_some() && !replay(&state, &tx, &convo_id, &agent_id, &mut last_seq).await {
            break 'stream "client_gone";
        }
        loop {
            let closing = tokio::select! {
                biased;
                _ = tx.closed() => break 'stream "client_gone",
                _ = shutting_down(&mut guard.shutdown) => ClosedReason::Shutdown,
                command = guard.control.recv() => match command {
                    Some(Control::End(reason)) => reason,
                    Some(Control::Drop) | None => break 'stream "dropped",
                    Some(Control::Stall) => { stalled = true; continue }
                    Some(Control::DuplicateNext) => { duplicate_next = true; continue }
                    Some(Control::Malformed) => {
                        let bad = Event::default().event("message").data("{\"type\":\"message\",\"message\":{\"id\":");
                        if tx.send(Ok(bad)).await.is_err() { break 'stream "client_gone" }
                        continue
                    }
                },
                _ = &mut auth_deadline, if !stalled => ClosedReason::AuthExpiring,
                _ = &mut age_deadline, if !stalled => ClosedReason::ServerCap,
                _ = ping.tick(), if !stalled => {
                    if !send_frame(&tx, &ServerFrame::Ping {}).await { break 'stream "client_gone" }
                    continue
                }
                received = guard.events.recv(), if !stalled => {
                    match received {
                        Ok(ev) => {
                            if let Some(seq) = ev.seq {
                                if seq <= last_seq { continue }
                                last_seq = seq;
                            }
                            let times = if duplicate_next && ev.seq.is_some() { duplicate_next = false; 2 } else { 1 };
                            for _ in 0..times {
                                if tx.send(Ok(to_event(&ev))).await.is_err() { break 'stream "client_gone" }
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(conn_id, skipped = n, "stream lagged; refilling from the store");
                            if !replay(&state, &tx, &convo_id, &agent_id, &mut last_seq).await { break 'stream "client_gone" }
                        }
                        Err(broadcast::error::RecvError::Closed) => break 'stream "hub_closed",
                    }
                    continue
                }
            };
            let _ = send_frame(&tx, &ServerFrame::Closed { reason: closing }).await;
            break 'stream closing.as_str();
        }
    };
    tracing::info!(conn_id, convo_id, ended_by, "stream ended");
    drop(guard);
}
