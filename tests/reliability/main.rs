//! Reliability under faults: the plugin's charge path (SDK + journal + sync) against the real
//! reference ledger, killed at random points and run through a fault proxy. Figures are printed
//! and recorded in RELIABILITY.md.

#[path = "../common/mod.rs"]
mod common;

mod kill;
mod soak;
