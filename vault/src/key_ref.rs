//! What a data key belongs to ([`KeyRef`], its subject text), which algorithm it uses
//! ([`Algorithm`]), and the key id scheme (`<subject>#<generation>.<16 hex>`).

use crate::VaultError;
use std::fmt;
use std::str::FromStr;

/// The longest person, connection or purpose id accepted.
const MAX_ID_LEN: usize = 128;
/// The longest purpose accepted.
const MAX_PURPOSE_LEN: usize = 64;
/// Hex digits of the random part of a key id (64 bits).
const SUFFIX_HEX_LEN: usize = 16;

/// The AEAD a data key is used with. Serialised (in [`crate::SealedValue`]) and stored (in
/// `vault_keys.algorithm`) as `xchacha20poly1305` or `aes256gcm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// XChaCha20-Poly1305 (24-byte random nonces): personal data.
    #[serde(rename = "xchacha20poly1305")]
    XChaCha20Poly1305,
    /// AES-256-GCM (12-byte random nonces): platform tokens, as the privacy policy promises.
    #[serde(rename = "aes256gcm")]
    Aes256Gcm,
}

impl Algorithm {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::XChaCha20Poly1305 => "xchacha20poly1305",
            Algorithm::Aes256Gcm => "aes256gcm",
        }
    }

    /// The length of this algorithm's nonce in bytes.
    pub fn nonce_len(self) -> usize {
        match self {
            Algorithm::XChaCha20Poly1305 => 24,
            Algorithm::Aes256Gcm => 12,
        }
    }

    /// The algorithm of a stored name.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "xchacha20poly1305" => Some(Algorithm::XChaCha20Poly1305),
            "aes256gcm" => Some(Algorithm::Aes256Gcm),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a data key belongs to: its subject. Each subject has at most one live key at a time
/// (the one [`crate::Vault::seal`] uses); destroying it lets a later key of a new generation
/// be created (a reconnected platform connection, say).
///
/// Person and connection ids are 1 to 128 characters of `A-Z a-z 0-9 _ . -` (opaque ids, never
/// an email address: they are written to the erasure ledger); purposes are 1 to 64 characters
/// of `a-z 0-9 _`. Operations check this and answer [`VaultError::InvalidKeyRef`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRef {
    /// A person's own data key (XChaCha20-Poly1305): their name, email, avatar URL, billing
    /// address. Destroying it erases the person.
    Person { person_id: String },
    /// A key for one purpose of a person's data (XChaCha20-Poly1305), erasable on its own
    /// (consent withdrawn for `ad_attribution`, say); also destroyed with the person.
    Purpose { person_id: String, purpose: String },
    /// A platform connection's key (AES-256-GCM): its refresh and access tokens. Destroyed on
    /// disconnect; a reconnect gets a key of a new generation.
    Connection { connection_id: String },
}

impl KeyRef {
    /// The key of a person.
    pub fn person(person_id: impl Into<String>) -> KeyRef {
        KeyRef::Person {
            person_id: person_id.into(),
        }
    }

    /// The key of one purpose of a person's data.
    pub fn purpose(person_id: impl Into<String>, purpose: impl Into<String>) -> KeyRef {
        KeyRef::Purpose {
            person_id: person_id.into(),
            purpose: purpose.into(),
        }
    }

    /// The key of a platform connection.
    pub fn connection(connection_id: impl Into<String>) -> KeyRef {
        KeyRef::Connection {
            connection_id: connection_id.into(),
        }
    }

    /// The subject text: `person:<id>`, `purpose:<person id>:<purpose>` or `connection:<id>`.
    /// It is `vault_keys.key_ref`, the start of every key id, and part of every sealed value's
    /// associated data.
    pub fn subject(&self) -> String {
        self.to_string()
    }

    /// The algorithm of this kind of key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            KeyRef::Person { .. } | KeyRef::Purpose { .. } => Algorithm::XChaCha20Poly1305,
            KeyRef::Connection { .. } => Algorithm::Aes256Gcm,
        }
    }

    /// The person this key belongs to, for person and purpose keys.
    pub fn person_id(&self) -> Option<&str> {
        match self {
            KeyRef::Person { person_id } | KeyRef::Purpose { person_id, .. } => Some(person_id),
            KeyRef::Connection { .. } => None,
        }
    }

    /// Checks every component against its character set and length.
    pub fn validate(&self) -> Result<(), VaultError> {
        match self {
            KeyRef::Person { person_id } => validate_id(person_id),
            KeyRef::Purpose { person_id, purpose } => {
                validate_id(person_id)?;
                validate_purpose(purpose)
            }
            KeyRef::Connection { connection_id } => validate_id(connection_id),
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Person { person_id } => write!(f, "person:{person_id}"),
            KeyRef::Purpose { person_id, purpose } => write!(f, "purpose:{person_id}:{purpose}"),
            KeyRef::Connection { connection_id } => write!(f, "connection:{connection_id}"),
        }
    }
}

impl FromStr for KeyRef {
    type Err = VaultError;

    /// Parses a subject text (the inverse of [`KeyRef::subject`]), validated.
    fn from_str(subject: &str) -> Result<KeyRef, VaultError> {
        let key_ref = if let Some(id) = subject.strip_prefix("person:") {
            KeyRef::person(id)
        } else if let Some(rest) = subject.strip_prefix("purpose:") {
            let (person_id, purpose) = rest.split_once(':').ok_or(VaultError::InvalidKeyRef(
                "a purpose subject is `purpose:<person id>:<purpose>`",
            ))?;
            KeyRef::purpose(person_id, purpose)
        } else if let Some(id) = subject.strip_prefix("connection:") {
            KeyRef::connection(id)
        } else {
            return Err(VaultError::InvalidKeyRef(
                "a subject starts with `person:`, `purpose:` or `connection:`",
            ));
        };
        key_ref.validate()?;
        Ok(key_ref)
    }
}

fn validate_id(id: &str) -> Result<(), VaultError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidKeyRef(
            "person and connection ids are 1 to 128 characters of A-Z, a-z, 0-9, `_`, `.` or `-`",
        ))
    }
}

fn validate_purpose(purpose: &str) -> Result<(), VaultError> {
    let ok = !purpose.is_empty()
        && purpose.len() <= MAX_PURPOSE_LEN
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidKeyRef(
            "a purpose is 1 to 64 characters of a-z, 0-9 or `_`",
        ))
    }
}

/// A new key id for generation `generation` of `subject`: `<subject>#<generation>.<16 hex>`.
/// The generation orders a subject's keys for people reading the ledger; the 64 random bits
/// make an id that was ever destroyed impossible to issue again, even if the erasure ledger
/// and the key table were restored from different points in time.
pub(crate) fn new_key_id(subject: &str, generation: i64) -> String {
    use rand::RngCore;
    let mut suffix = [0u8; SUFFIX_HEX_LEN / 2];
    rand::rng().fill_bytes(&mut suffix);
    format!("{subject}#{generation}.{}", hex::encode(suffix))
}

/// The subject and generation of a well-formed key id; `None` for anything else.
pub(crate) fn parse_key_id(key_id: &str) -> Option<(&str, i64)> {
    let (subject, rest) = key_id.rsplit_once('#')?;
    let (generation, suffix) = rest.split_once('.')?;
    let generation: i64 = generation.parse().ok()?;
    let suffix_ok = suffix.len() == SUFFIX_HEX_LEN && suffix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (generation >= 1 && suffix_ok && !subject.is_empty()).then_some((subject, generation))
}

/// Checks a field name: 1 to 64 characters of `A-Z a-z 0-9 _ . -`.
pub(crate) fn validate_field(field: &str) -> Result<(), VaultError> {
    let ok = !field.is_empty()
        && field.len() <= 64
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    ok.then_some(()).ok_or(VaultError::InvalidField)
}

/// Checks an erasure reason: a code, never free text (the ledger holds no personal data).
pub(crate) fn validate_reason(reason: &str) -> Result<(), VaultError> {
    let ok = !reason.is_empty()
        && reason.len() <= 64
        && reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    ok.then_some(()).ok_or(VaultError::InvalidReason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_through_their_text() {
        for key_ref in [
            KeyRef::person("p-1"),
            KeyRef::purpose("p-1", "ad_attribution"),
            KeyRef::connection("c.9"),
        ] {
            assert_eq!(key_ref.subject().parse::<KeyRef>().unwrap(), key_ref);
        }
    }

    #[test]
    fn ids_with_separators_or_at_signs_are_refused() {
        for bad in ["", "a:b", "a#b", "ada@example.test", "a b", "ä"] {
            assert!(KeyRef::person(bad).validate().is_err(), "{bad:?} was accepted");
        }
        assert!(KeyRef::purpose("p", "Ad").validate().is_err());
    }

    #[test]
    fn key_ids_carry_subject_and_generation_and_are_never_equal() {
        let a = new_key_id("connection:c1", 2);
        let b = new_key_id("connection:c1", 2);
        assert_ne!(a, b);
        assert!(a.starts_with("connection:c1#2."));
        assert_eq!(parse_key_id(&a), Some(("connection:c1", 2)));
        assert_eq!(parse_key_id("connection:c1#2"), None);
        assert_eq!(parse_key_id("connection:c1#0.0123456789abcdef"), None);
    }
}
