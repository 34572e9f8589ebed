//! The keys and signatures of offline allowances: the Ed25519 keys the ledger signs with (the
//! first signs, the others are only served, so that clients pin a new key before it is used),
//! the signed message and the signed answer. The money rules of allowances (issue, settle) are
//! in [`crate::ledger::allowance`].
//!
//! The signed message is the UTF-8 of `points-allowance/v1` and the fields, `\n` separated, no
//! trailing newline: `allowance_id, user_id, device_id, points, issued_at, not_after,
//! server_time, key_id` (UUIDs lowercase and hyphenated, integers in decimal). The signature is
//! Ed25519 (RFC 8032), base64url without padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ledger::allowance::AllowanceGrant;

/// The first line of every signed allowance message.
pub const SIGNED_PREFIX: &str = "points-allowance/v1";
/// The longest key id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Whether `id` is a key id: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A fresh signing key from the operating system's generator, with the key id
/// `<prefix>-<8 random hex digits>`.
pub fn random_key(prefix: &str) -> (String, SigningKey) {
    let mut bytes = [0u8; 36];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[..32]);
    let suffix: String = bytes[32..].iter().map(|b| format!("{b:02x}")).collect();
    (format!("{prefix}-{suffix}"), SigningKey::from_bytes(&seed))
}

/// Parses `KEY_ID:SEED,KEY_ID:SEED` (SEED: the 32-byte secret seed in base64url, padding
/// optional; spaces around items ignored; an empty text is no key). The first key signs.
pub fn parse_keys(text: &str) -> Result<Vec<(String, SigningKey)>, String> {
    let mut keys = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (key_id, seed) = item
            .split_once(':')
            .ok_or_else(|| "an allowance key is KEY_ID:SEED".to_owned())?;
        let seed = URL_SAFE_NO_PAD
            .decode(seed.trim_end_matches('='))
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| {
                format!("the seed of allowance key `{key_id}` is not 32 bytes of base64url")
            })?;
        keys.push((key_id.to_owned(), SigningKey::from_bytes(&seed)));
    }
    Ok(keys)
}

/// The public key of `key`, base64url without padding.
pub fn public_key_base64(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())
}

/// The bytes signed for `grant`.
pub fn signed_message(grant: &AllowanceGrant) -> String {
    format!(
        "{SIGNED_PREFIX}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        grant.allowance_id,
        grant.user_id,
        grant.device_id,
        grant.points,
        grant.issued_at,
        grant.not_after,
        grant.server_time,
        grant.key_id
    )
}

/// The allowance keys of a ledger, checked: key ids well formed and distinct. Its `Debug`
/// output shows the key ids only.
#[derive(Clone, Default)]
pub struct AllowanceKeys {
    keys: Vec<(String, SigningKey)>,
}

impl std::fmt::Debug for AllowanceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("AllowanceKeys")
            .field("key_ids", &ids)
            .finish()
    }
}

impl AllowanceKeys {
    /// Checks `keys` (the first signs): each key id 1 to 64 of `[A-Za-z0-9._-]`, none twice.
    pub fn new(keys: Vec<(String, SigningKey)>) -> Result<Self, String> {
        for (i, (key_id, _)) in keys.iter().enumerate() {
            if !valid_key_id(key_id) {
                return Err(format!(
                    "allowance key id `{key_id}` is not 1 to 64 of [A-Za-z0-9._-]"
                ));
            }
            if keys[..i].iter().any(|(other, _)| other == key_id) {
                return Err(format!("allowance key id `{key_id}` is given twice"));
            }
        }
        Ok(Self { keys })
    }

    /// The key id of the signing key; `None` when no key is configured.
    pub fn signing_key_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// Every key as (key id, public key in base64url without padding), the signing key first.
    pub fn public_keys(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .map(|(id, key)| (id.clone(), public_key_base64(key)))
            .collect()
    }

    /// `grant` signed with the key it names; `None` when this ledger does not hold that key.
    pub fn sign(&self, grant: AllowanceGrant) -> Option<SignedAllowance> {
        let (_, key) = self.keys.iter().find(|(id, _)| *id == grant.key_id)?;
        let signature =
            URL_SAFE_NO_PAD.encode(key.sign(signed_message(&grant).as_bytes()).to_bytes());
        Some(SignedAllowance {
            allowance_id: grant.allowance_id,
            user_id: grant.user_id,
            device_id: grant.device_id,
            points: grant.points,
            issued_at: grant.issued_at,
            not_after: grant.not_after,
            server_time: grant.server_time,
            key_id: grant.key_id,
            signature,
        })
    }
}

/// An offline allowance, signed (`POST /points/allowance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedAllowance {
    /// The allowance's id (lowercase hyphenated UUID): name it as `allowance_id` in the consumes
    /// that settle the work done under it.
    pub allowance_id: Uuid,
    /// The account it was issued to: the bearer token's `sub`, lowercase and hyphenated.
    pub user_id: Uuid,
    /// The device it was issued for.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub device_id: String,
    /// Points it covers at most: `min(balance, cap)`, 0 when the balance is 0 or less.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub points: i64,
    /// When it was issued (Unix seconds, the ledger's clock).
    pub issued_at: i64,
    /// The last second it covers new work (Unix seconds): `issued_at` + the window.
    pub not_after: i64,
    /// The ledger's clock when it answered (Unix seconds).
    pub server_time: i64,
    /// The key that signed it (`GET /points/allowance-keys`).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub key_id: String,
    /// The Ed25519 signature of `points-allowance/v1` and the fields above, in this order,
    /// `\n` separated (UTF-8, integers in decimal, no trailing newline), base64url without
    /// padding.
    pub signature: String,
}

/// One public key of offline allowances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowanceKey {
    /// The key id an allowance names.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub key_id: String,
    /// The Ed25519 public key: 32 bytes, base64url without padding.
    #[schema(min_length = 43, max_length = 43, pattern = "^[A-Za-z0-9_-]{43}$")]
    pub public_key: String,
}

/// The public keys of offline allowances (`GET /points/allowance-keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowanceKeyList {
    /// Every key, the one signing now first; the others are served so that clients can pin a
    /// key before the ledger signs with it. Empty when the ledger issues no allowance.
    pub keys: Vec<AllowanceKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_or_without_padding_and_bad_ones_are_refused() {
        let seed = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let keys = parse_keys(&format!("k1:{seed}, k2:{seed}=")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].0, "k1");
        assert_eq!(keys[0].1.to_bytes(), [7u8; 32]);
        assert!(parse_keys("").unwrap().is_empty());
        assert!(parse_keys("k1").is_err());
        assert!(parse_keys("k1:AAAA").is_err());
        let checked = AllowanceKeys::new(keys).unwrap();
        assert_eq!(checked.signing_key_id(), Some("k1"));
        assert!(!format!("{checked:?}").contains(&seed));
        let twice = parse_keys(&format!("k1:{seed},k1:{seed}")).unwrap();
        assert!(AllowanceKeys::new(twice).is_err());
        let bad_id = parse_keys(&format!("bad id:{seed}")).unwrap();
        assert!(AllowanceKeys::new(bad_id).is_err());
    }

    #[test]
    fn random_keys_differ_and_have_well_formed_ids() {
        let (a, key_a) = random_key("k");
        let (b, key_b) = random_key("k");
        assert!(
            a.starts_with("k-") && a.len() == 10 && valid_key_id(&a),
            "{a}"
        );
        assert_ne!(a, b);
        assert_ne!(key_a.to_bytes(), key_b.to_bytes());
    }
}
