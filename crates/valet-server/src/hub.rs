//! The hub: per-convo fan-out of frames to live streams, the registry of
//! live streams (the per-appuser cap, counters, fault control), shutdown.
//!
//! Decisions:
//! - A frame is encoded to JSON once and shared by every subscriber.
//! - Per-convo `broadcast` channels; a stream that lags behind refills the
//!   gap from the store (messages are never lost to lag; typing is).
//! - The stream cap is checked and taken under one lock, so two opens racing
//!   for the last slot can not both win.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, watch};
use valet_core::wire::{encode_frame, ClosedReason, ServerFrame};

/// A frame ready to send: the frame, its JSON, and its message `seq`.
#[derive(Debug, Clone)]
pub struct HubEvent {
    /// SSE event name.
    pub event: &'static str,
    /// JSON data.
    pub data: Arc<str>,
    /// For message frames: the message's `seq`.
    pub seq: Option<u64>,
}

impl HubEvent {
    /// Encodes a frame.
    pub fn new(frame: &ServerFrame) -> Self {
        let seq = match frame {
            ServerFrame::Message { message, .. } => message.seq,
            _ => None,
        };
        HubEvent { event: frame.event_name(), data: encode_frame(frame).into(), seq }
    }

    /// Encodes a `message_delta` frame (EXTENSION).
    pub fn delta(frame: &valet_core::wire::MessageDeltaEvent) -> Self {
        HubEvent { event: "message_delta", data: serde_json::to_string(frame).expect("a delta serializes").into(), seq: None }
    }
}

/// A fault or command for one live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Send `closed{reason}` and end.
    End(ClosedReason),
    /// End with no `closed` frame.
    Drop,
    /// Keep the connection, send nothing more.
    Stall,
    /// Send a malformed frame, then go on.
    Malformed,
    /// Send the next message frame twice.
    DuplicateNext,
}

/// Which streams a fault targets.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StreamFilter {
    /// Only streams of this convo.
    #[serde(default)]
    pub convo_id: Option<String>,
    /// Only streams of this appuser.
    #[serde(default)]
    pub source_key: Option<String>,
}

struct StreamInfo {
    company: String,
    source_key: String,
    agent_id: String,
    convo_id: String,
    control: mpsc::UnboundedSender<Control>,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, broadcast::Sender<HubEvent>>,
    streams: HashMap<u64, StreamInfo>,
    next_id: u64,
    opened_total: u64,
}

/// Shared fan-out and stream registry.
pub struct Hub {
    inner: Mutex<Inner>,
    shutdown: watch::Sender<bool>,
    capacity: usize,
}

/// A live stream's registration; dropping it frees the slot.
pub struct StreamGuard {
    hub: Arc<Hub>,
    id: u64,
    /// Faults and commands for this stream.
    pub control: mpsc::UnboundedReceiver<Control>,
    /// Frames of the stream's convo.
    pub events: broadcast::Receiver<HubEvent>,
    /// Becomes `true` on graceful shutdown.
    pub shutdown: watch::Receiver<bool>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        if let Some(info) = inner.streams.remove(&self.id) {
            if let Some(tx) = inner.channels.get(&info.convo_id) {
                // This guard's receiver is still alive, so "1" means no one else.
                if tx.receiver_count() <= 1 {
                    inner.channels.remove(&info.convo_id);
                }
            }
        }
    }
}

/// Counters for `/dev/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStats {
    /// Live streams now.
    pub live_streams: usize,
    /// Live streams per `source_key`.
    pub live_streams_by_appuser: BTreeMap<String, usize>,
    /// Live streams per convo.
    pub live_streams_by_convo: BTreeMap<String, usize>,
    /// Streams opened since start.
    pub streams_opened_total: u64,
}

impl Hub {
    /// A hub whose per-convo channels hold `capacity` frames.
    pub fn new(capacity: usize) -> Arc<Hub> {
        Arc::new(Hub { inner: Mutex::new(Inner::default()), shutdown: watch::channel(false).0, capacity })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a frame to the convo's live streams.
    pub fn publish(&self, convo_id: &str, frame: &ServerFrame) {
        self.publish_event(convo_id, HubEvent::new(frame));
    }

    /// Sends an encoded event to every live stream of the convo.
    pub fn publish_event(&self, convo_id: &str, event: HubEvent) {
        let inner = self.lock();
        if let Some(tx) = inner.channels.get(convo_id) {
            let _ = tx.send(event);
        }
    }

    /// Registers a stream if the appuser has a free slot; `None` at the cap.
    pub fn register(self: &Arc<Self>, company: &str, source_key: &str, agent_id: &str, convo_id: &str, cap: usize) -> Option<StreamGuard> {
        let mut inner = self.lock();
        let live = inner.streams.values().filter(|s| s.company == company && s.source_key == source_key && s.agent_id == agent_id).count();
        if live >= cap {
            return None;
        }
        let (control_tx, control) = mpsc::unbounded_channel();
        let capacity = self.capacity;
        let events = inner.channels.entry(convo_id.to_owned()).or_insert_with(|| broadcast::channel(capacity).0).subscribe();
        inner.next_id += 1;
        inner.opened_total += 1;
        let id = inner.next_id;
        inner.streams.insert(
            id,
            StreamInfo {
                company: company.into(),
                source_key: source_key.into(),
                agent_id: agent_id.into(),
                convo_id: convo_id.into(),
                control: control_tx,
            },
        );
        Some(StreamGuard { hub: self.clone(), id, control, events, shutdown: self.shutdown.subscribe() })
    }

    /// Sends a command to the streams the filter selects; returns how many.
    pub fn control(&self, filter: &StreamFilter, command: Control) -> usize {
        let inner = self.lock();
        inner
            .streams
            .values()
            .filter(|s| filter.convo_id.as_ref().is_none_or(|c| c == &s.convo_id))
            .filter(|s| filter.source_key.as_ref().is_none_or(|k| k == &s.source_key))
            .filter(|s| s.control.send(command).is_ok())
            .count()
    }

    /// Tells every stream the server is shutting down.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Live stream counters.
    pub fn stats(&self) -> StreamStats {
        let inner = self.lock();
        let mut by_user = BTreeMap::new();
        let mut by_convo = BTreeMap::new();
        for s in inner.streams.values() {
            *by_user.entry(s.source_key.clone()).or_insert(0) += 1;
            *by_convo.entry(s.convo_id.clone()).or_insert(0) += 1;
        }
        StreamStats {
            live_streams: inner.streams.len(),
            live_streams_by_appuser: by_user,
            live_streams_by_convo: by_convo,
            streams_opened_total: inner.opened_total,
        }
    }
}
