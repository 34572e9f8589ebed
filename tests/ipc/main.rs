//! The plugin through Tauri's real IPC path on the mock runtime: commands invoked as a webview
//! would, through the ACL built from the plugin's own permission files, against the real ledger.

#[path = "../common/mod.rs"]
mod common;

mod harness;

mod acl;
mod base_url;
mod commands;
mod edges;
mod lifecycle;
mod live;
mod offline;
mod props;
mod run_charged;
