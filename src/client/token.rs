//! Where the client reads the session token from, once per request. The token lives only in
//! memory and is never logged, displayed or returned.

use std::fmt;
use std::sync::{Arc, RwLock};

/// Gives the bearer token for the next request; `None` means "not signed in".
pub trait TokenProvider: Send + Sync + 'static {
    /// The current token.
    fn token(&self) -> Option<String>;
}

impl<F> TokenProvider for F
where
    F: Fn() -> Option<String> + Send + Sync + 'static,
{
    fn token(&self) -> Option<String> {
        self()
    }
}

/// A token holder set after sign-in and cleared at sign-out; clones share the same token.
#[derive(Clone, Default)]
pub struct SessionToken(Arc<RwLock<Option<String>>>);

impl SessionToken {
    /// An empty holder (signed out).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the token.
    pub fn set(&self, token: impl Into<String>) {
        *self.0.write().unwrap_or_else(|poison| poison.into_inner()) = Some(token.into());
    }

    /// Forgets the token.
    pub fn clear(&self) {
        *self.0.write().unwrap_or_else(|poison| poison.into_inner()) = None;
    }

    /// Whether a token is held.
    pub fn is_set(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_some()
    }
}

impl TokenProvider for SessionToken {
    fn token(&self) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_set() { "set" } else { "unset" };
        f.debug_tuple("SessionToken").field(&state).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = SessionToken::new();
        token.set("secret-value");
        let shown = format!("{token:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert_eq!(token.token().as_deref(), Some("secret-value"));
        token.clear();
        assert_eq!(token.token(), None);
    }
}
