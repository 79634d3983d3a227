//! Tab election: which tab of a browser holds the one stream of an
//! (agent, convo), and the versioned envelope tabs talk in.
//!
//! Decisions:
//! - Leadership is a Web Lock (`navigator.locks`) per (agent, convo) where
//!   the browser has one: the tab holding it streams; when that tab closes or
//!   crashes the browser passes the lock at once. So that it can, every tab
//!   that does not lead keeps one non-stealing request queued: a tab that
//!   lost or gave up the lock queues a fresh one (at once when it stands
//!   down, else on its next tick), so the lock never falls free with
//!   nobody waiting.
//! - Each new leader takes a *generation* above both the highest it has seen
//!   and the wall clock (`now_ms`, shared by every tab of a browser), so a
//!   tab that never heard the older leaders still leads with a newer
//!   generation than theirs: generations never go backwards across tabs.
//!   As a safety net (a clock set back), a follower with no live leader
//!   accepts a leader of any generation.
//! - A lease covers what locks can not: a frozen leader still holds its lock.
//!   The leader heartbeats every `heartbeat_ms`; a *visible* follower that
//!   hears nothing for `lease_ms` steals the lock and bumps the generation.
//!   A leader that hears a higher generation (it was thawed after a steal)
//!   stands down at once; frames of an older generation are dropped.
//! - Without Web Locks, the same heartbeats elect: a tab that hears no leader
//!   for `startup_ms` (first start) or `lease_ms` claims; two leaders that
//!   hear each other keep the one with the higher (generation, tab id), so two
//!   leaders never stand for longer than one heartbeat.
//! - A hidden leader hands over to a visible follower when one exists
//!   (`pauseOnHidden`): it resigns, and the visible tab takes the lock. A
//!   leader whose page is hiding (`pagehide`, never `unload`) resigns at once;
//!   restored from the back/forward cache (`pageshow`), it rejoins.
//! - Anything on the channel that is not a well-formed envelope of this
//!   version is ignored and counted, never an error.

use serde::{Deserialize, Serialize};

/// The envelope version tabs speak.
pub const ENVELOPE_VERSION: u32 = 1;

/// What tabs send each other on the convo's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `"valet-sdk"`: tells our messages from other scripts'.
    pub sdk: String,
    /// [`ENVELOPE_VERSION`].
    pub v: u32,
    /// The sending tab.
    pub tab: String,
    /// The sender's view of the leader generation.
    pub gen: u64,
    /// What it says.
    pub body: Body,
}

/// Envelope bodies: `{"kind":"heartbeat","visible":true}` and so on. They
/// go through [`FlatBody`] on the wire: the same JSON as a tagged enum, at a
/// fraction of the code an internally tagged serde enum makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FlatBody", into = "FlatBody")]
pub enum Body {
    /// The leader is alive (and whether its page is visible).
    Heartbeat {
        /// The leader's page is visible.
        visible: bool,
    },
    /// A follower is here (and whether its page is visible).
    Presence {
        /// The follower's page is visible.
        visible: bool,
    },
    /// The leader is stepping down (closing, or hidden with a visible follower).
    Resign,
    /// A frame (or the leader's status), relayed by the leader as received.
    Event {
        /// Event name (`message`, `typing`, ..., or `status`).
        name: String,
        /// The frame's JSON.
        json: String,
    },
}

/// The wire form of a [`Body`]: `kind` and the fields of that kind.
#[derive(Serialize, Deserialize)]
struct FlatBody {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json: Option<String>,
}

impl From<Body> for FlatBody {
    fn from(b: Body) -> FlatBody {
        let flat = |kind: &str| FlatBody { kind: kind.into(), visible: None, name: None, json: None };
        match b {
            Body::Heartbeat { visible } => FlatBody { visible: Some(visible), ..flat("heartbeat") },
            Body::Presence { visible } => FlatBody { visible: Some(visible), ..flat("presence") },
            Body::Resign => flat("resign"),
            Body::Event { name, json } => FlatBody { name: Some(name), json: Some(json), ..flat("event") },
        }
    }
}

impl TryFrom<FlatBody> for Body {
    type Error = &'static str;
    fn try_from(f: FlatBody) -> Result<Body, &'static str> {
        Ok(match (f.kind.as_str(), f.visible, f.name, f.json) {
            ("heartbeat", Some(visible), _, _) => Body::Heartbeat { visible },
            ("presence", Some(visible), _, _) => Body::Presence { visible },
            ("resign", _, _, _) => Body::Resign,
            ("event", _, Some(name), Some(json)) => Body::Event { name, json },
            _ => return Err("not an envelope body of this version"),
        })
    }
}

/// Parses what arrived on the channel. `None` for anything that is not our
/// envelope of this version (other scripts, garbage, an older SDK).
pub fn parse_envelope(json: &str) -> Option<Envelope> {
    use crate::json::Val;
    let [sdk, v, tab, gen, kind, visible, name, text] =
        crate::json::read_n(json, ["sdk", "v", "tab", "gen", "body.kind", "body.visible", "body.name", "body.json"])?;
    if sdk.str() != Some("valet-sdk") || v.u64() != Some(ENVELOPE_VERSION as u64) {
        return None;
    }
    let visible = match visible {
        Val::Bool(b) => Some(b),
        _ => None,
    };
    let flat = FlatBody { kind: kind.into_string()?, visible, name: name.into_string(), json: text.into_string() };
    Some(Envelope { sdk: "valet-sdk".into(), v: ENVELOPE_VERSION, tab: tab.into_string()?, gen: gen.u64()?, body: Body::try_from(flat).ok()? })
}

/// Timings of the election.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Silence after which a visible follower takes over.
    pub lease_ms: u64,
    /// Without Web Locks: how long a starting tab listens before claiming.
    pub startup_ms: u64,
    /// Whether the browser has Web Locks.
    pub locks: bool,
    /// Hand leadership to a visible tab when this one is hidden.
    pub prefer_visible: bool,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig { heartbeat_ms: 1000, lease_ms: 3000, startup_ms: 300, locks: true, prefer_visible: true }
    }
}

/// A tab's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds the stream and forwards its events.
    Leader,
    /// Receives forwarded events.
    Follower,
}

/// Inputs of the election.
#[derive(Debug, Clone)]
pub enum TabInput {
    /// Start (the convo was opened in this tab).
    Start {
        /// The page is visible.
        visible: bool,
    },
    /// The Web Lock was granted.
    LockGranted,
    /// The Web Lock was lost (stolen, or released).
    LockLost,
    /// Something arrived on the channel.
    Channel(String),
    /// The election timer fired.
    Tick,
    /// The page became visible or hidden.
    Visibility {
        /// Visible now.
        visible: bool,
    },
    /// `pagehide`: the page may go away (or into the back/forward cache).
    PageHide,
    /// `pageshow` of a page restored from the back/forward cache.
    PageShow {
        /// The page is visible.
        visible: bool,
    },
    /// The convo is closing in this tab.
    Close,
}

/// Actions of the election.
#[derive(Debug, Clone, PartialEq)]
pub enum TabAction {
    /// Ask for the Web Lock (`steal` takes it from a frozen holder).
    RequestLock {
        /// Steal it.
        steal: bool,
    },
    /// Release the Web Lock.
    ReleaseLock,
    /// Post this envelope on the channel.
    Broadcast(Envelope),
    /// This tab now leads: start the stream (and reconcile, so nothing
    /// between the old leader's last frame and ours is lost).
    Lead {
        /// The new generation.
        gen: u64,
    },
    /// This tab now follows: stop any stream at once.
    Follow {
        /// The generation in force.
        gen: u64,
    },
    /// A relayed frame to deliver in this tab (follower side).
    Deliver {
        /// Event name.
        name: String,
        /// The frame's JSON.
        json: String,
    },
    /// Arm the election timer.
    SetTimer {
        /// Delay from now.
        delay_ms: u64,
    },
    /// Leader side: a tab joined or changed role; relay the stream's current
    /// status so it reports the shared stream's state at once.
    Announce,
}

/// One tab's election state for one convo.
#[derive(Debug)]
pub struct Election {
    cfg: ElectionConfig,
    tab: String,
    role: Option<Role>,
    gen: u64,
    visible: bool,
    closed: bool,
    /// When a leader (not us) was last heard.
    last_leader_ms: Option<u64>,
    /// The leader we last heard, and whether its page was visible.
    leader: Option<(String, bool)>,
    /// When a visible follower was last heard (for the hidden leader's handover).
    visible_follower_ms: Option<u64>,
    lock_requested: bool,
    /// When this tab last passed the lock on to a visible tab (hidden handover).
    passed_ms: Option<u64>,
    started_ms: u64,
    ignored: u64,
    leader_changes: u64,
    /// The other tab last heard leading.
    last_heard: Option<String>,
    out: Vec<TabAction>,
}

impl Election {
    /// A tab's election, with its unique tab id.
    pub fn new(cfg: ElectionConfig, tab: impl Into<String>) -> Self {
        Election {
            cfg,
            tab: tab.into(),
            role: None,
            gen: 0,
            visible: true,
            closed: false,
            last_leader_ms: None,
            leader: None,
            visible_follower_ms: None,
            lock_requested: false,
            passed_ms: None,
            started_ms: 0,
            ignored: 0,
            leader_changes: 0,
            last_heard: None,
            out: Vec::new(),
        }
    }

    /// The role, once decided.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// The generation in force.
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// How many times the leading tab changed, as this tab saw it (this
    /// tab taking the lead, or hearing another leader than the last).
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes
    }

    /// Channel messages ignored as not ours (for debug logs).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// The envelope forwarding a convo event (leader side), or `None` when
    /// this tab does not lead.
    pub fn forward(&self, name: &str, json: String) -> Option<Envelope> {
        (self.role == Some(Role::Leader)).then(|| self.envelope(Body::Event { name: name.to_owned(), json }))
    }

    fn envelope(&self, body: Body) -> Envelope {
        Envelope { sdk: "valet-sdk".into(), v: ENVELOPE_VERSION, tab: self.tab.clone(), gen: self.gen, body }
    }

    fn broadcast(&mut self, body: Body) {
        let env = self.envelope(body);
        self.out.push(TabAction::Broadcast(env));
    }

    /// Handles one input at `now_ms`.
    pub fn handle(&mut self, now_ms: u64, input: TabInput) -> Vec<TabAction> {
        if self.closed {
            return Vec::new();
        }
        match input {
            TabInput::Start { visible } => {
                // Undecided until the lock is granted, a leader is heard, or
                // `startup_ms` passes.
                self.visible = visible;
                self.started_ms = now_ms;
                if self.cfg.locks {
                    self.lock_requested = true;
                    self.out.push(TabAction::RequestLock { steal: false });
                }
                self.broadcast(Body::Presence { visible });
                self.arm();
            }
            TabInput::LockGranted => {
                self.lock_requested = false;
                // Hidden, and a visible tab wants it: pass it on (and queue
                // again behind it), unless it came straight back, which means
                // nobody else is waiting.
                let passed_just_now = self.passed_ms.is_some_and(|t| now_ms.saturating_sub(t) < self.cfg.heartbeat_ms);
                if self.visible || !self.cfg.prefer_visible || !self.visible_follower_recent(now_ms) || passed_just_now {
                    self.passed_ms = None;
                    self.lead(now_ms);
                } else {
                    self.passed_ms = Some(now_ms);
                    self.out.push(TabAction::ReleaseLock);
                    self.request_lock();
                }
            }
            TabInput::LockLost => {
                // Stolen, or the request failed: queue again (at once when
                // standing down; a follower's next tick otherwise, so a
                // request that fails at once can not spin).
                self.lock_requested = false;
                if self.role == Some(Role::Leader) {
                    self.follow(now_ms);
                }
            }
            TabInput::Channel(raw) => match parse_envelope(&raw) {
                Some(env) if env.tab != self.tab => self.on_envelope(now_ms, env),
                Some(_) => {}
                None => self.ignored += 1,
            },
            TabInput::Tick => self.on_tick(now_ms),
            TabInput::Visibility { visible } => {
                self.visible = visible;
                match self.role {
                    Some(Role::Leader) => self.broadcast(Body::Heartbeat { visible }),
                    _ => self.broadcast(Body::Presence { visible }),
                }
            }
            TabInput::PageHide => {
                // Hand over now rather than after a lease.
                if self.role == Some(Role::Leader) {
                    self.resign(now_ms, false);
                }
            }
            TabInput::PageShow { visible } => return self.handle(now_ms, TabInput::Start { visible }),
            TabInput::Close => {
                if self.role == Some(Role::Leader) {
                    self.broadcast(Body::Resign);
                    self.out.push(TabAction::ReleaseLock);
                }
                self.closed = true;
            }
        }
        std::mem::take(&mut self.out)
    }

    fn visible_follower_recent(&self, now_ms: u64) -> bool {
        self.visible_follower_ms.is_some_and(|t| now_ms.saturating_sub(t) < self.cfg.lease_ms)
    }

    fn arm(&mut self) {
        let delay_ms = match self.role {
            Some(Role::Leader) => self.cfg.heartbeat_ms,
            _ => self.cfg.heartbeat_ms.min(self.cfg.startup_ms.max(1)),
        };
        self.out.push(TabAction::SetTimer { delay_ms });
    }

    /// Counts a leader change when `tab` is not the leader last heard.
    fn note_leader(&mut self, tab: &str) {
        if self.last_heard.as_deref() != Some(tab) {
            self.leader_changes += 1;
            self.last_heard = Some(tab.to_owned());
        }
    }

    fn request_lock(&mut self) {
        self.lock_requested = true;
        self.out.push(TabAction::RequestLock { steal: false });
    }

    fn lead(&mut self, now_ms: u64) {
        self.leader_changes += 1;
        self.last_heard = None;
        self.gen = (self.gen + 1).max(now_ms);
        self.role = Some(Role::Leader);
        self.last_leader_ms = None;
        self.leader = None;
        self.out.push(TabAction::Lead { gen: self.gen });
        self.broadcast(Body::Heartbeat { visible: self.visible });
        self.arm();
    }

    /// Becomes a follower. A leader standing down releases the lock and, but
    /// on `pagehide` (`requeue: false`), queues a fresh request behind the
    /// tabs already waiting. Followers announce themselves, so the leader
    /// relays its status to them.
    fn follow_with(&mut self, now_ms: u64, requeue: bool) {
        let was_leader = self.role == Some(Role::Leader);
        self.role = Some(Role::Follower);
        if was_leader && self.cfg.locks {
            self.out.push(TabAction::ReleaseLock);
            self.lock_requested = false;
            if requeue {
                self.request_lock();
            }
        }
        self.out.push(TabAction::Follow { gen: self.gen });
        self.broadcast(Body::Presence { visible: self.visible });
        self.last_leader_ms = Some(now_ms);
        self.arm();
    }

    fn follow(&mut self, now_ms: u64) {
        self.follow_with(now_ms, true);
    }

    /// Whether a heartbeat or event of generation `gen` from `tab` comes from
    /// the leader in force: a generation at least ours, or any generation
    /// when no leader is live (it resigned, or was silent for a lease).
    fn accepts(&self, now_ms: u64, gen: u64, tab: &str) -> bool {
        if gen >= self.gen || self.leader.as_ref().is_some_and(|(t, _)| t == tab) {
            return true;
        }
        let live = self.leader.is_some() && self.last_leader_ms.is_some_and(|t| now_ms.saturating_sub(t) < self.cfg.lease_ms);
        !live
    }

    fn on_envelope(&mut self, now_ms: u64, env: Envelope) {
        match env.body {
            Body::Heartbeat { visible } => {
                let theirs = (env.gen, env.tab.as_str());
                let ours = (self.gen, self.tab.as_str());
                if self.role == Some(Role::Leader) {
                    if theirs > ours {
                        // A newer leader (we were frozen, or two claimed): stand down.
                        self.gen = env.gen;
                        self.leader = Some((env.tab, visible));
                        self.follow(now_ms);
                    }
                    return;
                }
                if self.accepts(now_ms, env.gen, &env.tab) {
                    self.gen = env.gen;
                    self.note_leader(&env.tab);
                    self.leader = Some((env.tab, visible));
                    self.last_leader_ms = Some(now_ms);
                    if self.role.is_none() {
                        self.follow(now_ms);
                    }
                }
            }
            Body::Presence { visible } => {
                if visible {
                    self.visible_follower_ms = Some(now_ms);
                }
                if self.role == Some(Role::Leader) {
                    // Answer at once so a new tab learns the leader without
                    // waiting, and tell it the stream's status.
                    self.broadcast(Body::Heartbeat { visible: self.visible });
                    self.out.push(TabAction::Announce);
                    if visible && !self.visible && self.cfg.prefer_visible {
                        self.resign(now_ms, true);
                    }
                }
            }
            Body::Resign => {
                if self.leader.as_ref().is_some_and(|(t, _)| *t == env.tab) {
                    self.last_leader_ms = None;
                    self.leader = None;
                    if !self.cfg.locks && self.visible {
                        self.lead(now_ms);
                    }
                }
            }
            Body::Event { name, json } => {
                if self.role != Some(Role::Leader) && self.accepts(now_ms, env.gen, &env.tab) {
                    if self.role.is_none() {
                        self.follow(now_ms);
                    }
                    self.gen = env.gen;
                    if self.leader.as_ref().is_none_or(|(t, _)| *t != env.tab) {
                        self.note_leader(&env.tab);
                        self.leader = Some((env.tab, true));
                    }
                    self.last_leader_ms = Some(now_ms);
                    self.out.push(TabAction::Deliver { name, json });
                }
                // Older generations (a leader that was replaced) are dropped.
            }
        }
    }

    fn resign(&mut self, now_ms: u64, requeue: bool) {
        self.broadcast(Body::Resign);
        self.follow_with(now_ms, requeue);
    }

    fn on_tick(&mut self, now_ms: u64) {
        match self.role {
            Some(Role::Leader) => {
                self.broadcast(Body::Heartbeat { visible: self.visible });
                if !self.visible && self.cfg.prefer_visible && self.visible_follower_recent(now_ms) {
                    self.resign(now_ms, true);
                    return;
                }
            }
            None if self.cfg.locks => {
                // Waiting for the lock: after `startup_ms` someone else holds
                // it (and will heartbeat); follow meanwhile.
                if now_ms.saturating_sub(self.started_ms) >= self.cfg.startup_ms {
                    self.follow(now_ms);
                    return;
                }
            }
            _ => {
                if self.cfg.locks && !self.lock_requested && self.role == Some(Role::Follower) {
                    // The invariant: a tab that does not lead waits in the lock's queue.
                    self.request_lock();
                }
                let silent_since = self.last_leader_ms.unwrap_or(self.started_ms);
                let limit = if self.last_leader_ms.is_none() && self.leader.is_none() {
                    self.cfg.startup_ms
                } else {
                    self.cfg.lease_ms
                };
                let leader_silent = now_ms.saturating_sub(silent_since) >= limit;
                if leader_silent && (self.visible || !self.cfg.prefer_visible || self.leader.is_none()) {
                    if self.cfg.locks {
                        // With locks, a live holder's lock passes by itself; a silent
                        // one (frozen) must be stolen. Only after a leader was heard.
                        if self.leader.is_some() || self.last_leader_ms.is_some() {
                            self.lock_requested = true;
                            self.leader = None;
                            self.last_leader_ms = Some(now_ms);
                            self.out.push(TabAction::RequestLock { steal: true });
                        }
                    } else {
                        self.lead(now_ms);
                        return;
                    }
                }
            }
        }
        self.arm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Several tabs of one browser, a channel that delivers to every other
    /// tab, and (optionally) a Web Lock that the harness grants in order.
    /// As in the glue, a tab has one lock handle: a new request replaces
    /// (withdraws or releases) the old one. A frozen tab runs nothing; what
    /// reaches it waits until it thaws.
    struct Browser {
        tabs: Vec<Election>,
        alive: Vec<bool>,
        frozen: Vec<bool>,
        parked: Vec<Vec<TabInput>>,
        now: u64,
        lock_holder: Option<usize>,
        lock_queue: VecDeque<usize>,
        leading: Vec<bool>,
        delivered: Vec<Vec<String>>,
        announced: Vec<u32>,
    }

    impl Browser {
        fn new(n: usize, locks: bool) -> Self {
            let mut b = Browser {
                tabs: Vec::new(),
                alive: Vec::new(),
                frozen: Vec::new(),
                parked: Vec::new(),
                now: 0,
                lock_holder: None,
                lock_queue: VecDeque::new(),
                leading: Vec::new(),
                delivered: Vec::new(),
                announced: Vec::new(),
            };
            for _ in 0..n {
                b.add_tab(locks);
            }
            b
        }

        /// A new tab (not started); returns its index.
        fn add_tab(&mut self, locks: bool) -> usize {
            let i = self.tabs.len();
            let cfg = ElectionConfig { locks, ..Default::default() };
            self.tabs.push(Election::new(cfg, format!("tab-{i}")));
            self.alive.push(true);
            self.frozen.push(false);
            self.parked.push(Vec::new());
            self.leading.push(false);
            self.delivered.push(Vec::new());
            self.announced.push(0);
            i
        }

        fn input(&mut self, i: usize, input: TabInput) {
            if !self.alive[i] {
                return;
            }
            if self.frozen[i] {
                if !matches!(input, TabInput::Tick) {
                    self.parked[i].push(input);
                }
                return;
            }
            let out = self.tabs[i].handle(self.now, input);
            self.apply(i, out);
        }

        fn freeze(&mut self, i: usize) {
            self.frozen[i] = true;
        }

        fn thaw(&mut self, i: usize) {
            self.frozen[i] = false;
            for input in std::mem::take(&mut self.parked[i]) {
                self.input(i, input);
            }
        }

        /// Withdraws tab `i`'s queued request, or releases its lock.
        fn drop_handle(&mut self, i: usize) {
            self.lock_queue.retain(|&t| t != i);
            if self.lock_holder == Some(i) {
                self.release();
            }
        }

        fn apply(&mut self, i: usize, out: Vec<TabAction>) {
            for a in out {
                match a {
                    TabAction::RequestLock { steal } => {
                        self.drop_handle(i);
                        if steal {
                            if let Some(h) = self.lock_holder.take() {
                                self.input(h, TabInput::LockLost);
                            }
                            self.lock_holder = Some(i);
                            self.input(i, TabInput::LockGranted);
                        } else if self.lock_holder.is_none() {
                            self.lock_holder = Some(i);
                            self.input(i, TabInput::LockGranted);
                        } else {
                            self.lock_queue.push_back(i);
                        }
                    }
                    TabAction::ReleaseLock => self.drop_handle(i),
                    TabAction::Broadcast(env) => {
                        let raw = serde_json::to_string(&env).unwrap();
                        for j in 0..self.tabs.len() {
                            if j != i {
                                self.input(j, TabInput::Channel(raw.clone()));
                            }
                        }
                    }
                    TabAction::Lead { .. } => self.leading[i] = true,
                    TabAction::Follow { .. } => self.leading[i] = false,
                    TabAction::Deliver { json, .. } => self.delivered[i].push(json),
                    TabAction::SetTimer { .. } => {}
                    TabAction::Announce => self.announced[i] += 1,
                }
            }
        }

        fn release(&mut self) {
            self.lock_holder = None;
            while let Some(next) = self.lock_queue.pop_front() {
                if self.alive[next] {
                    self.lock_holder = Some(next);
                    self.input(next, TabInput::LockGranted);
                    break;
                }
            }
        }

        /// Advances time in 100 ms steps, ticking every live tab.
        fn run(&mut self, ms: u64) {
            for _ in 0..ms / 100 {
                self.now += 100;
                for i in 0..self.tabs.len() {
                    self.input(i, TabInput::Tick);
                }
            }
        }

        fn leaders(&self) -> Vec<usize> {
            (0..self.tabs.len()).filter(|&i| self.alive[i] && !self.frozen[i] && self.leading[i]).collect()
        }

        fn crash(&mut self, i: usize) {
            self.alive[i] = false;
            self.leading[i] = false;
            self.drop_handle(i); // the browser passes the lock of a dead tab at once
        }

        fn close(&mut self, i: usize) {
            self.input(i, TabInput::Close);
            self.crash(i);
        }

        /// The leader forwards a frame; returns which tabs delivered it.
        fn relay(&mut self, leader: usize, json: &str) -> Vec<usize> {
            let before: Vec<usize> = self.delivered.iter().map(Vec::len).collect();
            let env = self.tabs[leader].forward("message", json.into()).expect("it leads");
            self.apply(leader, vec![TabAction::Broadcast(env)]);
            (0..self.tabs.len()).filter(|&j| self.delivered[j].len() > before[j]).collect()
        }
    }

    #[test]
    fn three_tabs_elect_exactly_one_leader() {
        for locks in [true, false] {
            let mut b = Browser::new(3, locks);
            for i in 0..3 {
                b.input(i, TabInput::Start { visible: true });
            }
            b.run(2000);
            assert_eq!(b.leaders().len(), 1, "locks={locks}");
        }
    }

    #[test]
    fn two_tabs_started_in_the_same_instant_settle_on_one() {
        for locks in [true, false] {
            let mut b = Browser::new(2, locks);
            b.input(0, TabInput::Start { visible: true });
            b.input(1, TabInput::Start { visible: true });
            b.run(1500);
            assert_eq!(b.leaders().len(), 1, "locks={locks}");
        }
    }

    #[test]
    fn a_closed_or_crashed_leader_is_replaced() {
        for locks in [true, false] {
            let mut b = Browser::new(3, locks);
            for i in 0..3 {
                b.input(i, TabInput::Start { visible: true });
            }
            b.run(1000);
            let first = b.leaders()[0];
            b.close(first);
            b.run(4000);
            assert_eq!(b.leaders().len(), 1, "closed, locks={locks}");
            let second = b.leaders()[0];
            assert_ne!(second, first);
            b.crash(second);
            b.run(4000);
            assert_eq!(b.leaders().len(), 1, "crashed, locks={locks}");
        }
    }

    #[test]
    fn a_frozen_leader_is_replaced_and_stands_down_when_thawed() {
        let mut b = Browser::new(2, true);
        b.input(0, TabInput::Start { visible: true });
        b.input(1, TabInput::Start { visible: true });
        b.run(1000);
        let first = b.leaders()[0];
        let gen = b.tabs[first].generation();
        b.freeze(first); // keeps its lock, sends nothing
        b.run(4000);
        let second = b.leaders()[0];
        assert_ne!(second, first, "the follower stole the lease");
        assert!(b.tabs[second].generation() > gen);
        b.thaw(first);
        b.run(1500);
        assert_eq!(b.leaders(), vec![second], "the thawed leader stood down");
    }

    #[test]
    fn a_starting_tab_follows_a_leader_it_hears_and_waits_otherwise() {
        let mut e = Election::new(ElectionConfig::default(), "me");
        e.handle(0, TabInput::Start { visible: true });
        assert_eq!(e.role(), None);
        let hb = serde_json::to_string(&Envelope { sdk: "valet-sdk".into(), v: 1, tab: "lead".into(), gen: 3, body: Body::Heartbeat { visible: true } }).unwrap();
        let out = e.handle(5, TabInput::Channel(hb));
        assert!(out.contains(&TabAction::Follow { gen: 3 }));
        // A lone tab whose lock is slow follows after `startup_ms`, then leads when granted.
        let mut lone = Election::new(ElectionConfig::default(), "lone");
        lone.handle(0, TabInput::Start { visible: true });
        assert!(lone.handle(100, TabInput::Tick).iter().all(|a| !matches!(a, TabAction::Follow { .. })));
        assert!(lone.handle(300, TabInput::Tick).iter().any(|a| matches!(a, TabAction::Follow { .. })));
        assert!(lone.handle(310, TabInput::LockGranted).iter().any(|a| matches!(a, TabAction::Lead { .. })));
    }

    #[test]
    fn followers_drop_events_of_an_older_generation() {
        let mut e = Election::new(ElectionConfig::default(), "me");
        e.handle(0, TabInput::Start { visible: true });
        let hb = |gen| {
            serde_json::to_string(&Envelope { sdk: "valet-sdk".into(), v: 1, tab: "other".into(), gen, body: Body::Heartbeat { visible: true } }).unwrap()
        };
        let ev = |gen, json: &str| {
            serde_json::to_string(&Envelope {
                sdk: "valet-sdk".into(),
                v: 1,
                tab: "old".into(),
                gen,
                body: Body::Event { name: "message".into(), json: json.into() },
            })
            .unwrap()
        };
        e.handle(10, TabInput::Channel(hb(5)));
        assert!(e.handle(20, TabInput::Channel(ev(4, "stale"))).is_empty());
        let out = e.handle(30, TabInput::Channel(ev(5, "fresh")));
        assert_eq!(out, vec![TabAction::Deliver { name: "message".into(), json: "fresh".into() }]);
    }

    #[test]
    fn envelope_bodies_keep_their_wire_shape() {
        let env = |body| Envelope { sdk: "valet-sdk".into(), v: 1, tab: "t".into(), gen: 7, body };
        for (body, json) in [
            (Body::Heartbeat { visible: true }, r#"{"kind":"heartbeat","visible":true}"#),
            (Body::Presence { visible: false }, r#"{"kind":"presence","visible":false}"#),
            (Body::Resign, r#"{"kind":"resign"}"#),
            (Body::Event { name: "message".into(), json: "{}".into() }, r#"{"kind":"event","name":"message","json":"{}"}"#),
        ] {
            let text = serde_json::to_string(&env(body.clone())).unwrap();
            assert_eq!(text, format!(r#"{{"sdk":"valet-sdk","v":1,"tab":"t","gen":7,"body":{json}}}"#));
            assert_eq!(parse_envelope(&text).unwrap().body, body);
        }
        assert!(parse_envelope(r#"{"sdk":"valet-sdk","v":1,"tab":"t","gen":7,"body":{"kind":"heartbeat"}}"#).is_none(), "a heartbeat needs visible");
    }

    #[test]
    fn garbage_on_the_channel_is_ignored_and_counted() {
        let mut e = Election::new(ElectionConfig::default(), "me");
        e.handle(0, TabInput::Start { visible: true });
        for raw in ["", "42", "{\"hello\":1}", "{\"sdk\":\"valet-sdk\",\"v\":0,\"tab\":\"x\",\"gen\":1,\"body\":{\"kind\":\"resign\"}}", "\u{0}\u{1}"] {
            assert!(e.handle(1, TabInput::Channel(raw.into())).is_empty());
        }
        assert_eq!(e.ignored(), 5);
        assert_eq!(e.role(), None, "garbage decides nothing");
    }

    #[test]
    fn without_locks_a_leader_leaving_on_pagehide_is_replaced_at_once() {
        let mut b = Browser::new(2, false);
        b.input(0, TabInput::Start { visible: true });
        b.run(500);
        b.input(1, TabInput::Start { visible: true });
        b.run(500);
        assert_eq!(b.leaders(), vec![0]);
        b.input(0, TabInput::PageHide);
        assert_eq!(b.leaders(), vec![1], "no lease to wait out");
        b.alive[0] = false;
        b.run(1000);
        assert_eq!(b.leaders(), vec![1]);
    }

    #[test]
    fn a_hidden_leader_hands_over_to_a_visible_tab() {
        let mut b = Browser::new(2, true);
        b.input(0, TabInput::Start { visible: true });
        b.run(500);
        b.input(1, TabInput::Start { visible: true });
        b.run(500);
        assert_eq!(b.leaders(), vec![0]);
        b.input(0, TabInput::Visibility { visible: false });
        b.input(1, TabInput::Visibility { visible: true });
        b.run(2000);
        assert_eq!(b.leaders(), vec![1], "the visible tab leads");
    }

    #[test]
    fn the_leader_forwards_and_followers_deliver() {
        let mut b = Browser::new(2, true);
        b.input(0, TabInput::Start { visible: true });
        b.input(1, TabInput::Start { visible: true });
        b.run(500);
        let leader = b.leaders()[0];
        let follower = 1 - leader;
        assert!(b.tabs[follower].forward("message", "{}".into()).is_none(), "followers do not forward");
        assert_eq!(b.relay(leader, "{\"x\":1}"), vec![follower]);
        assert_eq!(b.delivered[follower], vec!["{\"x\":1}".to_owned()]);
    }

    /// The issue's sequence: A leads, is frozen past the lease, B steals;
    /// A thaws and follows; B closes; then C opens. Someone must lead at
    /// every step, and every tab must hear the leader's frames.
    #[test]
    fn after_a_frozen_leader_thaws_and_the_new_one_closes_someone_leads_and_everyone_hears() {
        let mut b = Browser::new(2, true);
        b.now = 1_000;
        b.input(0, TabInput::Start { visible: true });
        b.run(500);
        b.input(1, TabInput::Start { visible: true });
        b.run(1000);
        assert_eq!(b.leaders(), vec![0]);
        b.freeze(0);
        b.run(6000);
        assert_eq!(b.leaders(), vec![1], "B stole the lease");
        b.thaw(0);
        b.run(1500);
        assert_eq!(b.leaders(), vec![1], "A thawed and follows");
        assert_eq!(b.relay(1, "m1"), vec![0]);
        b.close(1);
        b.run(1500);
        assert_eq!(b.leaders(), vec![0], "A leads again once B is gone");
        let c = b.add_tab(true);
        b.input(c, TabInput::Start { visible: true });
        b.run(1500);
        assert_eq!(b.leaders(), vec![0], "C follows A");
        assert_eq!(b.relay(0, "m2"), vec![c]);
        b.close(0);
        b.run(1500);
        assert_eq!(b.leaders(), vec![c], "C leads once A is gone");
    }

    /// A tab that stands down, gives the lock away or loses it always
    /// queues again: whoever leads, the lock never falls free unclaimed.
    #[test]
    fn every_tab_that_does_not_lead_waits_for_the_lock() {
        let mut b = Browser::new(3, true);
        for i in 0..3 {
            b.input(i, TabInput::Start { visible: true });
        }
        b.run(1000);
        let first = b.leaders()[0];
        b.freeze(first);
        b.run(5000);
        b.thaw(first);
        b.run(1500);
        let leader = b.leaders()[0];
        let mut waiting: Vec<usize> = b.lock_queue.iter().copied().collect();
        waiting.sort();
        let mut others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        others.sort();
        assert_eq!(waiting, others, "both followers are queued for the lock");
        // Close the leaders one by one: the last tab standing leads.
        b.close(leader);
        b.run(1000);
        let next = b.leaders();
        assert_eq!(next.len(), 1);
        b.close(next[0]);
        b.run(1000);
        assert_eq!(b.leaders().len(), 1);
    }

    /// A new leader takes a generation from the shared clock, above what
    /// older tabs saw; and should a clock go back, a follower with no live
    /// leader still takes a lower generation's heartbeats and frames.
    #[test]
    fn a_new_leader_is_heard_whatever_generation_the_followers_saw() {
        let hb = |tab: &str, gen| {
            serde_json::to_string(&Envelope { sdk: "valet-sdk".into(), v: 1, tab: tab.into(), gen, body: Body::Heartbeat { visible: true } }).unwrap()
        };
        let msg = |tab: &str, gen| {
            serde_json::to_string(&Envelope {
                sdk: "valet-sdk".into(),
                v: 1,
                tab: tab.into(),
                gen,
                body: Body::Event { name: "message".into(), json: "m".into() },
            })
            .unwrap()
        };
        let resign = |tab: &str, gen| {
            serde_json::to_string(&Envelope { sdk: "valet-sdk".into(), v: 1, tab: tab.into(), gen, body: Body::Resign }).unwrap()
        };
        let mut lone = Election::new(ElectionConfig::default(), "new");
        lone.handle(50_000, TabInput::Start { visible: true });
        let out = lone.handle(50_010, TabInput::LockGranted);
        assert!(out.contains(&TabAction::Lead { gen: 50_010 }), "a fresh leader's generation is the clock: {out:?}");

        let mut a = Election::new(ElectionConfig::default(), "a");
        a.handle(0, TabInput::Start { visible: true });
        a.handle(10, TabInput::Channel(hb("old", 1_000_000)));
        assert_eq!(a.role(), Some(Role::Follower));
        // While the old leader is live, a lower generation is a stale leader: dropped.
        assert!(a.handle(20, TabInput::Channel(msg("stale", 5))).is_empty());
        a.handle(30, TabInput::Channel(resign("old", 1_000_000)));
        let out = a.handle(40, TabInput::Channel(msg("new", 5)));
        assert_eq!(out, vec![TabAction::Deliver { name: "message".into(), json: "m".into() }], "no live leader: the new one is heard");
        assert_eq!(a.generation(), 5);
        // Silence for a lease also makes a leader no longer live.
        let mut f = Election::new(ElectionConfig::default(), "f");
        f.handle(0, TabInput::Start { visible: true });
        f.handle(10, TabInput::Channel(hb("old", 900)));
        assert!(f.handle(100, TabInput::Channel(hb("other", 7))).is_empty() || f.generation() == 900);
        assert_eq!(f.generation(), 900, "a live leader's generation stands");
        f.handle(5_000, TabInput::Channel(hb("other", 7)));
        assert_eq!(f.generation(), 7, "after a silent lease the lower generation is taken");
    }

    #[test]
    fn a_leader_announces_its_status_to_joining_tabs() {
        let mut b = Browser::new(1, true);
        b.input(0, TabInput::Start { visible: true });
        b.run(500);
        assert_eq!(b.leaders(), vec![0]);
        let before = b.announced[0];
        let late = b.add_tab(true);
        b.input(late, TabInput::Start { visible: true });
        assert!(b.announced[0] > before, "a joining tab makes the leader relay its status");
    }

    /// Leader changes under random freezes, thaws, crashes, closes and new
    /// tabs (seeded): after every settle exactly one tab leads, and every
    /// live tab delivers what it relays.
    #[test]
    fn random_freezes_crashes_and_new_tabs_always_settle_on_one_leader_heard_by_all() {
        for locks in [true, false] {
            for seed in 1..=40u64 {
                let mut rng = crate::backoff::Rng::new(seed);
                let mut b = Browser::new(3, locks);
                b.now = 1_000_000;
                for i in 0..3 {
                    b.input(i, TabInput::Start { visible: true });
                }
                b.run(1000);
                let mut log = Vec::new();
                for step in 0..12 {
                    let live: Vec<usize> = (0..b.tabs.len()).filter(|&i| b.alive[i]).collect();
                    let pick = live[(rng.next_u64() % live.len() as u64) as usize];
                    match rng.next_u64() % 6 {
                        0 if live.len() > 1 => {
                            b.freeze(pick);
                            b.run(4000 + rng.next_u64() % 3000);
                            b.thaw(pick);
                            log.push(format!("freeze {pick}"));
                        }
                        1 if live.len() > 1 => {
                            b.crash(pick);
                            log.push(format!("crash {pick}"));
                        }
                        2 if live.len() > 1 => {
                            b.close(pick);
                            log.push(format!("close {pick}"));
                        }
                        _ => {
                            let t = b.add_tab(locks);
                            b.input(t, TabInput::Start { visible: true });
                            log.push(format!("open {t}"));
                        }
                    }
                    b.run(4000);
                    let leaders = b.leaders();
                    assert_eq!(leaders.len(), 1, "locks={locks} seed={seed} step={step} {log:?}");
                    let heard = b.relay(leaders[0], "x");
                    let others: Vec<usize> = (0..b.tabs.len()).filter(|&i| b.alive[i] && i != leaders[0]).collect();
                    assert_eq!(heard, others, "locks={locks} seed={seed} step={step} {log:?}");
                }
            }
        }
    }
}
