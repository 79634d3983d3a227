//! The built-in dev agent: answers every user message, so the server is
//! useful on its own.
//!
//! For a user message it emits `typing` start (thinking), waits the
//! configured delay, stores an `ai_agent` reply derived deterministically
//! from the user's text, then `typing` stop and `turn_done{ok}`.
//! Magic texts drive convo states: `/escalate`, `/resolve`, `/reopen`;
//! `/fail` emits a server `error` frame and `turn_done{temporary_failure}`.
//! A closed convo answers `turn_done{closed}`; an escalated one waits for a
//! human (`turn_done{ok}`, no AI reply).

use valet_core::wire::{
    Author, ConvoState, Message, Participant, ServerFrame, TurnDoneReason, TypingKind, TypingState,
};

use crate::store::{now_iso, Appended, ConvoRow, NewMessage, StoreError};
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
pub fn participant(agent_id: &str) -> Participant {
    Participant {
        id: agent_id.into(),
        kind: "ai_agent".into(),
        name: Some("Valet Dev Agent".into()),
        photo_url: None,
        initial: Some("V".into()),
    }
}

/// The text shown once a convo is closed.
pub fn closed_user_message(state: ConvoState) -> Option<String> {
    state.is_closed().then(|| match state {
        ConvoState::RageLocked | ConvoState::AttemptedHack => "This conversation has been locked.".to_owned(),
        _ => "This conversation has been resolved.".to_owned(),
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
pub async fn append_and_publish(
    state: &AppState,
    convo: &ConvoRow,
    new: NewMessage,
) -> Result<Appended, crate::store::StoreError> {
    let (hub, id, agent) = (state.hub.clone(), convo.id.clone(), convo.agent_id.clone());
    state
        .store
        .write(move |db, after| {
            let appended = db.append(&id, new)?;
            if let Appended::New(message) = &appended {
                let frame = ServerFrame::Message { action: "create".into(), agent_id: agent, convo_id: id.clone(), message: message.clone() };
                // Published once durable, in commit order (= seq order).
                after.then(move || hub.publish(&id, &frame));
            }
            Ok(appended)
        })
        .await
}

fn turn_done(state: &AppState, convo_id: &str, reason: TurnDoneReason) {
    state.hub.publish(
        convo_id,
        &ServerFrame::TurnDone { convo_id: convo_id.into(), reason, at: now_iso(), retry_after_seconds: None },
    );
}

fn typing(state: &AppState, convo_id: &str, typing_state: TypingState) {
    state.hub.publish(
        convo_id,
        &ServerFrame::Typing {
            kind: TypingKind::Thinking,
            state: typing_state,
            label: Some("Valet Dev Agent is thinking".into()),
            convo_id: convo_id.into(),
        },
    );
}

/// Runs the agent's turn for a stored user message, in the background.
pub fn spawn_turn(state: AppState, convo: ConvoRow, user_message: Message) {
    tokio::spawn(async move {
        if let Err(e) = turn(&state, &convo, &user_message).await {
            tracing::error!(error = %e, convo_id = convo.id, "dev agent turn failed");
            state.hub.publish(
                &convo.id,
                &ServerFrame::Error { convo_id: Some(convo.id.clone()), reason: "temporary_failure".into(), at: Some(now_iso()) },
            );
            turn_done(&state, &convo.id, TurnDoneReason::TemporaryFailure);
        }
    });
}

async fn turn(state: &AppState, convo: &ConvoRow, user_message: &Message) -> Result<(), String> {
    let id = convo.id.as_str();
    let magic = match user_message.content.trim() {
        "/escalate" => Some((ConvoState::Escalated, TurnDoneReason::Ok)),
        "/resolve" => Some((ConvoState::Resolved, TurnDoneReason::Closed)),
        "/reopen" => Some((ConvoState::Open, TurnDoneReason::Ok)),
        "/fail" => {
            state.hub.publish(
                id,
                &ServerFrame::Error { convo_id: Some(id.into()), reason: "temporary_failure".into(), at: Some(now_iso()) },
            );
            turn_done(state, id, TurnDoneReason::TemporaryFailure);
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
    let reply = NewMessage {
        from: Author::AiAgent,
        content: reply_text(user_message),
        turn_number: Some(user_message.turn_number),
        participant: Some(participant(&convo.agent_id)),
        idempotency_key: None,
        draft_id: None,
    };
    let result = append_and_publish(state, convo, reply).await;
    typing(state, id, TypingState::Stop);
    result.map_err(|e| e.to_string())?;
    turn_done(state, id, TurnDoneReason::Ok);
    Ok(())
}
