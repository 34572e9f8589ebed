//! Tauri v2 plugin to charge, check and show a user's prepaid points against a backend ledger.

mod error;
pub mod models;

pub use error::{Error, PointsError, Result};

use tauri::{
    plugin::{Builder as PluginBuilder, TauriPlugin},
    Runtime,
};

/// Builds the `points` plugin.
#[derive(Default)]
pub struct Builder {}

impl Builder {
    /// A builder with the configuration read from `tauri.conf.json > plugins.points`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the plugin.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        PluginBuilder::new("points").build()
    }
}
