//! The app's own commands. Thin: the points work is the plugin's (`app.points()`), the rest is
//! simulated work and "the app's backend".

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Serialize, Serializer};
use tauri::ipc::Channel;
use tauri::{AppHandle, State, Webview, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_points::models::ChargeOutcome;
use tauri_plugin_points::{DesktopService, PointsError, PointsExt};

use crate::backend::{BackendAnswer, TopUpError};
use crate::session::SessionView;
use crate::AppState;

/// Points added by "Top up".
const TOP_UP_POINTS: i64 = 50;

/// A failed app command, as the webview receives it: the plugin's `PointsError` as it is (so
/// `store.handleError` recognises a refusal), or `{ kind, message }` for the app's own failures.
#[derive(Debug)]
pub enum AppError {
    Points(tauri_plugin_points::Error),
    App { kind: &'static str, message: String },
}

impl AppError {
    fn app(kind: &'static str, message: impl Into<String>) -> Self {
        AppError::App {
            kind,
            message: message.into(),
        }
    }
}

impl From<tauri_plugin_points::Error> for AppError {
    fn from(error: tauri_plugin_points::Error) -> Self {
        AppError::Points(error)
    }
}

impl Serialize for AppError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Plain<'a> {
            kind: &'a str,
            message: &'a str,
        }
        match self {
            AppError::Points(error) => error.serialize(serializer),
            AppError::App { kind, message } => Plain { kind, message }.serialize(serializer),
        }
    }
}

fn signed_in(state: &AppState) -> Result<crate::backend::User, AppError> {
    state
        .session
        .current_user()
        .ok_or_else(|| AppError::app("signedOut", "sign in first"))
}

#[tauri::command]
pub fn session(state: State<'_, AppState>) -> SessionView {
    state.session.view()
}

#[tauri::command]
pub fn sign_out(app: AppHandle, state: State<'_, AppState>) {
    state.session.sign_out(&app);
}

#[tauri::command]
pub fn sign_in_other(app: AppHandle, state: State<'_, AppState>) -> Result<(), AppError> {
    Ok(state.session.sign_in_other(&app)?)
}

/// Progress of a simulated job, sent through its channel.
#[derive(Clone, Serialize)]
pub struct JobProgress {
    pub percent: u8,
}

/// A finished job and its charge.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDone {
    pub service: DesktopService,
    /// The ledger acknowledged the charge: the points and the balance after it.
    pub charged: Option<ChargeView>,
    /// The charge waits in the plugin's journal until the ledger is back.
    pub pending: bool,
    /// The ledger refused the charge for good (the work is done but not paid).
    pub refused: Option<PointsError>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeView {
    pub points: i64,
    pub balance: i64,
}

/// Runs a desktop job (compose, subtitle burn, cover design): simulated work reported through
/// `on_progress`, charged through the plugin only when it succeeds. `fail` makes the work fail
/// halfway (and so not charged).
#[tauri::command]
pub async fn run_job(
    app: AppHandle,
    webview: Webview,
    state: State<'_, AppState>,
    service: DesktopService,
    fail: bool,
    job_id: String,
    on_progress: Channel<JobProgress>,
) -> Result<JobDone, AppError> {
    let steps: u32 = 10;
    let step = state.job_duration / steps;
    let work = || async move {
        for done in 1..=steps {
            tokio::time::sleep(step).await;
            if fail && done == steps / 2 {
                return Err(AppError::app(
                    "jobFailed",
                    "the job failed (as asked): nothing was charged",
                ));
            }
            let _ = on_progress.send(JobProgress {
                percent: (done * 100 / steps) as u8,
            });
        }
        Ok(())
    };
    // The refusal (if any) opens the recharge dialog in the window that started the job.
    let charged = app
        .points()
        .job(service)
        .key(&job_id)
        .window(webview.label())
        .run(work)
        .await?;
    let (charged, pending, refused) = match charged.charge {
        ChargeOutcome::Acknowledged { receipt } => (
            Some(ChargeView {
                points: receipt.points,
                balance: receipt.balance,
            }),
            false,
            None,
        ),
        ChargeOutcome::Pending { .. } => (None, true, None),
        ChargeOutcome::Refused { error, .. } => (None, false, Some(error)),
        // A later kind of outcome: shown as waiting, never as charged.
        _ => (None, true, None),
    };
    Ok(JobDone {
        service,
        charged,
        pending,
        refused,
    })
}

/// Sends a video job of `duration` seconds to "the app's backend", which charges `video` on the
/// ledger itself; its answer (a 402 included) is handed back for the webview to read.
#[tauri::command]
pub async fn submit_video(
    state: State<'_, AppState>,
    duration: f64,
) -> Result<BackendAnswer, AppError> {
    let user = signed_in(&state)?;
    state
        .backend
        .submit_video(&state.http, &user, duration)
        .await
        .map_err(|error| AppError::app("backendUnreachable", error.to_string()))
}

/// Buys 50 points for the signed-in user through the ledger's admin route, then refreshes the
/// balance through the plugin (which tells every window).
#[tauri::command]
pub async fn top_up(app: AppHandle, state: State<'_, AppState>) -> Result<(), AppError> {
    let user = signed_in(&state)?;
    if !state.backend.can_top_up(&user) {
        return Err(AppError::app(
            "topUpUnavailable",
            "top-up needs the in-process ledger (or POINTS_ADMIN_KEY and a POINTS_ACCOUNT user id)",
        ));
    }
    let answer = state
        .backend
        .top_up(&state.http, &user, TOP_UP_POINTS)
        .await
        .map_err(|error| match error {
            TopUpError::Unavailable => AppError::app("topUpUnavailable", "top-up is unavailable"),
            TopUpError::Http(error) => AppError::app("backendUnreachable", error.to_string()),
        })?;
    if answer.status != 200 {
        return Err(AppError::app(
            "topUpRefused",
            format!(
                "the ledger refused the top-up ({}): {}",
                answer.status, answer.body
            ),
        ));
    }
    app.points().balance().await?;
    Ok(())
}

/// Opens another window on the same page; returns its label.
#[tauri::command]
pub async fn open_window(app: AppHandle) -> Result<String, AppError> {
    static NEXT: AtomicU32 = AtomicU32::new(2);
    let label = format!("window-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    WebviewWindowBuilder::new(&app, &label, WebviewUrl::App("index.html".into()))
        .title(format!("Points example ({label})"))
        .inner_size(900.0, 720.0)
        .build()
        .map_err(|error| AppError::app("window", error.to_string()))?;
    Ok(label)
}

/// Does nothing: the IPC floor of the benchmark.
#[tauri::command]
pub async fn noop() -> Result<(), AppError> {
    Ok(())
}

/// Benchmark mode only (`POINTS_EXAMPLE_BENCH=1`): the ledger URL and the bench user's token, so
/// the webview can time a direct `fetch()` against the plugin. Refused otherwise.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchTarget {
    base_url: String,
    token: String,
}

#[tauri::command]
pub fn bench_target(state: State<'_, AppState>) -> Result<BenchTarget, AppError> {
    match (state.bench, state.backend.bench_user()) {
        (true, Some(user)) => Ok(BenchTarget {
            base_url: state.backend.base_url(),
            token: user.token.clone(),
        }),
        _ => Err(AppError::app(
            "forbidden",
            "only in benchmark mode (POINTS_EXAMPLE_BENCH=1) with the in-process ledger",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refusal_reaches_the_webview_as_the_plugins_error() {
        let error = AppError::from(tauri_plugin_points::Error::InsufficientPoints {
            service: Some("compose".into()),
            required: Some(5),
            balance: Some(1),
        });
        let value = serde_json::to_value(&error).unwrap();
        assert_eq!(value["kind"], "insufficientPoints");
        assert_eq!(value["required"], 5);
        assert_eq!(value["balance"], 1);
    }

    #[test]
    fn the_apps_own_failures_have_a_kind_and_a_message() {
        let error = AppError::app("jobFailed", "it failed");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({ "kind": "jobFailed", "message": "it failed" })
        );
    }
}
