//! Offline allowances (contract v1.2): points the ledger signs over to one device of one user for
//! a bounded time, so that desktop jobs may run while the ledger cannot be reached. The ledger's
//! exposure is at most what it signed; the device checks every allowance against keys pinned in
//! its configuration before it trusts it.
//!
//! The signed message is the UTF-8 of the fields, `\n` separated, after the line
//! `points-allowance/v1` (see [`Allowance::signed_message`]); the signature is Ed25519 (RFC 8032),
//! checked with `verify_strict`.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The first line of every signed allowance message.
pub const SIGNED_PREFIX: &str = "points-allowance/v1";
/// The longest `device_id`.
pub const MAX_DEVICE_ID_LEN: usize = 128;
/// The longest `key_id`.
pub const MAX_KEY_ID_LEN: usize = 64;
/// The most keys pinned.
pub const MAX_PINNED_KEYS: usize = 16;

/// An allowance as the ledger answers it (`POST /points/allowance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// The allowance's id (a UUID).
    pub allowance_id: String,
    /// The ledger's account it was issued to (a UUID).
    pub user_id: String,
    /// The device it was issued for.
    pub device_id: String,
    /// Points it covers, at most.
    pub points: i64,
    /// When it was issued (Unix seconds, the ledger's clock).
    pub issued_at: i64,
    /// The last second it covers a new job (Unix seconds).
    pub not_after: i64,
    /// The ledger's clock when it answered (Unix seconds).
    pub server_time: i64,
    /// The key that signed it.
    pub key_id: String,
    /// The Ed25519 signature of [`Allowance::signed_message`], base64url without padding.
    pub signature: String,
}

/// Why an allowance is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowanceRefusal {
    /// A field out of its bounds or of the wrong form.
    #[error("the allowance is malformed: {0}")]
    Malformed(&'static str),
    /// Signed by a key that is not pinned.
    #[error("the allowance is signed by a key that is not pinned")]
    UnknownKey,
    /// The signature does not match the fields (a changed file, a forged grant).
    #[error("the allowance's signature does not match it")]
    BadSignature,
    /// Issued to another account.
    #[error("the allowance is another account's")]
    OtherAccount,
    /// Issued for another device.
    #[error("the allowance is another device's")]
    OtherDevice,
    /// Past its `not_after`.
    #[error("the allowance has expired")]
    Expired,
}

/// The public keys an app trusts, by `key_id` (from its configuration, never from the network).
#[derive(Clone, Default)]
pub struct PinnedKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl std::fmt::Debug for PinnedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("PinnedKeys").field("key_ids", &ids).finish()
    }
}

impl PinnedKeys {
    /// Keys from `(key_id, public key)` pairs, each key 32 bytes in base64url (padding allowed),
    /// at most [`MAX_PINNED_KEYS`]; a malformed or weak key is refused.
    pub fn from_base64<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, AllowanceRefusal> {
        let mut pinned = HashMap::new();
        for (key_id, public_key) in keys {
            check_key_id(key_id)?;
            let bytes = URL_SAFE_NO_PAD
                .decode(public_key.trim_end_matches('='))
                .map_err(|_| AllowanceRefusal::Malformed("a public key is not base64url"))?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| AllowanceRefusal::Malformed("a public key is not 32 bytes"))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| AllowanceRefusal::Malformed("a public key is not on the curve"))?;
            if key.is_weak() {
                return Err(AllowanceRefusal::Malformed("a public key is weak"));
            }
            pinned.insert(key_id.to_owned(), key);
            if pinned.len() > MAX_PINNED_KEYS {
                return Err(AllowanceRefusal::Malformed("too many pinned keys"));
            }
        }
        Ok(Self { keys: pinned })
    }

    /// Whether no key is pinned (offline work is then off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Allowance {
    /// The bytes the ledger signed.
    pub fn signed_message(&self) -> Vec<u8> {
        format!(
            "{SIGNED_PREFIX}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.allowance_id,
            self.user_id,
            self.device_id,
            self.points,
            self.issued_at,
            self.not_after,
            self.server_time,
            self.key_id
        )
        .into_bytes()
    }

    /// Checks the fields' forms and the signature against `keys`.
    pub fn verify(&self, keys: &PinnedKeys) -> Result<(), AllowanceRefusal> {
        check_uuid(&self.allowance_id)?;
        check_uuid(&self.user_id)?;
        check_device_id(&self.device_id)?;
        check_key_id(&self.key_id)?;
        if !(0..=crate::client::wire::MAX_AMOUNT).contains(&self.points) {
            return Err(AllowanceRefusal::Malformed("points out of bounds"));
        }
        if self.not_after < self.issued_at || self.issued_at < 0 || self.server_time < 0 {
            return Err(AllowanceRefusal::Malformed("times out of order"));
        }
        let key = keys
            .keys
            .get(&self.key_id)
            .ok_or(AllowanceRefusal::UnknownKey)?;
        let signature = URL_SAFE_NO_PAD
            .decode(&self.signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .ok_or(AllowanceRefusal::BadSignature)?;
        key.verify_strict(&self.signed_message(), &Signature::from_bytes(&signature))
            .map_err(|_| AllowanceRefusal::BadSignature)
    }

    /// Checks it (see [`Allowance::verify`]) and that it is `user_id`'s, for `device_id`, and
    /// covers the time `now` (Unix seconds, from a clock that cannot be turned back).
    pub fn check_for(
        &self,
        keys: &PinnedKeys,
        user_id: &str,
        device_id: &str,
        now: i64,
    ) -> Result<(), AllowanceRefusal> {
        self.verify(keys)?;
        if !self.user_id.eq_ignore_ascii_case(user_id) {
            return Err(AllowanceRefusal::OtherAccount);
        }
        if self.device_id != device_id {
            return Err(AllowanceRefusal::OtherDevice);
        }
        if now > self.not_after {
            return Err(AllowanceRefusal::Expired);
        }
        Ok(())
    }
}

fn check_uuid(id: &str) -> Result<(), AllowanceRefusal> {
    let valid = id.len() == 36
        && uuid::Uuid::parse_str(id).is_ok()
        && id
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then_some(()).ok_or(AllowanceRefusal::Malformed(
        "an id is not a lowercase hyphenated UUID",
    ))
}

/// Checks a device id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn check_device_id(id: &str) -> Result<(), AllowanceRefusal> {
    let valid = (1..=MAX_DEVICE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    valid.then_some(()).ok_or(AllowanceRefusal::Malformed(
        "a device id is not 1-128 of [A-Za-z0-9._:-]",
    ))
}

fn check_key_id(id: &str) -> Result<(), AllowanceRefusal> {
    let valid = (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    valid.then_some(()).ok_or(AllowanceRefusal::Malformed(
        "a key id is not 1-64 of [A-Za-z0-9._-]",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const USER: &str = "6f1c2a4e-8b1d-4c5e-9f00-1234567890ab";

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn pinned(key: &SigningKey, key_id: &str) -> PinnedKeys {
        let public = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        PinnedKeys::from_base64([(key_id, public.as_str())]).unwrap()
    }

    fn signed(key: &SigningKey) -> Allowance {
        let mut allowance = Allowance {
            allowance_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            user_id: USER.into(),
            device_id: "desk-1".into(),
            points: 15,
            issued_at: 1_764_650_000,
            not_after: 1_764_650_000 + 72 * 3600,
            server_time: 1_764_650_000,
            key_id: "k1".into(),
            signature: String::new(),
        };
        allowance.signature =
            URL_SAFE_NO_PAD.encode(key.sign(&allowance.signed_message()).to_bytes());
        allowance
    }

    #[test]
    fn the_signed_message_is_the_fields_in_order() {
        let allowance = signed(&signing_key(1));
        assert_eq!(
            String::from_utf8(allowance.signed_message()).unwrap(),
            format!("points-allowance/v1\n0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\n{USER}\ndesk-1\n15\n1764650000\n1764909200\n1764650000\nk1")
        );
    }

    #[test]
    fn a_signed_allowance_verifies_and_any_changed_field_does_not() {
        let key = signing_key(1);
        let keys = pinned(&key, "k1");
        let allowance = signed(&key);
        assert_eq!(allowance.verify(&keys), Ok(()));
        let changes: [fn(&mut Allowance); 7] = [
            |a| a.points += 1,
            |a| a.not_after += 1,
            |a| a.issued_at -= 1,
            |a| a.server_time += 1,
            |a| a.device_id = "desk-2".into(),
            |a| a.user_id = "6f1c2a4e-8b1d-4c5e-9f00-1234567890ac".into(),
            |a| a.allowance_id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c".into(),
        ];
        for change in changes {
            let mut changed = allowance.clone();
            change(&mut changed);
            assert_eq!(changed.verify(&keys), Err(AllowanceRefusal::BadSignature));
        }
        let mut other_key = allowance.clone();
        other_key.key_id = "k2".into();
        assert_eq!(other_key.verify(&keys), Err(AllowanceRefusal::UnknownKey));
        assert_eq!(
            allowance.verify(&pinned(&signing_key(2), "k1")),
            Err(AllowanceRefusal::BadSignature),
            "signed by another key under the same id"
        );
    }

    #[test]
    fn it_covers_only_its_account_its_device_and_its_time() {
        let key = signing_key(1);
        let keys = pinned(&key, "k1");
        let allowance = signed(&key);
        let now = allowance.issued_at + 10;
        assert_eq!(allowance.check_for(&keys, USER, "desk-1", now), Ok(()));
        assert_eq!(
            allowance.check_for(&keys, "0b5e9d7c-0000-4000-8000-000000000001", "desk-1", now),
            Err(AllowanceRefusal::OtherAccount)
        );
        assert_eq!(
            allowance.check_for(&keys, USER, "desk-2", now),
            Err(AllowanceRefusal::OtherDevice)
        );
        assert_eq!(
            allowance.check_for(&keys, USER, "desk-1", allowance.not_after + 1),
            Err(AllowanceRefusal::Expired)
        );
    }

    #[test]
    fn malformed_fields_and_keys_are_refused() {
        let key = signing_key(1);
        let keys = pinned(&key, "k1");
        let mut allowance = signed(&key);
        allowance.device_id = "desk|1".into();
        assert!(matches!(
            allowance.verify(&keys),
            Err(AllowanceRefusal::Malformed(_))
        ));
        assert!(PinnedKeys::from_base64([("k1", "not base64!")]).is_err());
        assert!(PinnedKeys::from_base64([("k1", "AAAA")]).is_err());
        assert!(PinnedKeys::from_base64([("bad id", "AAAA")]).is_err());
        let weak = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert!(PinnedKeys::from_base64([("k1", weak.as_str())]).is_err());
    }
}
