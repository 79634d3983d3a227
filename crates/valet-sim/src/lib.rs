//! A deterministic simulator for `valet-core`'s sessions: 1–5 tabs of one
//! browser, each running a [`Session`](valet_core::session::Session) for
//! one convo, against models of the Valet server ([`server`]) and of the
//! browser ([`browser`]: BroadcastChannel, Web Locks, timers,
//! `sessionStorage`, `fetchJwt`, `online`/`offline`), all driven by one
//! seeded clock and event queue. Faults ([`Fault`]) are drawn from the seed;
//! invariants are checked at every step and at the end ([`check`]).
//!
//! One seed is one simulated session: [`run`] replays it exactly, and with
//! [`Options::trace`] prints what happened, step by step.
//!
//! A session goes: tabs open; at least 20 faults over the next minutes; the
//! *heal* (the network and the server come back, tabs are shown, most
//! frozen tabs thaw); then it runs until every live tab has converged (all
//! stored messages delivered once, in order; every send settled; one
//! stream), and reports how long that took; finally every tab closes and no
//! stream may be left.

/// A trace line, formatted only when the run is traced.
macro_rules! trace {
    ($w:expr, $($arg:tt)*) => {
        if $w.trace_enabled() {
            let line = format!($($arg)*);
            $w.push_trace(line);
        }
    };
}

pub mod browser;
pub mod check;
pub mod report;
pub mod server;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use browser::{Page, Tab};
pub use server::Server;

use valet_core::action::Timer;
use valet_core::session::SessionInput;
use valet_core::token::FetchFailure;

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep a readable trace of every step (for a replay).
    pub trace: bool,
    /// Faults per session, at least.
    pub min_faults: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { trace: false, min_faults: 20 }
    }
}

/// What a session did, and what went wrong.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Broken invariants (empty: the session passed).
    pub violations: Vec<String>,
    /// Faults injected, by kind.
    pub faults: Vec<(&'static str, u32)>,
    /// Messages the server stored.
    pub messages: u64,
    /// Messages delivered to handlers, over all pages.
    pub delivered: u64,
    /// Sends that resolved.
    pub sends_resolved: u64,
    /// Sends a later page restored and saw stored.
    pub sends_restored: u64,
    /// Messages delivered from a local history.
    pub from_cache: u64,
    /// Streams the server refused at its cap (each one waits `Retry-After: 30`).
    pub cap_refusals: u64,
    /// Simulated ms from the heal to convergence (`None`: never).
    pub convergence_ms: Option<u64>,
    /// Tabs at the start.
    pub tabs: usize,
    /// The trace, with [`Options::trace`].
    pub trace: Vec<String>,
}

/// The session's seeded generator: the core's SplitMix64
/// ([`valet_core::backoff::Rng`]), with the draws the simulator needs.
#[derive(Debug, Clone)]
pub struct Rng(valet_core::backoff::Rng);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(valet_core::backoff::Rng::new(seed ^ 0x5DEE_CE66_D1CE_5EED))
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// In `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// With probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }
    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next_u64() as usize % items.len()]
    }
}

/// The wall clock at the start of every session (Unix ms): tokens' `exp`
/// and election generations are read against it.
pub const EPOCH_MS: u64 = 1_800_000_000_000;

/// A fault, as drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The agent stores this many messages at once.
    Burst(u32),
    /// A tab sends a message.
    Send,
    /// The server process is killed (`kill -9`) and restarts after a while.
    Kill,
    /// The server closes a stream with a `closed` frame of this reason.
    Closed(&'static str),
    /// A stream's connection resets.
    Reset,
    /// A stream goes silent (no bytes, no pings).
    Stall,
    /// The next requests of an endpoint are refused with this status.
    Refuse(server::Endpoint, u16),
    /// The next send is stored but its answer is lost.
    LostAnswer,
    /// The next history answers are read at once and sent seconds later.
    SlowHistory,
    /// The browser goes offline for a while.
    Offline,
    /// A tab is frozen for a while (or until the end).
    Freeze,
    /// A tab is hidden.
    Hide,
    /// A hidden tab is shown.
    Show,
    /// A tab reloads.
    Reload,
    /// A tab closes.
    CloseTab,
    /// A tab's renderer crashes.
    Crash,
    /// A new tab opens the convo.
    NewTab,
    /// Another script posts garbage on the tab channel.
    Garbage,
    /// A malformed frame on a stream.
    Malformed,
    /// A message frame sent again.
    Duplicate,
    /// The next `fetchJwt` calls fail this way.
    Jwt(browser::JwtFault),
    /// The server stops taking every token issued so far.
    Revoke,
}

impl Fault {
    /// The kind's name, for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Burst(_) => "burst",
            Fault::Send => "send",
            Fault::Kill => "server kill -9",
            Fault::Closed(r) => match *r {
                "server_cap" => "closed server_cap",
                "shutdown" => "closed shutdown",
                "auth_expiring" => "closed auth_expiring",
                _ => "closed stalled",
            },
            Fault::Reset => "stream reset",
            Fault::Stall => "stream stall",
            Fault::Refuse(_, s) => match s {
                401 => "refuse 401",
                404 => "refuse 404",
                408 => "refuse 408",
                429 => "refuse 429",
                _ => "refuse 5xx",
            },
            Fault::LostAnswer => "lost answer",
            Fault::SlowHistory => "slow history",
            Fault::Offline => "offline",
            Fault::Freeze => "freeze",
            Fault::Hide => "hide",
            Fault::Show => "show",
            Fault::Reload => "reload",
            Fault::CloseTab => "close tab",
            Fault::Crash => "crash",
            Fault::NewTab => "new tab",
            Fault::Garbage => "channel garbage",
            Fault::Malformed => "malformed frame",
            Fault::Duplicate => "duplicate frame",
            Fault::Jwt(f) => f.kind(),
            Fault::Revoke => "token revoked",
        }
    }

    fn draw(rng: &mut Rng) -> Fault {
        use server::Endpoint::*;
        match rng.range(0, 99) {
            0..=13 => Fault::Burst(if rng.chance(0.05) { rng.range(50, 300) as u32 } else { rng.range(1, 8) as u32 }),
            14..=25 => Fault::Send,
            26..=28 => Fault::Kill,
            29..=33 => Fault::Closed(rng.pick(&["server_cap", "shutdown", "auth_expiring", "stalled"])),
            34..=37 => Fault::Reset,
            38..=40 => Fault::Stall,
            41..=48 => {
                let ep = rng.pick(&[Stream, Reconcile, Post]);
                let status = match ep {
                    Post => rng.pick(&[401, 404, 408, 429, 500, 503]),
                    _ => rng.pick(&[401, 408, 429, 500, 502, 503]),
                };
                Fault::Refuse(ep, status)
            }
            49 => Fault::LostAnswer,
            50 => Fault::SlowHistory,
            51..=55 => Fault::Offline,
            56..=61 => Fault::Freeze,
            62..=65 => Fault::Hide,
            66..=69 => Fault::Show,
            70..=73 => Fault::Reload,
            74..=75 => Fault::CloseTab,
            76..=77 => Fault::Crash,
            78..=81 => Fault::NewTab,
            82..=83 => Fault::Garbage,
            84..=86 => Fault::Malformed,
            87..=89 => Fault::Duplicate,
            90..=97 => Fault::Jwt(rng.pick(&[browser::JwtFault::Throw, browser::JwtFault::Hang, browser::JwtFault::Slow, browser::JwtFault::Junk])),
            _ => Fault::Revoke,
        }
    }
}

/// What the queue holds.
#[derive(Debug, Clone)]
pub enum Ev {
    /// An input for page `pid` (dropped if that page is gone; queued while
    /// its tab is frozen).
    Page {
        /// The page.
        pid: u64,
        /// What happens to it.
        what: PageEv,
    },
    /// Something the server does.
    Server(server::ServerEv),
    /// The next fault of the schedule.
    Fault(Fault),
    /// The server process starts again.
    Restart,
    /// The browser is back online.
    Online,
    /// Tab `slot` thaws.
    Thaw(usize),
    /// Tab `slot` loads a page (a reload's second half, or a new tab).
    Load(usize),
    /// The faults are over.
    Heal,
}

/// What happens to a page.
#[derive(Debug, Clone)]
pub enum PageEv {
    /// A session input.
    Input(SessionInput),
    /// Timer `Timer` of this arming fired.
    Timer(Timer, u64),
    /// The election timer of this arming fired.
    TabTimer(u64),
    /// `fetchJwt` settled.
    Jwt(Result<String, FetchFailure>),
    /// An input for the page's token source (a told token, a lock grant).
    Token(valet_core::token_source::TokenInput),
    /// Token timer of this arming fired.
    TokenTimer(valet_core::token_source::TokenTimer, u64),
}

#[derive(Debug)]
struct Item {
    at: u64,
    n: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.n) == (o.at, o.n)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.n).cmp(&(o.at, o.n))
    }
}

/// The simulated world of one session.
pub struct World {
    /// Simulated wall clock (Unix ms, shared by every tab).
    pub now: u64,
    /// The seed's generator.
    pub rng: Rng,
    queue: BinaryHeap<Reverse<Item>>,
    n: u64,
    /// The server.
    pub server: Server,
    /// The browser's tabs (slots; a closed tab's slot stays, empty).
    pub tabs: Vec<Tab>,
    /// The browser's shared parts: channel, locks, network.
    pub browser: browser::Browser,
    /// Broken invariants.
    pub violations: Vec<String>,
    faults: Vec<(&'static str, u32)>,
    healed_at: Option<u64>,
    converged_at: Option<u64>,
    trace_all: bool,
    trace: Vec<String>,
    /// Counters.
    pub delivered: u64,
    /// Sends resolved.
    pub sends_resolved: u64,
    /// Sends a later page restored and saw stored.
    pub sends_restored: u64,
    /// Messages delivered from a local history.
    pub from_cache: u64,
    /// Streams refused at the cap.
    pub cap_refusals: u64,
    /// Sends rejected: key, `maybe_stored`, which.
    pub rejected: Vec<(String, bool, String)>,
    /// Every text an app sent (each is unique).
    pub sent_texts: Vec<String>,
    /// Sends a page left unsettled when it went (tab, text): a later page
    /// of that tab owes them, until stored or failed for good.
    pub carried: Vec<(usize, String)>,
}

/// How long after the heal a session may take to converge.
pub const CONVERGENCE_LIMIT_MS: u64 = 15 * 60_000;

impl World {
    fn new(seed: u64, opts: &Options) -> World {
        let mut rng = Rng::new(seed);
        let server = Server::new(&mut rng);
        let browser = browser::Browser::new(&mut rng);
        World {
            now: EPOCH_MS,
            rng,
            queue: BinaryHeap::new(),
            n: 0,
            server,
            tabs: Vec::new(),
            browser,
            violations: Vec::new(),
            faults: Vec::new(),
            healed_at: None,
            converged_at: None,
            trace_all: opts.trace,
            trace: Default::default(),
            delivered: 0,
            sends_resolved: 0,
            sends_restored: 0,
            cap_refusals: 0,
            from_cache: 0,
            rejected: Vec::new(),
            sent_texts: Vec::new(),
            carried: Vec::new(),
        }
    }

    /// Queues `ev` to happen `delay_ms` from now.
    pub fn at(&mut self, delay_ms: u64, ev: Ev) {
        self.n += 1;
        self.queue.push(Reverse(Item { at: self.now + delay_ms, n: self.n, ev }));
    }

    /// Records a trace line, stamped with the simulated time.
    pub fn push_trace(&mut self, line: String) {
        let t = self.now - EPOCH_MS;
        self.trace.push(format!("{:>6}.{:03} {}", t / 1000, t % 1000, line));
    }

    /// Whether every step is traced (formatting inputs costs time).
    pub fn trace_enabled(&self) -> bool {
        self.trace_all
    }

    /// Records a broken invariant (once per text).
    pub fn violation(&mut self, what: String) {
        trace!(self, "VIOLATION: {what}");
        if !self.violations.contains(&what) {
            self.violations.push(what);
        }
    }

    /// Whether the faults are over.
    pub fn healed(&self) -> bool {
        self.healed_at.is_some()
    }

    fn count_fault(&mut self, kind: &'static str) {
        match self.faults.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.faults.push((kind, 1)),
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Page { pid, what } => self.page_event(pid, what),
            Ev::Server(e) => self.server_event(e),
            Ev::Fault(f) => {
                self.count_fault(f.kind());
                trace!(self, "FAULT {f:?}");
                self.inject(f);
            }
            Ev::Restart => self.restart_server(),
            Ev::Online => self.set_online(true),
            Ev::Thaw(slot) => {
                if !self.tabs[slot].frozen_for_good {
                    self.thaw(slot)
                }
            }
            Ev::Load(slot) => self.load(slot),
            Ev::Heal => self.heal(),
        }
    }

    fn inject(&mut self, f: Fault) {
        match f {
            Fault::Burst(n) => {
                for _ in 0..n {
                    self.store_agent_message();
                }
            }
            Fault::Send => self.user_send(),
            Fault::Kill => {
                self.kill_server();
                let d = self.rng.range(300, 8000);
                self.at(d, Ev::Restart);
            }
            Fault::Closed(reason) => self.close_a_stream(reason),
            Fault::Reset => self.reset_a_stream(),
            Fault::Stall => self.stall_a_stream(),
            Fault::Refuse(ep, status) => {
                let n = self.rng.range(1, 3) as u32;
                self.server.refuse(ep, status, n);
            }
            Fault::LostAnswer => self.server.lose_next_answer += 1,
            Fault::SlowHistory => self.server.slow_history += self.rng.range(1, 4) as u32,
            Fault::Offline => {
                self.set_online(false);
                let d = self.rng.range(300, 12_000);
                self.at(d, Ev::Online);
            }
            Fault::Freeze => {
                if let Some(slot) = self.random_live_tab() {
                    self.freeze(slot);
                    let d = self.rng.range(500, 25_000);
                    self.at(d, Ev::Thaw(slot));
                }
            }
            Fault::Hide => {
                if let Some(slot) = self.random_live_tab() {
                    self.set_hidden(slot, true);
                }
            }
            Fault::Show => {
                if let Some(slot) = self.random_live_tab() {
                    self.set_hidden(slot, false);
                }
            }
            Fault::Reload => {
                if let Some(slot) = self.random_live_tab() {
                    let app_close = self.rng.chance(0.3);
                    self.unload(slot, if app_close { browser::Unload::AppClose } else { browser::Unload::PageHide });
                    let d = self.rng.range(30, 800);
                    self.at(d, Ev::Load(slot));
                }
            }
            Fault::CloseTab | Fault::Crash => {
                if let Some(slot) = self.random_live_tab() {
                    self.unload(slot, if f == Fault::Crash { browser::Unload::Crash } else { browser::Unload::PageHide });
                    if self.live_tabs() == 0 {
                        // Somebody opens it again later.
                        let d = self.rng.range(100, 5000);
                        let slot = self.new_tab_slot();
                        self.at(d, Ev::Load(slot));
                    }
                }
            }
            Fault::NewTab => {
                if self.live_tabs() < 5 {
                    let slot = self.new_tab_slot();
                    self.load(slot);
                }
            }
            Fault::Garbage => self.channel_garbage(),
            Fault::Malformed => self.malformed_frame(),
            Fault::Duplicate => self.duplicate_frame(),
            Fault::Jwt(kind) => {
                let n = self.rng.range(1, 4) as u32;
                self.browser.jwt_faults.push((kind, n));
            }
            Fault::Revoke => self.server.revoke(self.now),
        }
    }

    /// The faults are over: online, server up, refusals gone, tabs shown;
    /// most frozen tabs thaw (the rest stay frozen to the end, as a tab
    /// the browser froze and never resumed); at least one tab is live.
    fn heal(&mut self) {
        trace!(self, "HEAL");
        self.healed_at = Some(self.now);
        self.set_online(true);
        if !self.server.up {
            self.restart_server();
        }
        self.server.clear_faults();
        self.browser.jwt_faults.clear();
        for slot in 0..self.tabs.len() {
            if self.tabs[slot].page.is_none() {
                continue;
            }
            if self.tabs[slot].frozen {
                if self.rng.chance(0.75) {
                    self.thaw(slot);
                } else {
                    trace!(self, "tab {slot} stays frozen");
                    self.tabs[slot].frozen_for_good = true;
                }
            }
            if self.tabs[slot].hidden {
                self.set_hidden(slot, false);
            }
        }
        if self.live_tabs() == 0 || self.tabs.iter().all(|t| t.page.is_none() || t.frozen) {
            let slot = self.new_tab_slot();
            self.load(slot);
        }
        // A last message after the heal: what every live tab must get.
        self.store_agent_message();
    }

    /// Live tabs: open, with a page.
    pub fn live_tabs(&self) -> usize {
        self.tabs.iter().filter(|t| t.page.is_some()).count()
    }

    fn random_live_tab(&mut self) -> Option<usize> {
        let live: Vec<usize> = (0..self.tabs.len()).filter(|&s| self.tabs[s].page.is_some()).collect();
        if live.is_empty() {
            None
        } else {
            Some(live[self.rng.next_u64() as usize % live.len()])
        }
    }
}

/// Runs the session of `seed`.
pub fn run(seed: u64, opts: &Options) -> Outcome {
    let mut w = World::new(seed, opts);
    let tabs = w.rng.range(1, 5) as usize;
    trace!(
        w,
        "seed {seed}: {tabs} tabs; server seq={} ids={} after={}; locks={} skew={}ms jwt lifetime={}s latency={}ms",
        w.server.seq_on_wire,
        w.server.ids,
        w.server.after,
        w.browser.locks,
        w.server.skew_ms,
        w.browser.jwt_lifetime_s,
        w.browser.latency_ms
    );
    let together = w.rng.chance(0.3);
    for _ in 0..tabs {
        let slot = w.new_tab_slot();
        let d = if together { 0 } else { w.rng.range(0, 3000) };
        w.at(d, Ev::Load(slot));
    }
    let faults = opts.min_faults + w.rng.range(0, opts.min_faults as u64 / 2) as usize;
    let gap = w.rng.range(500, 5000);
    let mut t = 500;
    for _ in 0..faults {
        t += w.rng.range(0, 2 * gap);
        let f = Fault::draw(&mut w.rng);
        w.at(t, Ev::Fault(f));
    }
    w.at(t + 1000, Ev::Heal);
    while let Some(Reverse(item)) = w.queue.pop() {
        w.now = item.at;
        w.dispatch(item.ev);
        w.check_step();
        if let Some(healed) = w.healed_at {
            if w.converged_at.is_none() && w.converged() {
                w.converged_at = Some(w.now);
                let took = w.now - healed;
                trace!(w, "CONVERGED {took} ms after the heal");
                break;
            }
            if w.now > healed + CONVERGENCE_LIMIT_MS {
                break;
            }
        }
    }
    if w.converged_at.is_none() {
        let why = w.not_converged_why();
        w.violation(format!("no convergence within {} s of the heal: {why}", CONVERGENCE_LIMIT_MS / 1000));
    }
    w.finish();
    Outcome {
        seed,
        violations: w.violations.clone(),
        faults: w.faults.clone(),
        messages: w.server.messages.len() as u64,
        delivered: w.delivered,
        sends_resolved: w.sends_resolved,
        sends_restored: w.sends_restored,
        cap_refusals: w.cap_refusals,
        from_cache: w.from_cache,
        convergence_ms: w.converged_at.zip(w.healed_at).map(|(c, h)| c - h),
        tabs,
        trace: std::mem::take(&mut w.trace),
    }
}

impl World {
    /// Every tab closes (some crash); after that no stream is left, and the
    /// sends' outcomes are checked against the store.
    fn finish(&mut self) {
        for slot in 0..self.tabs.len() {
            if self.tabs[slot].page.is_some() {
                let how = if self.rng.chance(0.5) { browser::Unload::AppClose } else { browser::Unload::Crash };
                self.unload(slot, how);
            }
        }
        let end = self.now + 10_000;
        while let Some(Reverse(item)) = self.queue.pop() {
            if item.at > end {
                break;
            }
            self.now = item.at;
            // Nobody opens a tab or faults anything any more.
            if !matches!(item.ev, Ev::Load(_) | Ev::Fault(_) | Ev::Thaw(_) | Ev::Heal) {
                self.dispatch(item.ev);
            }
        }
        let left = self.server.streams.iter().filter(|s| s.alive).count();
        if left > 0 {
            self.violation(format!("{left} stream(s) still open 10 s after every tab closed"));
        }
        self.check_sends_at_end();
    }
}
