//! The simulator in `make test`: 10,000 sessions (seeds 1..=10,000, or
//! `VALET_SIM_SESSIONS` from `VALET_SIM_FIRST`), each of 1–5 tabs and at
//! least 20 faults, with no invariant broken. A failure names its seeds;
//! `VALET_SIM_SEED=<seed> cargo run --profile sim -p valet-sim` replays one
//! with its trace.

use valet_sim::report::run_many;
use valet_sim::Options;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn ten_thousand_simulated_sessions_break_no_invariant() {
    let (first, n) = (env("VALET_SIM_FIRST", 1), env("VALET_SIM_SESSIONS", 10_000));
    let started = std::time::Instant::now();
    let batch = run_many(first, n, &Options::default());
    let report = batch.summary(started.elapsed().as_secs_f64());
    println!("{report}");
    assert_eq!(batch.sessions, n);
    assert!(batch.fault_count() >= 20 * n, "at least 20 faults a session");
    assert!(batch.messages > 0 && batch.sends_resolved > 0, "the sessions did something");
    assert!(batch.failed.is_empty(), "{report}");
}

/// One seed runs the same way twice (a replay shows what failed).
#[test]
fn a_seed_replays_exactly() {
    let opts = Options { trace: true, ..Options::default() };
    let (a, b) = (valet_sim::run(7, &opts), valet_sim::run(7, &opts));
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 100);
}
