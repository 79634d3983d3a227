//! Running many sessions on every core, and what to print about them.

use crate::{run, Options, Outcome};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a batch of sessions did.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sessions run.
    pub sessions: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Messages stored.
    pub messages: u64,
    /// Messages delivered (over all pages).
    pub delivered: u64,
    /// Sends resolved.
    pub sends_resolved: u64,
    /// Sends a later page restored and saw stored.
    pub sends_restored: u64,
    /// Messages delivered from a local history.
    pub from_cache: u64,
    /// Streams refused at the server's cap.
    pub cap_refusals: u64,
    /// Tabs at the start, summed.
    pub tabs: u64,
    /// Convergence times after the heal, ms.
    pub convergence: Vec<u64>,
    /// The slowest convergence: ms and seed.
    pub slowest: Option<(u64, u64)>,
    /// Sessions that broke an invariant: seed and what.
    pub failed: Vec<(u64, Vec<String>)>,
}

impl Batch {
    fn add(&mut self, o: &Outcome) {
        self.sessions += 1;
        for (k, n) in &o.faults {
            *self.faults.entry(k).or_default() += u64::from(*n);
        }
        self.messages += o.messages;
        self.delivered += o.delivered;
        self.sends_resolved += o.sends_resolved;
        self.sends_restored += o.sends_restored;
        self.from_cache += o.from_cache;
        self.cap_refusals += o.cap_refusals;
        self.tabs += o.tabs as u64;
        if let Some(ms) = o.convergence_ms {
            self.convergence.push(ms);
            if self.slowest.is_none_or(|(worst, _)| ms > worst) {
                self.slowest = Some((ms, o.seed));
            }
        }
        if !o.violations.is_empty() {
            self.failed.push((o.seed, o.violations.clone()));
        }
    }

    /// Total faults.
    pub fn fault_count(&self) -> u64 {
        self.faults.values().sum()
    }

    /// A report for people.
    pub fn summary(&self, secs: f64) -> String {
        let mut conv = self.convergence.clone();
        conv.sort_unstable();
        let pct = |p: f64| if conv.is_empty() { 0 } else { conv[((conv.len() - 1) as f64 * p).round() as usize] };
        let mut out = format!(
            "{} simulated sessions ({:.1} tabs each at the start) in {:.1} s: {} faults, {} messages stored, {} deliveries ({} from a local history), {} sends resolved ({} restored by a later page), {} sessions with violations\n",
            self.sessions,
            self.tabs as f64 / self.sessions.max(1) as f64,
            secs,
            self.fault_count(),
            self.messages,
            self.delivered,
            self.from_cache,
            self.sends_resolved,
            self.sends_restored,
            self.failed.len()
        );
        out += &format!(
            "convergence after the heal (simulated): p50 {:.1} s, p90 {:.1} s, p99 {:.1} s, max {:.1} s (seed {})\nstreams refused at the server's cap (each waits 30 s): {}\nfaults by kind:\n",
            pct(0.5) as f64 / 1000.0,
            pct(0.9) as f64 / 1000.0,
            pct(0.99) as f64 / 1000.0,
            conv.last().copied().unwrap_or(0) as f64 / 1000.0,
            self.slowest.map_or(0, |s| s.1),
            self.cap_refusals
        );
        let mut kinds: Vec<_> = self.faults.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        for (k, n) in kinds {
            out += &format!("  {k:<22} {n}\n");
        }
        for (seed, v) in self.failed.iter().take(10) {
            out += &format!("FAILED seed {seed} (replay: VALET_SIM_SEED={seed} cargo run --profile sim -p valet-sim):\n");
            for line in v.iter().take(5) {
                out += &format!("  {line}\n");
            }
        }
        out
    }
}

/// One session's result, for people.
pub fn one(o: &Outcome) -> String {
    let mut out = format!(
        "seed {}: {} tabs, {} faults, {} messages, {} deliveries, {} sends resolved, convergence {}",
        o.seed,
        o.tabs,
        o.faults.iter().map(|f| f.1).sum::<u32>(),
        o.messages,
        o.delivered,
        o.sends_resolved,
        o.convergence_ms.map_or("never".into(), |ms| format!("{ms} ms after the heal"))
    );
    for v in &o.violations {
        out += &format!("\nVIOLATION: {v}");
    }
    out
}

/// Runs the session of `seed`, a panic in it reported as a violation.
pub fn run_caught(seed: u64, opts: &Options) -> Outcome {
    match std::panic::catch_unwind(|| run(seed, opts)) {
        Ok(o) => o,
        Err(e) => {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            Outcome { seed, violations: vec![format!("panic: {msg}")], ..Default::default() }
        }
    }
}

/// Runs seeds `first..first + n` on every core.
pub fn run_many(first: u64, n: u64, opts: &Options) -> Batch {
    let next = AtomicU64::new(first);
    let total = Mutex::new(Batch::default());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Batch::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + n {
                        break;
                    }
                    mine.add(&run_caught(seed, opts));
                }
                let mut t = total.lock().unwrap();
                t.sessions += mine.sessions;
                for (k, v) in mine.faults {
                    *t.faults.entry(k).or_default() += v;
                }
                t.messages += mine.messages;
                t.delivered += mine.delivered;
                t.sends_resolved += mine.sends_resolved;
                t.sends_restored += mine.sends_restored;
                t.from_cache += mine.from_cache;
                t.cap_refusals += mine.cap_refusals;
                t.tabs += mine.tabs;
                t.convergence.extend(mine.convergence);
                if let Some((ms, seed)) = mine.slowest {
                    if t.slowest.is_none_or(|(worst, _)| ms > worst) {
                        t.slowest = Some((ms, seed));
                    }
                }
                t.failed.extend(mine.failed);
            });
        }
    });
    let _ = std::panic::take_hook();
    let mut b = total.into_inner().unwrap();
    b.failed.sort_by_key(|f| f.0);
    b
}
