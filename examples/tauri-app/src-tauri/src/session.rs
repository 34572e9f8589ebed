//! Who is signed in. Signing in hands the user's token to the plugin on the Rust side; the
//! webview only hears `demo://session-changed` and refetches.

use std::sync::Mutex;

use serde::Serialize;
use tauri::{AppHandle, Emitter};
use tauri_plugin_points::PointsExt;

use crate::backend::{Backend, User};

/// Emitted to every window after a sign-in or sign-out.
pub const SESSION_CHANGED: &str = "demo://session-changed";

/// The signed-in user: an index into [`Backend::users`], or the bench user.
pub struct Session {
    users: Vec<User>,
    bench: Option<User>,
    current: Mutex<Current>,
}

#[derive(Clone, Copy)]
struct Current {
    /// `None` when signed out.
    signed_in: Option<Who>,
    /// The last user signed in (the next "other" user follows it).
    last: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Who {
    User(usize),
    Bench,
}

/// What the webview may know of the session: never the token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub user: Option<String>,
    pub can_switch: bool,
}

impl Session {
    pub fn new(backend: &Backend) -> Self {
        Self {
            users: backend.users(),
            bench: backend.bench_user().cloned(),
            current: Mutex::new(Current {
                signed_in: None,
                last: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Signs in at start: the first demo user, or the bench user in benchmark mode.
    pub fn restore(&self, app: &AppHandle, bench: bool) -> tauri_plugin_points::Result<()> {
        let who = if bench && self.bench.is_some() {
            Who::Bench
        } else {
            Who::User(0)
        };
        self.sign_in(app, who)
    }

    fn user(&self, who: Who) -> Option<&User> {
        match who {
            Who::User(index) => self.users.get(index),
            Who::Bench => self.bench.as_ref(),
        }
    }

    fn sign_in(&self, app: &AppHandle, who: Who) -> tauri_plugin_points::Result<()> {
        let Some(user) = self.user(who) else {
            return Ok(());
        };
        app.points()
            .sign_in(user.token.clone(), user.account.clone())?;
        let mut current = self.lock();
        current.signed_in = Some(who);
        if let Who::User(index) = who {
            current.last = index;
        }
        drop(current);
        self.announce(app);
        Ok(())
    }

    /// Signs in as the demo user after the last one signed in (the same one when there is only one).
    pub fn sign_in_other(&self, app: &AppHandle) -> tauri_plugin_points::Result<()> {
        let next = (self.lock().last + 1) % self.users.len().max(1);
        self.sign_in(app, Who::User(next))
    }

    /// Signs out: the plugin forgets the token.
    pub fn sign_out(&self, app: &AppHandle) {
        app.points().clear_session_token();
        self.lock().signed_in = None;
        self.announce(app);
    }

    /// The signed-in user, with the token (Rust side only).
    pub fn current_user(&self) -> Option<User> {
        let who = self.lock().signed_in?;
        self.user(who).cloned()
    }

    pub fn view(&self) -> SessionView {
        SessionView {
            user: self.current_user().map(|user| user.name),
            can_switch: self.users.len() > 1,
        }
    }

    fn announce(&self, app: &AppHandle) {
        let _ = app.emit(SESSION_CHANGED, self.view());
    }
}
