//! The example app of `tauri-plugin-points`: a balance badge, three desktop jobs charged through
//! the plugin's Rust API when they succeed, a video job sent to "the app's backend", a recharge
//! dialog, sign-out / sign-in and a second window.
//!
//! By default it needs no backend: the reference ledger (`points-ledger`) runs in-process on
//! loopback, with its SQLite file in the app's data directory and two demo users. With
//! `POINTS_API_URL` and `POINTS_TOKEN` (and optionally `POINTS_ACCOUNT`) it uses that ledger
//! instead and starts none. The user's token stays on the Rust side.

mod backend;
mod commands;
mod session;

use std::time::Duration;

use tauri::{Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_points::PointsExt;

pub use backend::Backend;
pub use session::Session;

/// What can stop the app from starting.
pub type StartError = Box<dyn std::error::Error>;

/// The app's state.
pub struct AppState {
    pub backend: Backend,
    pub session: Session,
    /// How long a simulated job takes.
    pub job_duration: Duration,
    /// Whether the benchmark-only command may hand a bench user's credentials to the webview.
    pub bench: bool,
    http: reqwest::Client,
}

/// The label of the first window; others are `window-N`.
pub const MAIN_WINDOW: &str = "main";

/// Builds and runs the app until its last window closes.
pub fn run() -> Result<(), StartError> {
    let app = tauri::Builder::default()
        // Registered before the ledger's URL is known: `setup` sets it once the ledger runs.
        .plugin(tauri_plugin_points::init())
        .invoke_handler(tauri::generate_handler![
            commands::session,
            commands::sign_out,
            commands::sign_in_other,
            commands::run_job,
            commands::submit_video,
            commands::top_up,
            commands::open_window,
            commands::noop,
            commands::bench_target,
        ])
        .setup(|app| {
            let handle = app.handle().clone();
            let state = tauri::async_runtime::block_on(start(&handle))?;
            let base_url = state.backend.base_url();
            handle.points().set_base_url(&base_url)?;
            let keys = state.backend.allowance_keys();
            if !keys.is_empty() {
                // Desktop jobs run on a signed allowance while the ledger cannot be reached.
                let pinned = tauri_plugin_points::allowance::PinnedKeys::from_base64(
                    keys.iter().map(|(id, key)| (id.as_str(), key.as_str())),
                )?;
                let settings = tauri_plugin_points::offline::OfflineSettings::new(pinned);
                handle.points().enable_offline(settings)?;
            }
            state.session.restore(&handle, state.bench)?;
            eprintln!(
                "points-example-app: ledger at {base_url} ({})",
                state.backend.mode()
            );
            app.manage(state);
            open_main_window(&handle)?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            if let Some(state) = handle.try_state::<AppState>() {
                tauri::async_runtime::block_on(state.backend.shutdown());
            }
        }
    });
    Ok(())
}

async fn start(app: &tauri::AppHandle) -> Result<AppState, StartError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let bench = std::env::var("POINTS_EXAMPLE_BENCH").is_ok_and(|v| v == "1");
    let backend = match backend::external_from_env()? {
        Some(external) => external,
        None => Backend::embedded(&app.path().app_data_dir()?, bench).await?,
    };
    let session = Session::new(&backend);
    let job_duration = std::env::var("POINTS_EXAMPLE_JOB_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_millis(1200));
    Ok(AppState {
        backend,
        session,
        job_duration,
        bench,
        http,
    })
}

fn open_main_window(app: &tauri::AppHandle) -> tauri::Result<()> {
    WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::App("index.html".into()))
        .title("Points example")
        .inner_size(900.0, 720.0)
        .build()?;
    Ok(())
}
