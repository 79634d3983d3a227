//! `valet-sim`: runs many simulated sessions and prints what they did.
//!
//! ```text
//! valet-sim [SESSIONS] [FIRST_SEED]     # a batch, on every core
//! VALET_SIM_SEED=123 valet-sim          # one seed, traced step by step
//! ```

use std::time::Instant;
use valet_sim::{run, Options};

fn main() {
    let opts = Options::default();
    if let Some(seed) = std::env::var("VALET_SIM_SEED").ok().and_then(|s| s.parse::<u64>().ok()) {
        let out = run(seed, &Options { trace: true, ..opts });
        for line in &out.trace {
            println!("{line}");
        }
        println!("{}", valet_sim::report::one(&out));
        std::process::exit(if out.violations.is_empty() { 0 } else { 1 });
    }
    let mut args = std::env::args().skip(1);
    let sessions: u64 = args.next().and_then(|s| s.replace('_', "").parse().ok()).unwrap_or(100_000);
    let first: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let started = Instant::now();
    let batch = valet_sim::report::run_many(first, sessions, &opts);
    let secs = started.elapsed().as_secs_f64();
    println!("{}", batch.summary(secs));
    std::process::exit(if batch.failed.is_empty() { 0 } else { 1 });
}
