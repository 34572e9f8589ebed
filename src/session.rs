//! The signed-in account: its token (in memory only) and a stable id of the account it belongs
//! to, which is what pending charges are bound to.
//!
//! The account id is, by preference: the id the host gives with the token
//! ([`Sessions::sign_in`], [`TokenProvider::account`]); the JWT `sub` claim; else a hash of the
//! token. The hash changes at every sign-in of the same user with an opaque token, so a charge
//! bound to it can only be sent with that very token: hosts with opaque tokens should give an
//! account id (a warning is logged when the hash is used).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::client::{account_of, TokenProvider};
use crate::{Error, Result};

/// The longest session token accepted (real OAuth/OIDC tokens reach several kilobytes).
pub const MAX_TOKEN_LEN: usize = 8192;
/// The longest account id accepted.
pub const MAX_ACCOUNT_LEN: usize = 255;

/// One signed-in session: a token and the account it belongs to. Cheap to clone. `Debug` never
/// shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    token: Arc<str>,
    account: Arc<str>,
}

impl Session {
    /// A session for `token`, belonging to `account` when given (else derived from the token).
    pub fn new(token: impl Into<String>, account: Option<String>) -> Result<Self> {
        let token = token.into();
        check_token(&token)?;
        let account = match account {
            Some(account) => {
                check_account(&account)?;
                format!("id:{account}")
            }
            None => {
                let derived = account_of(&token);
                if derived.starts_with("sha256:") {
                    tracing::warn!(
                        "session token has no JWT subject and no account id was given: pending \
                         charges are bound to this token's hash"
                    );
                }
                derived
            }
        };
        Ok(Self {
            token: token.into(),
            account: account.into(),
        })
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The account id charges made in this session are bound to (`id:…`, `sub:…` or `sha256:…`).
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Checks a session token: 1 to [`MAX_TOKEN_LEN`] printable ASCII characters without spaces.
pub fn check_token(token: &str) -> Result<()> {
    let valid = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|byte| (0x21..=0x7e).contains(&byte));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "token",
            format!("must be 1 to {MAX_TOKEN_LEN} printable ASCII characters without spaces"),
        ))
    }
}

fn check_account(account: &str) -> Result<()> {
    let valid = !account.is_empty()
        && account.len() <= MAX_ACCOUNT_LEN
        && account.bytes().all(|byte| (0x21..=0x7e).contains(&byte));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "accountId",
            format!("must be 1 to {MAX_ACCOUNT_LEN} printable ASCII characters without spaces"),
        ))
    }
}

/// Where the session comes from now.
enum State {
    /// Nothing set: the host's [`TokenProvider`] is asked, if there is one.
    Provider,
    /// Signed in with [`Sessions::sign_in`].
    SignedIn(Session),
    /// Signed out with [`Sessions::sign_out`]: the provider is not asked until the next sign-in
    /// or [`Sessions::follow_provider`].
    SignedOut,
}

type Observer = Box<dyn Fn(Option<&Session>, u64) + Send + Sync>;

/// The session holder of the plugin: who is signed in, and a number that grows with every
/// change of account (sign-in, sign-out, another account).
pub struct Sessions {
    state: RwLock<State>,
    provider: Option<Arc<dyn TokenProvider>>,
    /// The account last seen, to notice a change made through the provider.
    last_account: RwLock<Option<Arc<str>>>,
    /// The provider's last session, reused while it gives the same token and account id (a
    /// session is read on every request; deriving its account parses the token).
    provided: RwLock<Option<(Option<String>, Session)>>,
    generation: AtomicU64,
    observer: RwLock<Option<Observer>>,
}

impl Sessions {
    /// A holder that asks `provider` while nothing was set.
    pub fn new(provider: Option<Arc<dyn TokenProvider>>) -> Self {
        Self {
            state: RwLock::new(State::Provider),
            provider,
            last_account: RwLock::new(None),
            provided: RwLock::new(None),
            generation: AtomicU64::new(0),
            observer: RwLock::new(None),
        }
    }

    /// Calls `observer` with the new session and its number after every change of account.
    pub fn observe(&self, observer: impl Fn(Option<&Session>, u64) + Send + Sync + 'static) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(observer));
    }

    /// Signs in: every later call uses this session.
    pub fn sign_in(&self, session: Session) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::SignedIn(session);
        self.current();
    }

    /// Signs out: no call is made until the next sign-in (the provider is not asked either).
    pub fn sign_out(&self) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::SignedOut;
        self.current();
    }

    /// Goes back to asking the provider (after a sign-out).
    pub fn follow_provider(&self) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::Provider;
        self.current();
    }

    /// The session now, `None` when signed out. Notices (and announces) a change of account made
    /// through the provider.
    pub fn current(&self) -> Option<Session> {
        let session = match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::SignedIn(session) => Some(session.clone()),
            State::SignedOut => None,
            State::Provider => self.provided_session(),
        };
        self.notice(session.as_ref());
        session
    }

    /// The provider's session now, parsed only when its token or account id changed.
    fn provided_session(&self) -> Option<Session> {
        let provider = self.provider.as_ref()?;
        let token = provider.token()?;
        let account = provider.account();
        if let Some((known_account, session)) =
            &*self.provided.read().unwrap_or_else(|p| p.into_inner())
        {
            if *session.token == *token && *known_account == account {
                return Some(session.clone());
            }
        }
        let session = Session::new(token, account.clone())
            .map_err(|error| tracing::warn!(%error, "the token provider's token is unusable"))
            .ok()?;
        *self.provided.write().unwrap_or_else(|p| p.into_inner()) =
            Some((account, session.clone()));
        Some(session)
    }

    /// The number of the current session (grows with every change of account).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The session now and its number, consistent with each other.
    pub fn snapshot(&self) -> (Option<Session>, u64) {
        loop {
            let session = self.current();
            let last = self.last_account.read().unwrap_or_else(|p| p.into_inner());
            // The number only changes together with the account, under this lock.
            if *last == session.as_ref().map(|session| session.account.clone()) {
                return (session, self.generation());
            }
        }
    }

    fn notice(&self, session: Option<&Session>) {
        let account = session.map(|session| session.account.clone());
        // Read on every request: the write lock only when the account changed.
        if *self.last_account.read().unwrap_or_else(|p| p.into_inner()) == account {
            return;
        }
        let generation = {
            let mut last = self.last_account.write().unwrap_or_else(|p| p.into_inner());
            if *last == account {
                return;
            }
            *last = account;
            self.generation.fetch_add(1, Ordering::SeqCst) + 1
        };
        if let Some(observer) = &*self.observer.read().unwrap_or_else(|p| p.into_inner()) {
            observer(session, generation);
        }
    }
}

impl TokenProvider for Sessions {
    fn token(&self) -> Option<String> {
        self.current().map(|session| session.token().to_owned())
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_account_is_the_given_id_else_the_jwt_subject_else_the_token_hash() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjF9.c2ln";
        assert_eq!(Session::new(jwt, None).unwrap().account(), "sub:user-1");
        assert_eq!(
            Session::new(jwt, Some("acct-9".into())).unwrap().account(),
            "id:acct-9"
        );
        let opaque = Session::new("opaque", None).unwrap();
        assert!(opaque.account().starts_with("sha256:"));
        assert!(!format!("{opaque:?}").contains("opaque\""));
        assert!(Session::new("x".repeat(MAX_TOKEN_LEN), None).is_ok());
        assert!(Session::new("x".repeat(MAX_TOKEN_LEN + 1), None).is_err());
        assert!(Session::new("has space", None).is_err());
        assert!(Session::new("t", Some(String::new())).is_err());
    }

    #[test]
    fn sign_out_ignores_the_provider_and_every_change_of_account_is_announced() {
        let provided = Arc::new(Mutex::new(Some("provided".to_owned())));
        let provider = {
            let provided = provided.clone();
            move || provided.lock().unwrap().clone()
        };
        let sessions = Sessions::new(Some(Arc::new(provider)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        sessions.observe({
            let seen = seen.clone();
            move |session, generation| {
                seen.lock()
                    .unwrap()
                    .push((session.map(|s| s.token().to_owned()), generation))
            }
        });
        assert_eq!(sessions.token().as_deref(), Some("provided"));
        assert_eq!(
            sessions.token().as_deref(),
            Some("provided"),
            "no change, no event"
        );
        sessions.sign_out();
        assert_eq!(sessions.token(), None, "sign-out wins over the provider");
        sessions.sign_in(Session::new("explicit", None).unwrap());
        assert_eq!(sessions.token().as_deref(), Some("explicit"));
        *provided.lock().unwrap() = Some("another".into());
        sessions.follow_provider();
        assert_eq!(sessions.token().as_deref(), Some("another"));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (Some("provided".into()), 1),
                (None, 2),
                (Some("explicit".into()), 3),
                (Some("another".into()), 4),
            ]
        );
    }
}
