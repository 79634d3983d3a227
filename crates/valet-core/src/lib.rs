//! `valet-core`: the Valet v2 protocol as data and decisions, with no I/O.
//!
//! Everything here is plain Rust, testable natively and usable on wasm32:
//! no web-sys, no clocks (time is an input), no randomness of its own.
//! The SDK glue (`valet-wasm`) and the reference server (`valet-server`)
//! share these types, so both speak one contract.
//!
//! `no_std` (with `alloc`): the browser build links no `std`, so its panic
//! machinery stays out of the wasm. The `std` feature (on by default: the
//! server, the tests) links it, and `serde-reader` (on by default too)
//! reads JSON with serde_json.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

/// What `std`'s prelude would bring: the `alloc` types every module uses.
#[allow(unused_imports)]
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    // Not in the browser build: text is joined with `cat!` (see `text`).
    #[cfg(any(test, feature = "std"))]
    pub(crate) use alloc::format;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec;
    pub(crate) use alloc::vec::Vec;
}

pub mod action;
pub mod backoff;
pub mod cache;
pub mod client;
pub mod convo;
pub mod delivery;
pub mod election;
pub mod error;
pub mod events;
pub mod json;
pub mod outbox;
pub mod send;
pub mod session;
pub mod sse;
pub mod text;
pub mod token;
pub mod token_source;
pub mod wire;
