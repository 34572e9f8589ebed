//! Idempotency keys: one per charge, reused on every retry and replay of that charge.

use std::fmt;

use crate::Error;

/// A valid `Idempotency-Key`: 1 to 255 characters, printable ASCII without space (0x21–0x7E).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key the contract allows.
    pub const MAX_LEN: usize = 255;

    /// A fresh random key (UUID v4).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// A caller-given key, such as a job id; refused with [`Error::InvalidArgument`] unless valid.
    pub fn parse(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        if key.is_empty() || key.len() > Self::MAX_LEN {
            return Err(Error::invalid_argument(
                "idempotencyKey",
                "must be 1 to 255 characters long",
            ));
        }
        if !key.bytes().all(|byte| (0x21..=0x7e).contains(&byte)) {
            return Err(Error::invalid_argument(
                "idempotencyKey",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self(key))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_are_valid_and_distinct() {
        let first = IdempotencyKey::random();
        assert!(IdempotencyKey::parse(first.as_str()).is_ok());
        assert_ne!(first, IdempotencyKey::random());
    }

    #[test]
    fn keys_are_checked_for_length_and_characters() {
        assert!(IdempotencyKey::parse("job-42/render#1").is_ok());
        assert!(IdempotencyKey::parse("x".repeat(255)).is_ok());
        for bad in [
            String::new(),
            "x".repeat(256),
            "has space".into(),
            "tab\t".into(),
            "é".into(),
            "\u{7f}".into(),
        ] {
            assert!(
                matches!(IdempotencyKey::parse(bad.clone()), Err(Error::InvalidArgument { ref field, .. }) if field == "idempotencyKey"),
                "{bad:?}"
            );
        }
    }
}
