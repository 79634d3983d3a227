//! Reconnect delays: jittered exponential backoff, and a jittered
//! "immediate" delay.
//!
//! Decisions:
//! - Base 250 ms doubling to a 30 s cap (the JS SDK's numbers), with "equal
//!   jitter": a delay is uniform in [d/2, d], so clients that failed together
//!   spread out but never retry sooner than half the nominal delay.
//! - "Immediate" reconnects (after a graceful `closed`) are uniform in
//!   [0, immediate_jitter_ms): a server `shutdown` does not bring every client
//!   back in the same millisecond (the JS SDK's defect 9).
//! - Randomness comes from [`Rng`], seeded by the caller: deterministic tests.

#[allow(unused_imports)]
use crate::prelude::*;

/// A small deterministic PRNG (SplitMix64). Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random (version 4 format) UUID string, for idempotency keys.
    pub fn uuid_v4(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let bytes = ((u128::from(a) << 64) | u128::from(b)).to_be_bytes();
        let mut hex = String::with_capacity(36);
        for (i, byte) in bytes.iter().enumerate() {
            let byte = match i {
                6 => (byte & 0x0f) | 0x40,
                8 => (byte & 0x3f) | 0x80,
                _ => *byte,
            };
            if matches!(i, 4 | 6 | 8 | 10) {
                hex.push('-');
            }
            crate::text::push_hex(&mut hex, byte, false);
        }
        hex
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Backoff parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// First delay, in ms.
    pub base_ms: u64,
    /// Largest delay, in ms.
    pub cap_ms: u64,
    /// Upper bound of an "immediate" reconnect's delay, in ms.
    pub immediate_jitter_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { base_ms: 250, cap_ms: 30_000, immediate_jitter_ms: 500 }
    }
}

/// Backoff state: how many failures in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    /// Fresh state.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, failures: 0 }
    }

    /// The delay before the next attempt after a failure; counts the failure.
    pub fn next_delay(&mut self, rng: &mut Rng) -> u64 {
        let nominal = self.nominal();
        self.failures = self.failures.saturating_add(1);
        let half = nominal / 2;
        half + (rng.unit() * (nominal - half + 1) as f64) as u64
    }

    /// The un-jittered delay the next failure would get.
    pub fn nominal(&self) -> u64 {
        let exp = self.failures.min(20);
        self.config.base_ms.saturating_mul(1u64 << exp).min(self.config.cap_ms)
    }

    /// An "immediate" reconnect's delay (does not count as a failure).
    pub fn immediate(&self, rng: &mut Rng) -> u64 {
        (rng.unit() * self.config.immediate_jitter_ms as f64) as u64
    }

    /// Success: start over.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_equal_jitter() {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut rng = Rng::new(7);
        let mut nominals = Vec::new();
        for _ in 0..10 {
            let n = b.nominal();
            let d = b.next_delay(&mut rng);
            assert!(d >= n / 2 && d <= n, "{d} in [{}, {n}]", n / 2);
            nominals.push(n);
        }
        assert_eq!(nominals, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        b.reset();
        assert_eq!(b.nominal(), 250);
    }

    #[test]
    fn jitter_spreads_clients_apart() {
        let b = Backoff::new(BackoffConfig::default());
        let delays: std::collections::HashSet<u64> = (0..100).map(|s| b.immediate(&mut Rng::new(s))).collect();
        assert!(delays.len() > 50, "100 clients get many different delays");
        assert!(delays.iter().all(|d| *d < 500));
    }

    #[test]
    fn uuids_are_v4_shaped_and_distinct() {
        let mut r = Rng::new(9);
        let (a, b) = (r.uuid_v4(), r.uuid_v4());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn rng_is_deterministic_per_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert!((0..1000)
            .map({
                let mut r = Rng::new(3);
                move |_| r.unit()
            })
            .all(|u| (0.0..1.0).contains(&u)));
    }
}
