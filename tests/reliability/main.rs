//! Reliability under faults: the SDK's job flow (`Jobs::run` and `Jobs::charge`, with the
//! journal and the background sync), the one the plugin runs, against the real reference ledger,
//! killed at random points and run through a fault proxy. Figures are printed and recorded in
//! RELIABILITY.md.

#[path = "../common/mod.rs"]
mod common;

mod kill;
mod soak;
