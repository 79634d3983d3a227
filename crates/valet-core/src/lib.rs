//! `valet-core`: the Valet v2 protocol as data and decisions, with no I/O.
//!
//! Everything here is plain Rust, testable natively and usable on wasm32:
//! no web-sys, no clocks (time is an input), no randomness of its own.
//! The SDK glue (`valet-wasm`) and the reference server (`valet-server`)
//! share these types, so both speak one contract.
#![deny(missing_docs)]

pub mod backoff;
pub mod client;
pub mod convo;
pub mod delivery;
pub mod election;
pub mod error;
pub mod events;
pub mod json;
pub mod outbox;
pub mod send;
pub mod sse;
pub mod token;
pub mod wire;
