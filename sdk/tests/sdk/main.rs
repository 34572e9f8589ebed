//! The client SDK against the real reference ledger, a misbehaving stub, and crashes.

#[path = "../../../tests/common/mod.rs"]
mod common;

mod allowance;
mod base_url;
mod edges;
mod faults;
mod ledger;
mod offline;
mod sync;
mod watch;
