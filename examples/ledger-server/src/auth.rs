//! Who is calling: users by a JWT whose `sub` is their UUID, operators by the admin key.
//!
//! Tokens are verified with an HS256 secret (at least [`MIN_SECRET_BYTES`] bytes) or, so that
//! the ledger can trust the host's own auth server without sharing a secret, with its public
//! keys: a PEM file (Ed25519 for EdDSA, or RSA for RS256) or a JWKS file (keys chosen by the
//! token's `kid`). When an issuer or an audience is configured, tokens must carry it. A token
//! that states its type (`typ` or `token_use` claim, or the header's `typ`) must be an access
//! token: refresh and ID tokens are refused.

use std::path::PathBuf;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// How long a token from [`Auth::token_for`] stays valid.
const TOKEN_LIFETIME: time::Duration = time::Duration::days(365);

/// The shortest HS256 secret a deployment may use (RFC 7518 §3.2: a key as long as the hash).
pub const MIN_SECRET_BYTES: usize = 32;

/// Token types an access token may state (compared without case).
const ACCESS_TYPES: [&str; 3] = ["access", "at+jwt", "bearer"];

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_use: Option<String>,
}

/// How user tokens are verified, beyond the signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtSettings {
    /// Required `iss` when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences) when set.
    pub audience: Option<String>,
    /// A PEM public key (Ed25519: EdDSA; RSA: RS256) the tokens are signed with. Replaces the
    /// HS256 secret for verification.
    pub public_key_pem: Option<PathBuf>,
    /// A JWKS file (`{"keys": [...]}`, Ed25519 or RSA keys); a token's `kid` picks its key.
    /// Replaces the HS256 secret for verification.
    pub jwks: Option<PathBuf>,
}

/// Why the token settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The HS256 secret is too short.
    #[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
    /// A key file could not be read or holds no usable key.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// One key tokens may be signed with.
#[derive(Clone)]
struct VerifyingKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Checks user tokens and the admin key.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    keys: Vec<VerifyingKey>,
    settings: JwtSettings,
    admin_key: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// Tokens signed with `jwt_secret` (HS256, any length: for tests; a deployment goes through
    /// [`Auth::configured`]); admin routes opened by `admin_key`.
    pub fn new(jwt_secret: &str, admin_key: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            keys: vec![VerifyingKey {
                kid: None,
                key: DecodingKey::from_secret(jwt_secret.as_bytes()),
                algorithm: Algorithm::HS256,
            }],
            settings: JwtSettings::default(),
            admin_key: admin_key.to_owned(),
        }
    }

    /// Tokens verified as `settings` say: with the public keys it names, else with
    /// `jwt_secret` (HS256, at least [`MIN_SECRET_BYTES`] bytes). [`Auth::token_for`] always
    /// signs with `jwt_secret`, so its tokens pass only when no public key is configured.
    pub fn configured(
        jwt_secret: &str,
        admin_key: &str,
        settings: &JwtSettings,
    ) -> Result<Self, AuthError> {
        let mut auth = Self::new(jwt_secret, admin_key);
        auth.settings = settings.clone();
        let mut keys = Vec::new();
        if let Some(path) = &settings.public_key_pem {
            keys.push(pem_key(path)?);
        }
        if let Some(path) = &settings.jwks {
            keys.extend(jwks_keys(path)?);
        }
        if keys.is_empty() {
            if jwt_secret.len() < MIN_SECRET_BYTES {
                return Err(AuthError::SecretTooShort);
            }
        } else {
            auth.keys = keys;
        }
        Ok(auth)
    }

    /// A token for `user`, valid for a year, signed with the HS256 secret.
    pub fn token_for(&self, user: Uuid) -> String {
        let now = time::OffsetDateTime::now_utc();
        let mut claims = serde_json::json!({
            "sub": user.to_string(),
            "iat": now.unix_timestamp(),
            "exp": (now + TOKEN_LIFETIME).unix_timestamp(),
        });
        if let Some(issuer) = &self.settings.issuer {
            claims["iss"] = issuer.as_str().into();
        }
        if let Some(audience) = &self.settings.audience {
            claims["aud"] = audience.as_str().into();
        }
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail")
    }

    /// The user named by a valid token, or `None`.
    pub fn user_of(&self, token: &str) -> Option<Uuid> {
        self.user_and_expiry_of(token).map(|(user, _)| user)
    }

    /// The user named by a valid token and the token's `exp` (Unix seconds), or `None`.
    pub fn user_and_expiry_of(&self, token: &str) -> Option<(Uuid, i64)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if let Some(typ) = &header.typ {
            if !typ.eq_ignore_ascii_case("jwt") && !is_access_type(typ) {
                return None;
            }
        }
        let key = self.keys.iter().find(|k| {
            k.algorithm == header.alg
                && match (&k.kid, &header.kid) {
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => self.keys.len() == 1,
                    (None, _) => true,
                }
        })?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(key.algorithm))
            .ok()?;
        let claims = data.claims;
        for stated in [&claims.typ, &claims.token_use].into_iter().flatten() {
            if !is_access_type(stated) {
                return None;
            }
        }
        Uuid::parse_str(&claims.sub)
            .ok()
            .map(|user| (user, claims.exp))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        let mut required = vec!["sub", "exp"];
        match &self.settings.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The user named by an `Authorization: Bearer <token>` header value, or `None`.
    pub fn user_of_header(&self, header: &str) -> Option<Uuid> {
        self.user_and_expiry_of_header(header).map(|(user, _)| user)
    }

    /// The user named by an `Authorization: Bearer <token>` header value and the token's `exp`
    /// (Unix seconds), or `None`.
    pub fn user_and_expiry_of_header(&self, header: &str) -> Option<(Uuid, i64)> {
        let (scheme, token) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.user_and_expiry_of(token.trim())
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

fn is_access_type(stated: &str) -> bool {
    ACCESS_TYPES.iter().any(|t| stated.eq_ignore_ascii_case(t))
}

fn key_file_error(path: &std::path::Path, reason: impl std::fmt::Display) -> AuthError {
    AuthError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The key of a PEM public key file: Ed25519 (EdDSA) or RSA (RS256).
fn pem_key(path: &std::path::Path) -> Result<VerifyingKey, AuthError> {
    let pem = std::fs::read(path).map_err(|e| key_file_error(path, e))?;
    let (key, algorithm) = match DecodingKey::from_ed_pem(&pem) {
        Ok(key) => (key, Algorithm::EdDSA),
        Err(_) => match DecodingKey::from_rsa_pem(&pem) {
            Ok(key) => (key, Algorithm::RS256),
            Err(e) => {
                return Err(key_file_error(
                    path,
                    format!("not an Ed25519 or RSA public key in PEM: {e}"),
                ))
            }
        },
    };
    Ok(VerifyingKey {
        kid: None,
        key,
        algorithm,
    })
}

/// The Ed25519 (EdDSA) and RSA (RS256) keys of a JWKS file.
fn jwks_keys(path: &std::path::Path) -> Result<Vec<VerifyingKey>, AuthError> {
    let text = std::fs::read(path).map_err(|e| key_file_error(path, e))?;
    let set: JwkSet = serde_json::from_slice(&text).map_err(|e| key_file_error(path, e))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| key_file_error(path, e))?;
        keys.push(VerifyingKey {
            kid: jwk.common.key_id.clone(),
            key,
            algorithm,
        });
    }
    if keys.is_empty() {
        return Err(key_file_error(path, "no Ed25519 or RSA key"));
    }
    Ok(keys)
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
                    typ: None,
                    token_use: None,
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
