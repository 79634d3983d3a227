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
//!   A leader that resigns names its heir, a follower it heard within a
//!   lease (a visible one first): only that tab claims at once, the others
//!   wait for its heartbeat, or a lease if it never comes. Were every
//!   follower to claim, each would open a stream before the duel settles,
//!   and a stream given up while its request is in flight can stay open on
//!   the server for seconds (a browser may keep the socket to drain it),
//!   against a cap of two streams per user and agent.
//! - A hidden leader hands over to a visible follower when one exists
//!   (`pauseOnHidden`): it resigns, and the visible tab takes the lock. A
//!   leader whose page is hiding (`pagehide`, never `unload`) resigns at once;
//!   restored from the back/forward cache (`pageshow`), it rejoins.
//! - The leader relays only while another tab listens, one envelope per
//!   chunk of frames. A follower says `hello` when it starts to follow a
//!   leader, and answers every heartbeat after with a presence; the leader
//!   acknowledges a hello with a heartbeat addressed to that tab, and stops
//!   relaying once three of its heartbeats in a row go unanswered. The
//!   heartbeat's `relay` counts the leader's spells: it goes up by one each
//!   time relaying starts or stops (odd: relaying). A follower fetches
//!   history only once its hello is acknowledged (the leader relays
//!   everything it receives from then on, so history plus relays leave no
//!   gap), and says hello again when a heartbeat shows a later spell than
//!   the one it was acknowledged in: relaying stopped at some point (this
//!   tab was frozen or too busy to answer), so it may have missed frames,
//!   and its next history fetch fills them. Heartbeats of earlier spells
//!   (queued while the tab was frozen) change nothing.
//! - Anything on the channel that is not a well-formed envelope of this
//!   version is ignored and counted, never an error. Tabs of another
//!   version (an older SDK in a tab not reloaded) ignore each other and each
//!   elect their own leader: one more stream, never a deaf tab.

#[allow(unused_imports)]
use crate::prelude::*;
use serde::Serialize;

/// The envelope version tabs speak.
pub const ENVELOPE_VERSION: u32 = 2;

/// What tabs send each other on the convo's channel.
#[derive(Debug, Clone, PartialEq)]
/// On the wire it also has `"sdk":"valet-sdk"` (tells our messages from
/// other scripts') and `"v"`: [`ENVELOPE_VERSION`].
pub struct Envelope {
    /// The sending tab.
    pub tab: String,
    /// The sender's view of the leader generation.
    pub gen: u64,
    /// What it says.
    pub body: Body,
}

/// Envelope bodies: `{"kind":"heartbeat","visible":true,"relay":0}` and so
/// on (written by [`Envelope::to_json`], read by [`parse_envelope`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// The leader is alive (and whether its page is visible).
    Heartbeat {
        /// The leader's page is visible.
        visible: bool,
        /// The leader's relay spell: up by one at each start and stop of
        /// relaying, odd while it relays.
        relay: u64,
        /// The tab whose hello this heartbeat answers.
        ack: Option<String>,
    },
    /// A tab that does not lead is here (and whether its page is visible).
    Presence {
        /// The tab's page is visible.
        visible: bool,
        /// It starts to listen: answer with a heartbeat `ack`ing it.
        hello: bool,
    },
    /// The leader is stepping down (closing, or hidden with a visible
    /// follower), naming the tab to lead next.
    Resign {
        /// Without Web Locks, the one tab that claims at once (a tab the
        /// leader heard lately, a visible one first); the others wait for
        /// its heartbeat, or a lease. `None`: every visible tab claims.
        next: Option<String>,
    },
    /// Frames (and the leader's status, as event `status`), relayed by the
    /// leader as received, as SSE text: `event: message\ndata: {...}\n\n`
    /// per frame, one envelope per chunk.
    Events {
        /// The frames, as SSE events.
        sse: String,
    },
}

impl Envelope {
    /// The envelope as JSON, as posted on the channel:
    /// `{"sdk":"valet-sdk","v":2,"tab":…,"gen":…,"body":{"kind":…}}`.
    pub fn to_json(&self) -> String {
        use crate::error::json_string as q;
        let mut out = crate::cat!(
            "{\"sdk\":\"valet-sdk\",\"v\":",
            ENVELOPE_VERSION,
            ",\"tab\":",
            q(&self.tab),
            ",\"gen\":",
            self.gen,
            ",\"body\":{\"kind\":"
        );
        match &self.body {
            Body::Heartbeat { visible, relay, ack } => {
                out += &crate::cat!("\"heartbeat\",\"visible\":", visible, ",\"relay\":", relay);
                if let Some(a) = ack {
                    out += ",\"ack\":";
                    out += &q(a);
                }
            }
            Body::Presence { visible, hello } => out += &crate::cat!("\"presence\",\"visible\":", visible, ",\"hello\":", hello),
            Body::Resign { next } => {
                out += "\"resign\"";
                if let Some(n) = next {
                    out += ",\"next\":";
                    out += &q(n);
                }
            }
            Body::Events { sse } => {
                out += "\"events\",\"sse\":";
                out += &q(sse);
            }
        }
        out += "}}";
        out
    }
}

/// Parses what arrived on the channel. `None` for anything that is not our
/// envelope of this version (other scripts, garbage, an older SDK).
pub fn parse_envelope(json: &str) -> Option<Envelope> {
    use crate::json::Val;
    // Read by reference, the strings taken: each early return then drops
    // the one array, not the values not yet moved out (code per return).
    let mut vals = crate::json::read_n(
        json,
        ["sdk", "v", "tab", "gen", "body.kind", "body.visible", "body.relay", "body.ack", "body.hello", "body.sse", "body.next"],
    )?;
    let mut take = |i: usize| core::mem::replace(&mut vals[i], Val::Missing).into_string();
    let (tab, ack, sse, next) = (take(2), take(7), take(9), take(10));
    let [sdk, v, _, gen, kind, visible, relay, _, hello, _, _] = &vals;
    if sdk.str() != Some("valet-sdk") || v.u64() != Some(ENVELOPE_VERSION as u64) {
        return None;
    }
    let bool_of = |v: &Val| match v {
        Val::Bool(b) => Some(*b),
        _ => None,
    };
    let body = match (kind.str()?, bool_of(visible)) {
        ("heartbeat", Some(visible)) => Body::Heartbeat { visible, relay: relay.u64()?, ack },
        ("presence", Some(visible)) => Body::Presence { visible, hello: bool_of(hello)? },
        ("resign", _) => Body::Resign { next },
        ("events", _) => Body::Events { sse: sse? },
        _ => return None,
    };
    Some(Envelope { tab: tab?, gen: gen.u64()?, body })
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
    /// Relayed frames to deliver in this tab (follower side), as SSE text.
    Deliver {
        /// The frames, as SSE events.
        sse: String,
    },
    /// Follower side: the leader acknowledged this tab's hello, so it relays
    /// every frame it receives from now on: fetch history now.
    Listening,
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
    /// Leader side: the tab to name in a `Resign` (the last visible one
    /// heard, else the last heard), whether it was visible, and when.
    heir: Option<(String, bool, u64)>,
    lock_requested: bool,
    /// When this tab last passed the lock on to a visible tab (hidden handover).
    passed_ms: Option<u64>,
    started_ms: u64,
    ignored: u64,
    leader_changes: u64,
    /// The other tab last heard leading.
    last_heard: Option<String>,
    /// Leader side: up by one at each start and stop of relaying; odd while
    /// relaying (a tab listened within the last heartbeats).
    relay_spell: u64,
    /// Leader side: heartbeat periods since a tab was last heard (counted
    /// on ticks at least ~`heartbeat_ms` apart, so a throttled leader waits
    /// as many of its own beats).
    quiet_beats: u32,
    last_beat_ms: u64,
    /// Follower side: the leader's relay spell this tab's hello was
    /// acknowledged in (`None`: not acknowledged by the current leader).
    acked: Option<u64>,
    out: Vec<TabAction>,
}

/// Heartbeats in a row without a word from another tab after which the
/// leader stops relaying.
const QUIET_BEATS: u32 = 3;

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
            heir: None,
            lock_requested: false,
            passed_ms: None,
            started_ms: 0,
            ignored: 0,
            leader_changes: 0,
            last_heard: None,
            relay_spell: 0,
            quiet_beats: 0,
            last_beat_ms: 0,
            acked: None,
            out: Vec::new(),
        }
    }

    /// Leader side: whether another tab listens, so frames are worth relaying.
    pub fn relaying(&self) -> bool {
        self.role == Some(Role::Leader) && self.relay_spell % 2 == 1
    }

    /// Leader side: relay (`true`) or stop; a change starts a new spell.
    fn set_relaying(&mut self, on: bool) {
        if (self.relay_spell % 2 == 1) != on {
            self.relay_spell += 1;
        }
    }

    /// Follower side: the leader acknowledged this tab, so it relays to it.
    pub fn listening(&self) -> bool {
        self.role == Some(Role::Follower) && self.acked.is_some()
    }

    /// Whether leadership is a Web Lock (else heartbeats alone elect).
    pub fn uses_locks(&self) -> bool {
        self.cfg.locks
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

    /// The envelope relaying a chunk of frames (SSE text, leader side), or
    /// `None` when this tab does not lead or no other tab listens.
    pub fn forward(&self, sse: String) -> Option<Envelope> {
        self.relaying().then(|| self.envelope(Body::Events { sse }))
    }

    fn envelope(&self, body: Body) -> Envelope {
        Envelope { tab: self.tab.clone(), gen: self.gen, body }
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
                self.acked = None;
                self.broadcast(Body::Presence { visible, hello: true });
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
                    Some(Role::Leader) => self.heartbeat(None),
                    _ => self.presence(),
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
                    self.broadcast(Body::Resign { next: self.heir_now(now_ms) });
                    self.out.push(TabAction::ReleaseLock);
                }
                self.closed = true;
            }
        }
        core::mem::take(&mut self.out)
    }

    /// Whether `at_ms` is less than a lease before `now_ms`.
    fn within_lease(&self, now_ms: u64, at_ms: u64) -> bool {
        now_ms.saturating_sub(at_ms) < self.cfg.lease_ms
    }

    /// The tab to name in a `Resign`: the one last heard within a lease,
    /// a visible one first.
    fn heir_now(&self, now_ms: u64) -> Option<String> {
        let (tab, _, at) = self.heir.as_ref()?;
        self.within_lease(now_ms, *at).then(|| tab.clone())
    }

    fn visible_follower_recent(&self, now_ms: u64) -> bool {
        self.visible_follower_ms.is_some_and(|t| self.within_lease(now_ms, t))
    }

    fn arm(&mut self) {
        let delay_ms = match self.role {
            Some(Role::Leader) => self.cfg.heartbeat_ms,
            _ => self.cfg.heartbeat_ms.min(self.cfg.startup_ms.max(1)),
        };
        self.out.push(TabAction::SetTimer { delay_ms });
    }

    /// Counts a leader change when `tab` is not the leader last heard;
    /// whether it was one.
    fn note_leader(&mut self, tab: &str) -> bool {
        let changed = self.last_heard.as_deref() != Some(tab);
        if changed {
            self.leader_changes += 1;
            self.last_heard = Some(tab.to_owned());
        }
        changed
    }

    /// Leader side: a heartbeat, answering `ack`'s hello if given.
    fn heartbeat(&mut self, ack: Option<String>) {
        self.broadcast(Body::Heartbeat { visible: self.visible, relay: self.relay_spell, ack });
    }

    /// Not leading: say this tab is here; `hello` until the leader in
    /// force acknowledged it.
    fn presence(&mut self) {
        let hello = self.acked.is_none();
        self.broadcast(Body::Presence { visible: self.visible, hello });
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
        self.heir = None;
        self.last_leader_ms = None;
        self.leader = None;
        self.acked = None;
        self.set_relaying(false);
        self.quiet_beats = 0;
        self.last_beat_ms = now_ms;
        self.out.push(TabAction::Lead { gen: self.gen });
        self.heartbeat(None);
        self.arm();
    }

    /// Becomes a follower. A leader standing down releases the lock and, but
    /// on `pagehide` (`requeue: false`), queues a fresh request behind the
    /// tabs already waiting. Followers say hello, so the leader relays to
    /// them (and its status first).
    fn follow_with(&mut self, now_ms: u64, requeue: bool) {
        let was_leader = self.role == Some(Role::Leader);
        self.set_relaying(false);
        self.role = Some(Role::Follower);
        self.acked = None;
        if was_leader && self.cfg.locks {
            self.out.push(TabAction::ReleaseLock);
            self.lock_requested = false;
            if requeue {
                self.request_lock();
            }
        }
        self.out.push(TabAction::Follow { gen: self.gen });
        self.presence();
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
        let live = self.leader.is_some() && self.last_leader_ms.is_some_and(|t| self.within_lease(now_ms, t));
        !live
    }

    fn on_envelope(&mut self, now_ms: u64, env: Envelope) {
        match env.body {
            Body::Heartbeat { visible, relay, ack } => {
                let theirs = (env.gen, env.tab.as_str());
                let ours = (self.gen, self.tab.as_str());
                if self.role == Some(Role::Leader) {
                    if theirs > ours {
                        // A newer leader (we were frozen, or two claimed): stand down.
                        self.gen = env.gen;
                        self.note_leader(&env.tab);
                        self.leader = Some((env.tab, visible));
                        self.follow(now_ms);
                    }
                    return;
                }
                if self.accepts(now_ms, env.gen, &env.tab) {
                    self.gen = env.gen;
                    let changed = self.note_leader(&env.tab);
                    self.leader = Some((env.tab, visible));
                    self.last_leader_ms = Some(now_ms);
                    if changed || self.acked.is_some_and(|spell| relay > spell) {
                        // A new leader, or a later spell than the one this tab
                        // was acknowledged in (relaying stopped meanwhile): say
                        // hello again.
                        self.acked = None;
                    }
                    if self.role.is_none() {
                        self.follow(now_ms);
                    } else {
                        self.presence();
                    }
                    if ack.as_deref() == Some(self.tab.as_str()) && self.acked.is_none() {
                        self.acked = Some(relay);
                        self.out.push(TabAction::Listening);
                    }
                }
            }
            Body::Presence { visible, hello } => {
                if visible {
                    self.visible_follower_ms = Some(now_ms);
                }
                if self.role == Some(Role::Leader) {
                    // A hidden tab does not displace a visible heir heard lately.
                    let keep = self.heir.as_ref().is_some_and(|(t, vis, at)| {
                        *vis && !visible && *t != env.tab && self.within_lease(now_ms, *at)
                    });
                    if !keep {
                        self.heir = Some((env.tab.clone(), visible, now_ms));
                    }
                    self.quiet_beats = 0;
                    self.set_relaying(true);
                    if hello {
                        // Answer at once so a new tab learns the leader without
                        // waiting, and tell it the stream's status.
                        self.heartbeat(Some(env.tab));
                        self.out.push(TabAction::Announce);
                    }
                    if visible && !self.visible && self.cfg.prefer_visible {
                        self.resign(now_ms, true);
                    }
                }
            }
            Body::Resign { next } => {
                if self.leader.as_ref().is_some_and(|(t, _)| *t == env.tab) {
                    // The lock passes to the next tab in its queue; if that
                    // one never leads (frozen while it waited), a lease
                    // from now on lets a visible follower take it.
                    self.last_leader_ms = Some(now_ms);
                    self.leader = None;
                    // Without locks the named tab claims at once and the
                    // others wait for its heartbeat (or, if it never leads,
                    // the lease): one new stream, not one per tab.
                    let claim = match next {
                        Some(heir) => heir == self.tab,
                        None => self.visible,
                    };
                    if !self.cfg.locks && claim {
                        self.lead(now_ms);
                    }
                }
            }
            Body::Events { sse } => {
                if self.role != Some(Role::Leader) && self.accepts(now_ms, env.gen, &env.tab) {
                    if self.role.is_none() {
                        self.follow(now_ms);
                    }
                    self.gen = env.gen;
                    if self.leader.as_ref().is_none_or(|(t, _)| *t != env.tab) {
                        if self.note_leader(&env.tab) {
                            self.acked = None;
                            self.presence();
                        }
                        self.leader = Some((env.tab, true));
                    }
                    self.last_leader_ms = Some(now_ms);
                    self.out.push(TabAction::Deliver { sse });
                }
                // Older generations (a leader that was replaced) are dropped.
            }
        }
    }

    fn resign(&mut self, now_ms: u64, requeue: bool) {
        self.broadcast(Body::Resign { next: self.heir_now(now_ms) });
        self.follow_with(now_ms, requeue);
    }

    fn on_tick(&mut self, now_ms: u64) {
        match self.role {
            Some(Role::Leader) => {
                if now_ms.saturating_sub(self.last_beat_ms) >= self.cfg.heartbeat_ms * 9 / 10 {
                    self.quiet_beats += 1;
                    self.last_beat_ms = now_ms;
                }
                if self.quiet_beats > QUIET_BEATS {
                    self.set_relaying(false);
                }
                self.heartbeat(None);
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
                let limit = if self.last_leader_ms.is_none() && self.leader.is_none() { self.cfg.startup_ms } else { self.cfg.lease_ms };
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
        /// `Listening` actions per tab (each one a history fetch).
        listened: Vec<u32>,
        /// Relay every 500 ms in `run` and check who hears it.
        chatter: bool,
        started: Vec<bool>,
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
                listened: Vec::new(),
                chatter: false,
                started: Vec::new(),
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
            self.listened.push(0);
            self.started.push(false);
            i
        }

        fn input(&mut self, i: usize, input: TabInput) {
            // A tab hears the channel once its convo is opened (`Start`).
            if matches!(input, TabInput::Start { .. }) {
                self.started[i] = true;
            }
            if !self.alive[i] || !self.started[i] {
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
            for input in core::mem::take(&mut self.parked[i]) {
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
                        let raw = env.to_json();
                        for j in 0..self.tabs.len() {
                            if j != i {
                                self.input(j, TabInput::Channel(raw.clone()));
                            }
                        }
                    }
                    TabAction::Lead { .. } => self.leading[i] = true,
                    TabAction::Follow { .. } => self.leading[i] = false,
                    TabAction::Deliver { sse } => self.delivered[i].push(sse),
                    TabAction::SetTimer { .. } => {}
                    TabAction::Announce => self.announced[i] += 1,
                    TabAction::Listening => self.listened[i] += 1,
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

        /// Advances time in 100 ms steps, ticking every live tab. With
        /// `chatter`, every leader relays a frame each 500 ms, and every
        /// running tab that listens to it must hear it: a follower that the
        /// leader acknowledged is never left out.
        fn run(&mut self, ms: u64) {
            for _ in 0..ms / 100 {
                self.now += 100;
                for i in 0..self.tabs.len() {
                    self.input(i, TabInput::Tick);
                }
                if self.chatter && self.now % 500 == 0 {
                    for l in self.leaders() {
                        let listeners: Vec<usize> = (0..self.tabs.len())
                            .filter(|&f| self.alive[f] && !self.frozen[f] && self.tabs[f].listening())
                            .filter(|&f| self.tabs[f].leader.as_ref().is_some_and(|(t, _)| *t == self.tabs[l].tab))
                            .filter(|&f| self.tabs[f].generation() == self.tabs[l].generation())
                            .collect();
                        let heard = self.relay(l, "chatter");
                        for f in listeners {
                            assert!(heard.contains(&f), "tab {f} listens to {l} but did not hear it at {}", self.now);
                        }
                    }
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

        /// The leader forwards a frame (if a tab listens); returns which
        /// tabs delivered it.
        fn relay(&mut self, leader: usize, json: &str) -> Vec<usize> {
            let before: Vec<usize> = self.delivered.iter().map(Vec::len).collect();
            let Some(env) = self.tabs[leader].forward(json.into()) else {
                return Vec::new();
            };
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

    /// The leader resigns and the lock passes to the next tab in its queue,
    /// which is frozen: the visible follower takes over after a lease.
    /// (Found by the session simulator, docs/simulation.md: every tab
    /// followed for good.)
    #[test]
    fn a_lock_passed_to_a_frozen_tab_is_taken_by_a_visible_follower() {
        let mut b = Browser::new(3, true);
        for i in 0..3 {
            b.input(i, TabInput::Start { visible: true });
        }
        b.run(1000);
        let leader = b.leaders()[0];
        let next = b.lock_queue[0];
        let other = (0..3).find(|&i| i != leader && i != next).unwrap();
        b.freeze(next);
        b.close(leader);
        b.run(5000);
        assert_eq!(b.lock_holder, Some(other), "stolen from the frozen tab");
        assert_eq!(b.leaders(), vec![other]);
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
        let hb = Envelope { tab: "lead".into(), gen: 3, body: Body::Heartbeat { visible: true, relay: 0, ack: None } }.to_json();
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
        let hb = |gen| Envelope { tab: "other".into(), gen, body: Body::Heartbeat { visible: true, relay: 0, ack: None } }.to_json();
        let ev = |gen, json: &str| Envelope { tab: "old".into(), gen, body: Body::Events { sse: json.into() } }.to_json();
        e.handle(10, TabInput::Channel(hb(5)));
        assert!(e.handle(20, TabInput::Channel(ev(4, "stale"))).is_empty());
        let out = e.handle(30, TabInput::Channel(ev(5, "fresh")));
        assert!(out.contains(&TabAction::Deliver { sse: "fresh".into() }), "{out:?}");
    }

    #[test]
    fn envelope_bodies_keep_their_wire_shape() {
        let env = |body| Envelope { tab: "t".into(), gen: 7, body };
        for (body, json) in [
            (Body::Heartbeat { visible: true, relay: 0, ack: None }, r#"{"kind":"heartbeat","visible":true,"relay":0}"#),
            (
                Body::Heartbeat { visible: false, relay: 3, ack: Some("u".into()) },
                r#"{"kind":"heartbeat","visible":false,"relay":3,"ack":"u"}"#,
            ),
            (Body::Presence { visible: false, hello: true }, r#"{"kind":"presence","visible":false,"hello":true}"#),
            (Body::Resign { next: None }, r#"{"kind":"resign"}"#),
            (Body::Resign { next: Some("u".into()) }, r#"{"kind":"resign","next":"u"}"#),
            (Body::Events { sse: "event: message\ndata: {}\n\n".into() }, r#"{"kind":"events","sse":"event: message\ndata: {}\n\n"}"#),
        ] {
            let text = env(body.clone()).to_json();
            assert_eq!(text, format!(r#"{{"sdk":"valet-sdk","v":2,"tab":"t","gen":7,"body":{json}}}"#));
            assert_eq!(parse_envelope(&text).unwrap().body, body);
        }
        assert!(
            parse_envelope(r#"{"sdk":"valet-sdk","v":2,"tab":"t","gen":7,"body":{"kind":"heartbeat","relay":0}}"#).is_none(),
            "a heartbeat needs visible"
        );
        assert!(
            parse_envelope(r#"{"sdk":"valet-sdk","v":2,"tab":"t","gen":7,"body":{"kind":"presence","visible":true}}"#).is_none(),
            "a presence needs hello"
        );
        assert!(
            parse_envelope(r#"{"sdk":"valet-sdk","v":1,"tab":"t","gen":7,"body":{"kind":"resign"}}"#).is_none(),
            "another version is not ours"
        );
    }

    #[test]
    fn garbage_on_the_channel_is_ignored_and_counted() {
        let mut e = Election::new(ElectionConfig::default(), "me");
        e.handle(0, TabInput::Start { visible: true });
        for raw in [
            "",
            "42",
            "{\"hello\":1}",
            "{\"sdk\":\"valet-sdk\",\"v\":0,\"tab\":\"x\",\"gen\":1,\"body\":{\"kind\":\"resign\"}}",
            "\u{0}\u{1}",
        ] {
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

    /// Without Web Locks, a resigning leader names one heir: only it claims,
    /// the others follow it (the channel delivers in order, not at once:
    /// here every tab has the resignation before any hears the heir). An
    /// heir that never leads is replaced after a lease.
    #[test]
    fn without_locks_a_resigning_leader_names_the_one_tab_that_claims() {
        let cfg = ElectionConfig { locks: false, ..Default::default() };
        let tabs = ["a", "b", "c"];
        let set_up = |hidden_c: bool| {
            let mut e: Vec<Election> = tabs.iter().map(|t| Election::new(cfg.clone(), *t)).collect();
            let mut t = 0;
            e[0].handle(t, TabInput::Start { visible: true });
            t += 300;
            assert!(e[0].handle(t, TabInput::Tick).iter().any(|a| matches!(a, TabAction::Lead { .. })));
            let beat = Envelope { tab: "a".into(), gen: e[0].generation(), body: Body::Heartbeat { visible: true, relay: 0, ack: None } };
            for (i, visible) in [(1, true), (2, !hidden_c)] {
                e[i].handle(t, TabInput::Start { visible });
                e[i].handle(t, TabInput::Channel(beat.to_json()));
                assert_eq!(e[i].role(), Some(Role::Follower));
                t += 10;
                let hello = Envelope { tab: tabs[i].into(), gen: e[0].generation(), body: Body::Presence { visible, hello: true } };
                e[0].handle(t, TabInput::Channel(hello.to_json()));
            }
            (e, t)
        };
        let resignation = |out: Vec<TabAction>| {
            out.into_iter()
                .find_map(|a| match a {
                    TabAction::Broadcast(env) if matches!(env.body, Body::Resign { .. }) => Some(env),
                    _ => None,
                })
                .expect("a resignation")
        };
        let leads = |out: &[TabAction]| out.iter().any(|a| matches!(a, TabAction::Lead { .. }));

        // The heir is the last tab heard (c), or the visible one (b) when c is hidden.
        for (hidden_c, heir, other) in [(false, 2, 1), (true, 1, 2)] {
            let (mut e, t) = set_up(hidden_c);
            let resign = resignation(e[0].handle(t + 5, TabInput::PageHide));
            assert_eq!(resign.body, Body::Resign { next: Some(tabs[heir].into()) });
            let heir_out = e[heir].handle(t + 6, TabInput::Channel(resign.to_json()));
            let other_out = e[other].handle(t + 6, TabInput::Channel(resign.to_json()));
            assert!(leads(&heir_out), "the heir claims at once");
            assert!(!leads(&other_out), "the other waits: {other_out:?}");
            let beat = heir_out.into_iter().find_map(|a| match a {
                TabAction::Broadcast(env) if matches!(env.body, Body::Heartbeat { .. }) => Some(env),
                _ => None,
            });
            e[other].handle(t + 7, TabInput::Channel(beat.expect("the heir's heartbeat").to_json()));
            assert_eq!(e[other].role(), Some(Role::Follower));
            for ms in (0..5000).step_by(100) {
                assert!(!leads(&e[other].handle(t + 8 + ms, TabInput::Tick)), "a heard heir is not contested");
                if ms % 1000 == 0 {
                    let beat = Envelope { tab: tabs[heir].into(), gen: e[heir].generation(), body: Body::Heartbeat { visible: true, relay: 0, ack: None } };
                    e[other].handle(t + 8 + ms, TabInput::Channel(beat.to_json()));
                }
            }
        }

        // The heir closed in the same instant: the other claims after a lease.
        let (mut e, t) = set_up(false);
        let resign = resignation(e[0].handle(t + 5, TabInput::Close));
        assert!(!leads(&e[1].handle(t + 6, TabInput::Channel(resign.to_json()))));
        let claimed_at = (1..50).map(|k| t + 6 + k * 100).find(|&at| leads(&e[1].handle(at, TabInput::Tick)));
        let waited = claimed_at.expect("someone leads") - (t + 6);
        assert!((cfg.lease_ms..cfg.lease_ms + 200).contains(&waited), "after a lease: {waited} ms");

        // A resignation that names nobody (an older tab's): every visible tab claims, as before.
        let (mut e, t) = set_up(false);
        let old = Envelope { tab: "a".into(), gen: e[0].generation(), body: Body::Resign { next: None } };
        assert!(leads(&e[1].handle(t + 6, TabInput::Channel(old.to_json()))));
        assert!(leads(&e[2].handle(t + 6, TabInput::Channel(old.to_json()))));
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
        assert!(b.tabs[follower].forward("{}".into()).is_none(), "followers do not forward");
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
        let hb = |tab: &str, gen| Envelope { tab: tab.into(), gen, body: Body::Heartbeat { visible: true, relay: 0, ack: None } }.to_json();
        let msg = |tab: &str, gen| Envelope { tab: tab.into(), gen, body: Body::Events { sse: "m".into() } }.to_json();
        let resign = |tab: &str, gen| Envelope { tab: tab.into(), gen, body: Body::Resign { next: None } }.to_json();
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
        assert!(out.contains(&TabAction::Deliver { sse: "m".into() }), "no live leader: the new one is heard: {out:?}");
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

    /// A lone leader relays nothing; a tab that joins is acknowledged (one
    /// history fetch) and hears everything after; when it closes, the
    /// leader stops relaying within a few heartbeats.
    #[test]
    fn the_leader_relays_only_while_a_tab_listens() {
        for locks in [true, false] {
            let mut b = Browser::new(1, locks);
            b.input(0, TabInput::Start { visible: true });
            b.run(1000);
            assert_eq!(b.leaders(), vec![0]);
            assert!(!b.tabs[0].relaying(), "locks={locks}");
            assert!(b.tabs[0].forward("m".into()).is_none(), "nobody listens: nothing to post");
            let late = b.add_tab(locks);
            b.input(late, TabInput::Start { visible: true });
            assert!(b.tabs[0].relaying(), "a hello turns relaying on at once");
            assert_eq!(b.listened[late], 1, "acknowledged: one history fetch");
            assert!(b.tabs[late].listening());
            assert_eq!(b.relay(0, "m1"), vec![late]);
            b.run(10_000);
            assert_eq!(b.listened[late], 1, "answering every heartbeat keeps it listening");
            assert_eq!(b.relay(0, "m2"), vec![late]);
            b.close(late);
            b.run(5_000);
            assert!(!b.tabs[0].relaying(), "locks={locks}: nobody answered for {QUIET_BEATS} heartbeats");
        }
    }

    /// A follower frozen long enough for the leader to stop relaying misses
    /// frames; when it thaws it says hello again and fetches history again,
    /// so the gap is filled.
    #[test]
    fn a_follower_left_out_while_frozen_fetches_history_again() {
        let mut b = Browser::new(2, true);
        b.chatter = true;
        b.input(0, TabInput::Start { visible: true });
        b.run(500);
        b.input(1, TabInput::Start { visible: true });
        b.run(1000);
        assert_eq!(b.leaders(), vec![0]);
        assert_eq!(b.listened[1], 1);
        b.freeze(1);
        b.run(6000);
        assert!(!b.tabs[0].relaying(), "a frozen tab answers nothing");
        assert!(b.relay(0, "missed").is_empty());
        b.thaw(1);
        b.run(1000);
        assert_eq!(b.listened[1], 2, "a second history fetch brings what it missed");
        assert_eq!(b.relay(0, "after"), vec![1]);
        // Frozen for less than that: relaying never stopped, nothing to fetch.
        b.freeze(1);
        b.run(1500);
        b.thaw(1);
        b.run(1000);
        assert_eq!(b.listened[1], 2);
    }

    /// Each new leader is greeted anew: followers fetch history once it has
    /// acknowledged them, so nothing between two leaders is lost.
    #[test]
    fn followers_say_hello_to_each_new_leader() {
        let mut b = Browser::new(3, true);
        b.chatter = true;
        for i in 0..3 {
            b.input(i, TabInput::Start { visible: true });
        }
        b.run(1000);
        let first = b.leaders()[0];
        let before = b.listened.clone();
        b.close(first);
        b.run(2000);
        let second = b.leaders()[0];
        let last = (0..3).find(|&i| i != first && i != second).unwrap();
        assert_eq!(b.listened[last], before[last] + 1, "acknowledged by the new leader");
        assert_eq!(b.relay(second, "m"), vec![last]);
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
                b.chatter = true;
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
