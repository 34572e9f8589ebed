//! The signed-in account: its token (in memory only) and the ids of the account it belongs to,
//! which is what pending charges are bound to.
//!
//! A session's label (its [`Session::account`]) is, by preference: the token's JWT `sub` claim
//! (`sub:…`, stable across refreshes and the same whichever sign-in call the host uses); the
//! id the host gives with the token ([`Sessions::sign_in`], [`TokenProvider::account`]:
//! `id:…`); else a hash of the token (`sha256:…`, which changes at every sign-in with an opaque
//! token: hosts with opaque tokens give an account id; a warning is logged when the hash is
//! used). A session also answers to its other labels (the host's id when the token is a JWT), so
//! charges journaled under either are its own.
//!
//! Where the ledger states the account of a token (`user_id`, contract v1.2), that is the
//! authority: a session learns it from the first answer that states it, and a charge bound to a
//! ledger account is never sent with a token the ledger knows as another.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::client::{account_of, TokenProvider};
use crate::{Error, Result};

/// The longest session token accepted (real OAuth/OIDC tokens reach several kilobytes).
pub const MAX_TOKEN_LEN: usize = 8192;
/// The longest account id accepted.
pub const MAX_ACCOUNT_LEN: usize = 255;

/// One signed-in session: a token and the account it belongs to. Cheap to clone (clones share
/// what is learned about the account). `Debug` never shows the token.
#[derive(Clone)]
pub struct Session {
    token: Arc<str>,
    account: Arc<str>,
    /// Every label of this account: `account` first, then the host's id when it is not it.
    labels: Arc<[Arc<str>]>,
    /// The ledger's account of the token, once an answer stated it.
    ledger_user: Arc<OnceLock<Arc<str>>>,
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token && self.labels == other.labels
    }
}

impl Eq for Session {}

impl Session {
    /// A session for `token`, belonging to the host's `account` when given.
    pub fn new(token: impl Into<String>, account: Option<String>) -> Result<Self> {
        let token = token.into();
        check_token(&token)?;
        let derived = account_of(&token);
        let given = match account {
            Some(account) => {
                check_account(&account)?;
                Some(format!("id:{account}"))
            }
            None => None,
        };
        let labels: Vec<Arc<str>> = match (derived.starts_with("sub:"), given) {
            (true, Some(given)) => vec![derived.into(), given.into()],
            (true, None) => vec![derived.into()],
            (false, Some(given)) => vec![given.into()],
            (false, None) => {
                tracing::warn!(
                    "session token has no JWT subject and no account id was given: pending \
                     charges are bound to this token's hash"
                );
                vec![derived.into()]
            }
        };
        Ok(Self {
            token: token.into(),
            account: labels[0].clone(),
            labels: labels.into(),
            ledger_user: Arc::default(),
        })
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The label charges made in this session are bound to (`sub:…`, `id:…` or `sha256:…`).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Every label of this session's account (its [`Session::account`] first).
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|label| &**label)
    }

    /// The ledger's account of this session's token, once an answer stated it.
    pub fn ledger_user(&self) -> Option<&str> {
        self.ledger_user.get().map(|user| &**user)
    }

    /// Records the account the ledger stated for this token (the first statement is kept).
    pub fn learn_ledger_user(&self, user: Option<&str>) {
        if let Some(user) = user {
            let known = self.ledger_user.get_or_init(|| user.into());
            if **known != *user {
                tracing::error!("the ledger stated two accounts for one session token");
            }
        }
    }

    /// Whether a charge bound to `account` (and to the ledger account `ledger_user`, when the
    /// ledger stated it) belongs to this session's account. When both sides know their ledger
    /// account, that decides; otherwise the labels do.
    pub fn owns(&self, account: &str, ledger_user: Option<&str>) -> bool {
        match (ledger_user, self.ledger_user()) {
            (Some(charged), Some(mine)) => charged == mine,
            _ => self.labels().any(|label| label == account),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account)
            .field("ledger_user", &self.ledger_user())
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
    /// The session last noticed and its number, for subscribers ([`Sessions::subscribe`]).
    changes: tokio::sync::watch::Sender<(Option<Session>, u64)>,
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
            changes: tokio::sync::watch::Sender::new((None, 0)),
        }
    }

    /// The session and its number after every change of account: a receiver that sees the
    /// latest change (changes in a quick row may be seen as the last one only). This is how the
    /// plugin announces sessions and the sync wakes on a sign-in; reading a session calls nothing.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<(Option<Session>, u64)> {
        self.changes.subscribe()
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
        let session = loop {
            if let Some(session) = self.set_session() {
                break session;
            }
            // The host's provider is called with no lock held.
            let provided = self.provided_session();
            if self.set_session().is_none() {
                break provided;
            }
            // Signed in or out while the provider was asked: that wins.
        };
        self.notice(session.as_ref());
        session
    }

    /// The session set by a sign-in or sign-out, `None` while the provider is followed.
    fn set_session(&self) -> Option<Option<Session>> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::SignedIn(session) => Some(Some(session.clone())),
            State::SignedOut => Some(None),
            State::Provider => None,
        }
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

    /// A token of the account labelled `account` from the host's provider, when it has one
    /// ([`TokenProvider::token_for`]); called with no lock held.
    pub fn token_for(&self, account: &str) -> Option<String> {
        let token = self.provider.as_ref()?.token_for(account)?;
        check_token(&token).ok()?;
        Some(token)
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
        let mut last = self.last_account.write().unwrap_or_else(|p| p.into_inner());
        if *last == account {
            return;
        }
        *last = account;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // Still under the lock, so that changes are published in order.
        self.changes.send_replace((session.cloned(), generation));
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
        let both = Session::new(jwt, Some("acct-9".into())).unwrap();
        assert_eq!(
            both.account(),
            "sub:user-1",
            "one label, whichever sign-in call"
        );
        assert!(
            both.owns("id:acct-9", None),
            "the host's id is its label too"
        );
        assert_eq!(
            Session::new("opaque", Some("acct-9".into()))
                .unwrap()
                .account(),
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
        let mut changes = sessions.subscribe();
        let mut announced = move || {
            changes.has_changed().unwrap().then(|| {
                let (session, generation) = changes.borrow_and_update().clone();
                (session.map(|s| s.token().to_owned()), generation)
            })
        };
        assert_eq!(sessions.token().as_deref(), Some("provided"));
        assert_eq!(announced(), Some((Some("provided".into()), 1)));
        assert_eq!(
            sessions.token().as_deref(),
            Some("provided"),
            "no change, no event"
        );
        assert_eq!(announced(), None, "no change, no event");
        sessions.sign_out();
        assert_eq!(sessions.token(), None, "sign-out wins over the provider");
        assert_eq!(announced(), Some((None, 2)));
        sessions.sign_in(Session::new("explicit", None).unwrap());
        assert_eq!(sessions.token().as_deref(), Some("explicit"));
        assert_eq!(announced(), Some((Some("explicit".into()), 3)));
        *provided.lock().unwrap() = Some("another".into());
        sessions.follow_provider();
        assert_eq!(sessions.token().as_deref(), Some("another"));
        assert_eq!(announced(), Some((Some("another".into()), 4)));
    }
}
