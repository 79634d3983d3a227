//! One convo in one tab: the convo machine and, where the browser has a
//! BroadcastChannel, its tab election, wired together as one sans-IO
//! machine ([`Session::handle`]: one input type, one action type).
//!
//! Decisions (each one made here, not in the glue):
//! - The page's events go where they matter: `pagehide` and visibility to
//!   both machines, `online` to the convo, `pageshow` and the channel's
//!   messages to the election.
//! - The election's outcomes become the convo's inputs: leading opens the
//!   stream (`Lead`), following stops it (`Standby`), an acknowledged hello
//!   fetches history (`Sync`), relayed frames are delivered (`Relayed`), a
//!   tab that joins hears the stream's status (`Announce`). Each new role is
//!   told to the app (a `role` event).
//! - A follower places relayed frames only while the leader has it
//!   listening: from following (or no longer being listened to) until
//!   its hello is acknowledged and a history answers, they are held.
//! - Relaying follows the election: the convo relays what it receives only
//!   while another tab listens, and a chunk to relay goes out as an
//!   `events` envelope of this tab's generation.
//! - Web Lock requests are numbered: an answer to one that was withdrawn
//!   or replaced (a stale grant, a late loss) changes nothing.
//! - The opening asks for a token first: the app's `fetchJwt` saying the
//!   user is signed out refuses the opening (`Opened(Err)`) before any
//!   stream, lock or channel message. Any other failure starts the convo
//!   all the same, and its first token request gets that failure (it backs
//!   off instead of calling `fetchJwt` again at once). Until the token
//!   answers, the tab has not joined the election: what the channel says
//!   is not heard, and it says nothing.
//! - The election's Web Lock is asked for at the opening, just after the
//!   token: its round trip to the browser overlaps the token's, so a
//!   tab alone leads as soon as its token is in. The answer is kept until
//!   the election starts; the election's own first request is that one. A
//!   refused opening, or a page going away (`pagehide`) before its token,
//!   withdraws it (or lets the lock go).
//! - A page hidden when the convo starts starts hidden (paused, with
//!   `pauseOnHidden`), and a tab without a channel leads by itself.

use crate::action::{Action, TokenFor};
use crate::error::ClientError;
use crate::convo::{ConvoMachine, ConvoMetrics, Input};
use crate::election::{Election, Role, TabAction, TabInput};
use crate::events::{ConvoRoleEvent, EventName, Status};
#[allow(unused_imports)]
use crate::prelude::*;

/// Inputs of a session, from the glue.
#[derive(Debug, Clone)]
pub enum SessionInput {
    /// Open: the page is hidden or not.
    Start {
        /// `document.hidden` (false outside a page).
        hidden: bool,
    },
    /// An input for the convo machine alone: tokens, the stream, history,
    /// timers, sends, `pause()`/`resume()`.
    Convo(Input),
    /// The browser's `online` event.
    Online,
    /// `pagehide`.
    PageHide,
    /// `pageshow` of a page restored from the back/forward cache.
    PageShow {
        /// The page is visible.
        visible: bool,
    },
    /// `visibilitychange`.
    Visibility {
        /// Hidden now.
        hidden: bool,
    },
    /// A message on the tab channel ("" for one that is not a string).
    Channel(String),
    /// The election timer fired.
    TabTick,
    /// The answer to [`SessionAction::RequestLock`] `epoch`.
    Lock {
        /// The request it answers.
        epoch: u64,
        /// Granted (`false`: lost, or withdrawn).
        granted: bool,
    },
    /// `close()`.
    Close,
}

/// Actions of a session, for the glue to carry out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionAction {
    /// What the convo machine asks for (never [`Action::Relay`]: relays
    /// come as [`SessionAction::Broadcast`]).
    Convo(Action),
    /// Ask for the tab Web Lock; answer with [`SessionInput::Lock`] and
    /// this `epoch`. Replaces (withdraws) any earlier request.
    RequestLock {
        /// Take it from a frozen holder.
        steal: bool,
        /// This request.
        epoch: u64,
    },
    /// Release the tab lock (or withdraw the request).
    ReleaseLock,
    /// Post this envelope (JSON) on the tab channel.
    Broadcast(String),
    /// (Re)arm the election timer.
    SetTabTimer {
        /// Delay from now.
        delay_ms: u64,
    },
    /// Cancel the election timer.
    ClearTabTimer,
}

/// One convo in one tab.
#[derive(Debug)]
pub struct Session {
    convo: ConvoMachine,
    election: Option<Election>,
    lock_epoch: u64,
    /// The opening's token has answered: the convo and the election run.
    started: bool,
    /// `document.hidden`, as last told.
    hidden: bool,
    /// The opening's token failed in a way that may pass: the convo's
    /// first token request gets this failure.
    open_failure: Option<ClientError>,
    /// The lock asked for at the opening, until the election starts.
    early_lock: EarlyLock,
    out: Vec<SessionAction>,
}

/// The election's lock, asked for before the election starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum EarlyLock {
    /// Not asked for early (no election, no Web Locks, or started).
    #[default]
    None,
    /// Asked for; no answer yet.
    Asked,
    /// Granted before the election started.
    Granted,
}

impl Session {
    /// A session over `convo`; with `election`, it elects a leader with the
    /// other tabs of the browser (`None`: no channel, this tab is alone).
    pub fn new(convo: ConvoMachine, election: Option<Election>) -> Self {
        Session { convo, election, lock_epoch: 0, started: false, hidden: false, open_failure: None, early_lock: EarlyLock::None, out: Vec::new() }
    }

    /// The convo machine (its status, what it delivered).
    pub fn convo(&self) -> &ConvoMachine {
        &self.convo
    }

    /// Whether `close()` happened.
    pub fn is_closed(&self) -> bool {
        self.convo.is_closed()
    }

    /// The connection status last emitted.
    pub fn status(&self) -> Status {
        self.convo.status()
    }

    /// This tab's role: without a channel it is alone, so it leads; with
    /// one, it follows until the election makes it lead.
    pub fn role(&self) -> Role {
        match &self.election {
            Some(e) if e.role() != Some(Role::Leader) => Role::Follower,
            _ => Role::Leader,
        }
    }

    /// The convo's metrics with the election's (`token_refreshes` is the
    /// token source's, for the glue to fill in).
    pub fn metrics(&self) -> ConvoMetrics {
        let mut m = self.convo.metrics();
        if let Some(e) = &self.election {
            m.leader_changes = e.leader_changes();
        }
        m
    }

    /// Handles one input at `now_ms`; returns the actions to carry out.
    pub fn handle(&mut self, now_ms: u64, input: SessionInput) -> Vec<SessionAction> {
        match input {
            SessionInput::Start { hidden } => {
                self.hidden = hidden;
                self.out.push(SessionAction::Convo(Action::GetToken { purpose: TokenFor::Open, reject: None }));
                if !self.started && self.early_lock == EarlyLock::None && self.election.as_ref().is_some_and(Election::uses_locks) {
                    self.log("requesting the tab lock while the token comes".into());
                    self.early_lock = EarlyLock::Asked;
                    self.request_lock(false);
                }
            }
            SessionInput::Convo(Input::Token { purpose: TokenFor::Open, .. }) => self.begin(now_ms),
            SessionInput::Convo(Input::TokenFailed { purpose: TokenFor::Open, error }) => {
                if error.signed_out() {
                    self.log(crate::cat!("the opening is refused: ", error.message));
                    self.drop_early_lock();
                    self.out.push(SessionAction::Convo(Action::Opened(Err(error))));
                } else {
                    self.open_failure = Some(error);
                    self.begin(now_ms);
                }
            }
            SessionInput::Convo(input) => self.convo_input(now_ms, input),
            SessionInput::Online => self.convo_input(now_ms, Input::Online),
            SessionInput::PageHide => {
                self.convo_input(now_ms, Input::PageHide);
                self.tab_input(now_ms, TabInput::PageHide);
                // A page going away holds no lock it asked for early (the
                // election asks again if it starts).
                self.drop_early_lock();
            }
            SessionInput::PageShow { visible } => self.tab_input(now_ms, TabInput::PageShow { visible }),
            SessionInput::Visibility { hidden } => {
                self.hidden = hidden;
                self.convo_input(now_ms, Input::Visibility { hidden });
                self.tab_input(now_ms, TabInput::Visibility { visible: !hidden });
            }
            SessionInput::Channel(text) => self.tab_input(now_ms, TabInput::Channel(text)),
            SessionInput::TabTick => self.tab_input(now_ms, TabInput::Tick),
            SessionInput::Lock { epoch, granted } => {
                let current = epoch == self.lock_epoch;
                let what = if granted { "granted" } else { "lost" };
                self.log(crate::cat!("tab lock ", what, " (current: ", current, ")"));
                if current && self.early_lock != EarlyLock::None {
                    // Before the election: kept for its start. Lost (the
                    // request failed, or a tab stole the lock granted
                    // early): the election asks again when it starts.
                    self.early_lock = if granted { EarlyLock::Granted } else { EarlyLock::None };
                } else if current {
                    self.tab_input(now_ms, if granted { TabInput::LockGranted } else { TabInput::LockLost });
                }
            }
            SessionInput::Close => {
                if !self.convo.is_closed() {
                    self.tab_input(now_ms, TabInput::Close);
                    if self.election.take().is_some() {
                        self.out.push(SessionAction::ClearTabTimer);
                        self.release_lock();
                    }
                    self.convo_input(now_ms, Input::Close);
                }
            }
        }
        core::mem::take(&mut self.out)
    }

    /// The opening's token answered: the convo starts (in a page hidden
    /// now, hidden), and joins the tabs' election where there is one.
    fn begin(&mut self, now_ms: u64) {
        if self.started || self.convo.is_closed() {
            return;
        }
        self.started = true;
        if self.hidden {
            self.convo_input(now_ms, Input::Visibility { hidden: true });
        }
        if self.election.is_some() {
            let early = self.early_lock;
            self.tab_input(now_ms, TabInput::Start { visible: !self.hidden });
            self.early_lock = EarlyLock::None;
            if early == EarlyLock::Granted {
                self.tab_input(now_ms, TabInput::LockGranted);
            }
        } else {
            self.convo_input(now_ms, Input::Start);
        }
    }

    /// Withdraws the lock asked for at the opening (or lets it go).
    fn drop_early_lock(&mut self) {
        if core::mem::take(&mut self.early_lock) != EarlyLock::None {
            self.release_lock();
        }
    }

    /// Asks for the tab lock, replacing (withdrawing) any earlier request:
    /// a new epoch, so an answer to an older one changes nothing.
    fn request_lock(&mut self, steal: bool) {
        self.lock_epoch += 1;
        self.out.push(SessionAction::RequestLock { steal, epoch: self.lock_epoch });
    }

    /// Releases the tab lock (or withdraws the request): a new epoch, so a
    /// late answer to the request changes nothing.
    fn release_lock(&mut self) {
        self.lock_epoch += 1;
        self.out.push(SessionAction::ReleaseLock);
    }

    /// Hands `input` to the convo machine; a chunk it relays goes out as an
    /// envelope of this tab, while another tab listens.
    fn convo_input(&mut self, now_ms: u64, input: Input) {
        for action in self.convo.handle(now_ms, input) {
            match action {
                Action::GetToken { purpose, .. } if self.open_failure.is_some() => {
                    // The opening's failure answers the first request.
                    if let Some(error) = self.open_failure.take() {
                        self.convo_input(now_ms, Input::TokenFailed { purpose, error });
                    }
                }
                Action::Relay { sse } => {
                    if let Some(env) = self.election.as_ref().and_then(|e| e.forward(sse)) {
                        self.out.push(SessionAction::Broadcast(env.to_json()));
                    }
                }
                other => self.out.push(SessionAction::Convo(other)),
            }
        }
    }

    /// Hands `input` to the election, and its outcomes to the convo.
    fn tab_input(&mut self, now_ms: u64, input: TabInput) {
        // Before the opening's token, this tab has not joined.
        let Some(election) = self.election.as_mut().filter(|_| self.started) else { return };
        let (ignored, relaying, listening) = (election.ignored(), election.relaying(), election.listening());
        let actions = election.handle(now_ms, input);
        let (now_ignored, now_relaying) = (election.ignored(), election.relaying());
        if listening && !election.listening() {
            // Relays may skip frames until this tab is heard again.
            self.convo_input(now_ms, Input::Resync);
        }
        if now_relaying != relaying {
            // Before the actions: an `Announce` among them is relayed.
            self.convo_input(now_ms, Input::Relay(now_relaying));
        }
        if now_ignored > ignored {
            self.log(crate::cat!("ignored a message on the tab channel that is not ours (", now_ignored, " so far)"));
        }
        for action in actions {
            match action {
                // The election's first request: the one asked for at the opening.
                TabAction::RequestLock { steal: false } if self.early_lock != EarlyLock::None => {}
                TabAction::RequestLock { steal } => {
                    self.log(crate::cat!("requesting the tab lock (steal: ", steal, ")"));
                    self.request_lock(steal);
                }
                TabAction::ReleaseLock => self.release_lock(),
                TabAction::Broadcast(env) => self.out.push(SessionAction::Broadcast(env.to_json())),
                TabAction::Lead { gen } => {
                    self.log(crate::cat!("this tab leads (generation ", gen, ")"));
                    self.role_event("leader", gen);
                    self.convo_input(now_ms, Input::Lead);
                }
                TabAction::Follow { gen } => {
                    self.log(crate::cat!("this tab follows (generation ", gen, ")"));
                    self.role_event("follower", gen);
                    self.convo_input(now_ms, Input::Standby);
                }
                // The leader relays all it gets from now on: history fills the rest.
                TabAction::Listening => self.convo_input(now_ms, Input::Sync),
                TabAction::Deliver { sse } => self.convo_input(now_ms, Input::Relayed { sse }),
                TabAction::Announce => self.convo_input(now_ms, Input::Announce),
                TabAction::SetTimer { delay_ms } => self.out.push(SessionAction::SetTabTimer { delay_ms }),
            }
        }
    }

    /// The `role` event (not after `close()`).
    fn role_event(&mut self, role: &'static str, generation: u64) {
        if !self.convo.is_closed() {
            let payload = ConvoRoleEvent { role, generation }.to_json();
            self.out.push(SessionAction::Convo(Action::Emit { event: EventName::Role, payload }));
        }
    }

    fn log(&mut self, line: String) {
        self.out.push(SessionAction::Convo(Action::Log(line)));
    }
}
