//! Where the client reads the session token from, once per request. The token lives only in
//! memory and is never logged, displayed or returned.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Gives the bearer token for the next request; `None` means "not signed in". It is asked once
/// per ledger call, with no lock of the plugin held: answer from memory (refresh tokens in the
/// background, not in `token()`).
pub trait TokenProvider: Send + Sync + 'static {
    /// The current token.
    fn token(&self) -> Option<String>;

    /// A stable id of the account the current token belongs to (e.g. the user's id in the host
    /// app). Pending charges are bound to it; without it the JWT `sub` claim is used, else a
    /// hash of the token.
    fn account(&self) -> Option<String> {
        None
    }

    /// A token of another account than the current one, for sending the charges it left pending
    /// on this machine (`account` is their label: `sub:<JWT subject>`, `id:<the host's id>` or
    /// `sha256:<token hash>`). `None` (the default) leaves them pending until that account signs
    /// in again. Where the ledger states accounts, a token the ledger knows as another account
    /// is never used.
    fn token_for(&self, account: &str) -> Option<String> {
        let _ = account;
        None
    }
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

/// Who `token` belongs to, as far as the journal needs to know: `sub:<subject>` when the token
/// is a JWT with a string `sub` claim (it stays the same when the token is refreshed), else
/// `sha256:<hex>` of the whole token. The signature is not checked (the ledger does that) and
/// the token itself never appears in the result.
pub fn account_of(token: &str) -> String {
    let subject = token
        .split('.')
        .nth(1)
        .filter(|_| token.split('.').count() == 3)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|claims| claims.get("sub")?.as_str().map(str::to_owned));
    match subject {
        Some(subject) => format!("sub:{subject}"),
        None => {
            let digest = Sha256::digest(token.as_bytes());
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("sha256:{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_belongs_to_its_subject_and_other_tokens_to_their_digest() {
        // {"alg":"HS256"} . {"sub":"user-1","exp":1} . signature
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjF9.c2ln";
        let refreshed = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjJ9.b3RoZXI";
        assert_eq!(account_of(jwt), "sub:user-1");
        assert_eq!(account_of(refreshed), "sub:user-1");
        let opaque = account_of("opaque-session-secret");
        assert!(
            opaque.starts_with("sha256:") && opaque.len() == 7 + 64,
            "{opaque}"
        );
        assert!(!opaque.contains("opaque-session-secret"));
        assert_ne!(opaque, account_of("another-secret"));
        assert!(account_of("a.b.c").starts_with("sha256:"), "not a JWT");
    }

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
