//! Who is calling: users by an HS256 JWT whose `sub` is their UUID, operators by the admin key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// How long a token from [`Auth::token_for`] stays valid.
const TOKEN_LIFETIME: time::Duration = time::Duration::days(365);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    iat: i64,
}

/// Checks user tokens and the admin key.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    admin_key: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// Tokens signed with `jwt_secret`; admin routes opened by `admin_key`.
    pub fn new(jwt_secret: &str, admin_key: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["sub", "exp"]);
        Self {
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            validation,
            admin_key: admin_key.to_owned(),
        }
    }

    /// A token for `user`, valid for a year.
    pub fn token_for(&self, user: Uuid) -> String {
        let now = time::OffsetDateTime::now_utc();
        let claims = Claims {
            sub: user.to_string(),
            iat: now.unix_timestamp(),
            exp: (now + TOKEN_LIFETIME).unix_timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail")
    }

    /// The user named by a valid token, or `None`.
    pub fn user_of(&self, token: &str) -> Option<Uuid> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Uuid::parse_str(&data.claims.sub).ok()
    }

    /// The user named by an `Authorization: Bearer <token>` header value, or `None`.
    pub fn user_of_header(&self, header: &str) -> Option<Uuid> {
        let (scheme, token) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.user_of(token.trim())
    }

    /// Whether `key` is the admin key (compared in constant time).
    pub fn is_admin_key(&self, key: &str) -> bool {
        !self.admin_key.is_empty() && bool::from(key.as_bytes().ct_eq(self.admin_key.as_bytes()))
    }

    /// The admin key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_fail() {
        let auth = Auth::new("secret-one", "admin");
        let other = Auth::new("secret-two", "admin");
        let user = Uuid::new_v4();
        let token = auth.token_for(user);
        assert_eq!(auth.user_of(&token), Some(user));
        assert_eq!(auth.user_of_header(&format!("Bearer {token}")), Some(user));
        assert_eq!(auth.user_of_header(&format!("Basic {token}")), None);
        assert_eq!(other.user_of(&token), None);
        assert_eq!(auth.user_of("not.a.token"), None);
    }

    #[test]
    fn expired_tokens_and_non_uuid_subjects_fail() {
        let auth = Auth::new("s", "admin");
        let key = EncodingKey::from_secret(b"s");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sign = |sub: &str, exp: i64| {
            jsonwebtoken::encode(
                &Header::default(),
                &Claims {
                    sub: sub.into(),
                    exp,
                    iat: now,
                },
                &key,
            )
            .unwrap()
        };
        assert_eq!(
            auth.user_of(&sign(&Uuid::new_v4().to_string(), now - 3600)),
            None
        );
        assert_eq!(auth.user_of(&sign("alice", now + 3600)), None);
    }

    #[test]
    fn admin_key_must_match_exactly() {
        let auth = Auth::new("s", "the-key");
        assert!(auth.is_admin_key("the-key"));
        assert!(!auth.is_admin_key("the-key "));
        assert!(!auth.is_admin_key(""));
        assert!(!Auth::new("s", "").is_admin_key(""));
    }
}
