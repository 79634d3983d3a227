//! The built-in dev agent: answers every user message, so the server is
//! useful on its own.
//!
//! For a user message it emits `typing` start (thinking), waits the
//! configured delay, stores an `ai_agent` reply derived deterministically
//! from the user's text, then `typing` stop and `turn_done{ok}`. With a
//! token delay (`--agent-token-ms`) it streams the reply first: word by
//! word as `message_delta` frames (EXTENSION) carrying the id the stored
//! reply will have, and as the body of the `stream_message` answer.
//! Magic texts produce every frame value of the contract (so each can be
//! tested end to end; the list is in docs/protocol.md):
//! - states: `/escalate`, `/resolve`, `/reopen`, `/feedback`
//!   (`pending_feedback`); lockouts: `/rage` (`rage_locked`, the user locked
//!   out for an hour), `/hack` (`attempted_hack`, a day), `/ban`
//!   (`attempted_hack`, for good): `startSession` then reports the lockout;
//! - turn ends: `/blocked`, `/unavailable`, `/rate_limited` (with
//!   `retry_after_seconds`), and `/fail`: a server `error` frame and
//!   `turn_done{temporary_failure}`.
//!
//! A closed convo answers `turn_done{closed}`; an escalated one waits for a
//! human (`turn_done{ok}`, no AI reply). `at` is Unix epoch milliseconds;
//! `convo_state.closed_user_message` is text for every state but `open`.
//! Agents and humans come with a whole participant (every field a string,
//! `photo_url` an avatar this server serves).

use valet_core::wire::{Author, ConvoState, Message, MessageDeltaEvent, Participant, ServerFrame, TurnDoneReason, TypingKind, TypingState};

use crate::store::{now_ms, Appended, ConvoRow, NewMessage, StoreError};
use crate::AppState;

/// The reply the dev agent gives to `text` (deterministic).
pub fn reply_text(message: &Message) -> String {
    let text = message.content.trim();
    match message.files.len() {
        0 => format!("You said: \"{text}\""),
        n => {
            let names: Vec<&str> = message.files.iter().map(|f| f.filename.as_str()).collect();
            format!("You said: \"{text}\" and sent {n} file(s): {}", names.join(", "))
        }
    }
}

/// The dev agent's participant record.
pub fn participant(state: &AppState, agent_id: &str) -> Participant {
    Participant {
        id: agent_id.into(),
        kind: "ai_agent".into(),
        name: "Valet Dev Agent".into(),
        photo_url: avatar_url(state, 'V'),
        initial: "V".into(),
    }
}

/// The human agent who answers escalated convos in dev mode (and whom the
/// admin API's injected messages come from).
pub fn human_participant(state: &AppState) -> Participant {
    Participant {
        id: "dev-human-sam".into(),
        kind: "human_agent".into(),
        name: "Sam from Support".into(),
        photo_url: avatar_url(state, 'S'),
        initial: "S".into(),
    }
}

/// The avatar this server serves for an initial (`GET /avatars/{initial}.svg`).
pub fn avatar_url(state: &AppState, initial: char) -> String {
    format!("{}/avatars/{initial}.svg", state.config.public_url.trim_end_matches('/'))
}

/// The ready-to-render text of a convo state (`None` only while open).
pub fn closed_user_message(state: ConvoState) -> Option<String> {
    let until = |hours: i64| (chrono::Utc::now() + chrono::Duration::hours(hours)).format("%B %-d, %Y at %H:%M UTC").to_string();
    Some(match state {
        ConvoState::Open => return None,
        ConvoState::Escalated => "A teammate is taking it from here.".to_owned(),
        ConvoState::Resolved | ConvoState::AutoResolved | ConvoState::AssumedResolved => {
            "This conversation has been resolved. Start a new one any time.".to_owned()
        }
        ConvoState::PendingFeedback => "Thanks for chatting! How did we do?".to_owned(),
        ConvoState::RageLocked => format!("This chat is paused until {}.", until(1)),
        ConvoState::AttemptedHack => format!("This chat is locked until {}.", until(24)),
        ConvoState::Unknown => "This conversation is closed.".to_owned(),
    })
}

/// Sets a convo's state and publishes `convo_state` under the store lock.
pub async fn set_state(state: &AppState, convo: &ConvoRow, new_state: ConvoState) -> Result<(), String> {
    let (hub, id, agent) = (state.hub.clone(), convo.id.clone(), convo.agent_id.clone());
    state
        .store
        .write(move |db, after| {
            let prev = db.set_state(&id, new_state).map_err(StoreError::Sql)?;
            let frame = ServerFrame::ConvoState {
                agent_id: agent,
                convo_id: id.clone(),
                state: new_state,
                prev_state: Some(prev),
                closed_user_message: closed_user_message(new_state),
            };
            after.then(move || hub.publish(&id, &frame));
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())
}

/// Stores a message and publishes it, under the store lock (so live order
/// is `seq` order).
pub async fn append_and_publish(state: &AppState, convo: &ConvoRow, new: NewMessage) -> Result<Appended, crate::store::StoreError> {
    let (hub, id, agent) = (state.hub.clone(), convo.id.clone(), convo.agent_id.clone());
    state
        .store
        .write(move |db, after| {
            let appended = db.append(&id, new)?;
            if let Appended::New(message) = &appended {
                let frame =
                    ServerFrame::Message { action: "create".into(), agent_id: agent, convo_id: id.clone(), message: message.clone() };
                // Published once durable, in commit order (= seq order).
                after.then(move || hub.publish(&id, &frame));
            }
            Ok(appended)
        })
        .await
}

fn turn_done(state: &AppState, convo_id: &str, reason: TurnDoneReason) {
    let retry_after_seconds = (reason == TurnDoneReason::RateLimited).then_some(30);
    state.hub.publish(convo_id, &ServerFrame::TurnDone { convo_id: convo_id.into(), reason, at: now_ms().into(), retry_after_seconds });
}

fn server_error(state: &AppState, convo_id: &str) {
    state.hub.publish(convo_id, &ServerFrame::Error { convo_id: convo_id.into(), reason: "temporary_failure".into(), at: now_ms().into() });
}

fn typing(state: &AppState, convo_id: &str, typing_state: TypingState) {
    state.hub.publish(
        convo_id,
        &ServerFrame::Typing {
            kind: TypingKind::Thinking,
            state: typing_state,
            label: "Valet Dev Agent is thinking".into(),
            convo_id: convo_id.into(),
        },
    );
}

/// Runs the agent's turn for a stored user message, in the background.
/// A streaming agent gives the reply's tokens as they come (the
/// `stream_message` answer's body).
pub fn spawn_turn(state: AppState, convo: ConvoRow, user_message: Message) -> Option<tokio::sync::mpsc::Receiver<String>> {
    let (tx, rx) = if state.config.agent_token_delay.is_zero() {
        (None, None)
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        (Some(tx), Some(rx))
    };
    tokio::spawn(async move {
        if let Err(e) = turn(&state, &convo, &user_message, tx).await {
            tracing::error!(error = %e, convo_id = convo.id, "dev agent turn failed");
            server_error(&state, &convo.id);
            turn_done(&state, &convo.id, TurnDoneReason::TemporaryFailure);
        }
    });
    rx
}

/// The pieces a streamed reply is sent in: words, each with the spaces
/// after it (joined, they are the text).
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if in_space && !c.is_whitespace() {
            out.push(&text[start..i]);
            start = i;
        }
        in_space = c.is_whitespace();
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

async fn turn(
    state: &AppState,
    convo: &ConvoRow,
    user_message: &Message,
    stream: Option<tokio::sync::mpsc::Sender<String>>,
) -> Result<(), String> {
    let id = convo.id.as_str();
    let magic = match user_message.content.trim() {
        "/escalate" => Some((ConvoState::Escalated, TurnDoneReason::Ok)),
        "/resolve" => Some((ConvoState::Resolved, TurnDoneReason::Closed)),
        "/reopen" => Some((ConvoState::Open, TurnDoneReason::Ok)),
        "/feedback" => Some((ConvoState::PendingFeedback, TurnDoneReason::Ok)),
        "/rage" | "/hack" | "/ban" => {
            let (new_state, lockout) = match user_message.content.trim() {
                "/rage" => (ConvoState::RageLocked, Lockout::rage()),
                "/hack" => (ConvoState::AttemptedHack, Lockout::hack()),
                _ => (ConvoState::AttemptedHack, Lockout::permanent()),
            };
            state.lockouts.set(convo, lockout);
            Some((new_state, TurnDoneReason::Closed))
        }
        "/fail" => {
            server_error(state, id);
            turn_done(state, id, TurnDoneReason::TemporaryFailure);
            return Ok(());
        }
        "/blocked" => {
            turn_done(state, id, TurnDoneReason::Blocked);
            return Ok(());
        }
        "/unavailable" => {
            turn_done(state, id, TurnDoneReason::Unavailable);
            return Ok(());
        }
        "/rate_limited" => {
            turn_done(state, id, TurnDoneReason::RateLimited);
            return Ok(());
        }
        _ => None,
    };
    if let Some((new_state, reason)) = magic {
        set_state(state, convo, new_state).await?;
        turn_done(state, id, reason);
        return Ok(());
    }
    if convo.state.is_closed() {
        turn_done(state, id, TurnDoneReason::Closed);
        return Ok(());
    }
    if convo.state == ConvoState::Escalated {
        turn_done(state, id, TurnDoneReason::Ok);
        return Ok(());
    }
    typing(state, id, TypingState::Start);
    tokio::time::sleep(state.config.agent_delay).await;
    let content = reply_text(user_message);
    let mut reply_id = None;
    if let Some(stream) = stream {
        let message_id = uuid::Uuid::new_v4().to_string();
        for (index, token) in tokens(&content).into_iter().enumerate() {
            let delta = MessageDeltaEvent {
                kind: "message_delta".into(),
                agent_id: convo.agent_id.clone(),
                convo_id: id.into(),
                message_id: message_id.clone(),
                index: index as u64,
                delta: token.into(),
            };
            state.hub.publish_event(id, crate::hub::HubEvent::delta(&delta));
            // A client that stopped reading the answer misses nothing: the stream has it.
            let _ = stream.send(token.to_owned()).await;
            tokio::time::sleep(state.config.agent_token_delay).await;
        }
        reply_id = Some(message_id);
    }
    let reply = NewMessage {
        from: Author::AiAgent,
        content,
        turn_number: Some(user_message.turn_number),
        participant: Some(participant(state, &convo.agent_id)),
        idempotency_key: None,
        draft_id: None,
        id: reply_id,
    };
    let result = append_and_publish(state, convo, reply).await;
    typing(state, id, TypingState::Stop);
    result.map_err(|e| e.to_string())?;
    turn_done(state, id, TurnDoneReason::Ok);
    Ok(())
}

/// A user's lockout (rage, hack, permanent), as `startSession` reports it.
#[derive(Debug, Clone)]
pub struct Lockout {
    reason: &'static str,
    until: Option<chrono::DateTime<chrono::Utc>>,
    user_message: String,
}

impl Lockout {
    fn timed(reason: &'static str, hours: i64, what: &str) -> Lockout {
        let until = chrono::Utc::now() + chrono::Duration::hours(hours);
        let user_message = format!("{what} until {}.", until.format("%B %-d, %Y at %H:%M UTC"));
        Lockout { reason, until: Some(until), user_message }
    }

    /// An hour off after abuse.
    pub fn rage() -> Lockout {
        Lockout::timed("rage", 1, "You can chat again")
    }

    /// A day off after an attempt to subvert the agent.
    pub fn hack() -> Lockout {
        Lockout::timed("hack", 24, "Chat is locked for this account")
    }

    /// For good.
    pub fn permanent() -> Lockout {
        Lockout { reason: "permanent", until: None, user_message: "This account can no longer chat with us.".into() }
    }

    /// The contract's snapshot, or the all-clear once it has expired.
    pub fn snapshot(&self) -> valet_core::wire::LockoutSnapshot {
        if self.until.is_some_and(|u| u <= chrono::Utc::now()) {
            return valet_core::wire::LockoutSnapshot::default();
        }
        valet_core::wire::LockoutSnapshot {
            locked_out: true,
            expires_at: self.until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            permanent: self.until.is_none(),
            reason: Some(self.reason.into()),
            user_message: Some(self.user_message.clone()),
        }
    }
}

/// Lockouts by appuser (company, agent, source key). In memory: dev mode.
#[derive(Default)]
pub struct Lockouts(std::sync::Mutex<std::collections::HashMap<(String, String, String), Lockout>>);

impl Lockouts {
    fn set(&self, convo: &ConvoRow, lockout: Lockout) {
        let key = (convo.company.clone(), convo.agent_id.clone(), convo.source_key.clone());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key, lockout);
    }

    /// The appuser's lockout snapshot (all clear when none).
    pub fn snapshot(&self, company: &str, agent_id: &str, source_key: &str) -> valet_core::wire::LockoutSnapshot {
        let key = (company.to_owned(), agent_id.to_owned(), source_key.to_owned());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key).map(Lockout::snapshot).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_words_with_their_spaces_and_make_the_text() {
        for text in ["You said: \"hi  there\"", "", "one", "  lead and trail  ", "é ü\n\tz"] {
            let t = super::tokens(text);
            assert_eq!(t.concat(), text);
            assert!(t.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(super::tokens("You said: \"hi\""), ["You ", "said: ", "\"hi\""]);
    }
}
