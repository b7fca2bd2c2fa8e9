//! Sealed values: the serialisable form of a sealed field ([`SealedValue`], which goes inside
//! event JSON), what opening one gives ([`Opened`]), and the AEAD of data keys with the
//! associated data that binds subject, field and key id.

use crate::key_ref::Algorithm;
use crate::master::KEY_BYTES;
use crate::VaultError;
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;
use std::fmt;
use zeroize::Zeroizing;

/// The format version this build writes and reads.
pub const SEALED_FORMAT_VERSION: u32 = 1;
/// Bytes of the authentication tag (both algorithms).
const TAG_BYTES: usize = 16;
/// Domain separation of a sealed value's associated data.
const SEAL_AAD_PREFIX: &[u8] = b"dynamoi-vault/v1/seal\0";

/// A sealed field, as it is stored inside an event's JSON:
///
/// ```json
/// {"version":1,"algorithm":"xchacha20poly1305","key_id":"person:p-1#1.9f3c2a7be01d4c55",
///  "nonce":"…base64…","ciphertext":"…base64 (ciphertext and tag)…"}
/// ```
///
/// Nothing in it is secret. It opens only for the subject and field it was sealed for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedValue {
    /// Format version, 1.
    pub version: u32,
    /// The AEAD: `xchacha20poly1305` or `aes256gcm`.
    pub algorithm: Algorithm,
    /// The data key's id, `<subject>#<generation>.<16 hex>`.
    pub key_id: String,
    /// The nonce, base64 (24 bytes for XChaCha20-Poly1305, 12 for AES-256-GCM).
    pub nonce: String,
    /// The ciphertext followed by its 16-byte tag, base64.
    pub ciphertext: String,
}

/// What opening a sealed value gives: the plaintext, or `Erased` when its key was destroyed
/// (crypto-shredded). `Debug` never prints the plaintext.
pub enum Opened<T = Zeroizing<Vec<u8>>> {
    /// The plaintext, wiped from memory when dropped.
    Plain(T),
    /// The key is gone: the value is unreadable for good.
    Erased,
}

impl<T> Opened<T> {
    /// Whether the value was erased.
    pub fn is_erased(&self) -> bool {
        matches!(self, Opened::Erased)
    }

    /// The plaintext, unless erased.
    pub fn plain(self) -> Option<T> {
        match self {
            Opened::Plain(value) => Some(value),
            Opened::Erased => None,
        }
    }

    /// The plaintext by reference, unless erased.
    pub fn as_plain(&self) -> Option<&T> {
        match self {
            Opened::Plain(value) => Some(value),
            Opened::Erased => None,
        }
    }
}

impl<T> fmt::Debug for Opened<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opened::Plain(_) => f.write_str("Plain(<redacted>)"),
            Opened::Erased => f.write_str("Erased"),
        }
    }
}

/// An unwrapped data key with what it belongs to. The material is wiped when the last
/// reference (the cache's or an operation's) is dropped.
pub(crate) struct DataKey {
    pub key_id: String,
    pub subject: String,
    pub algorithm: Algorithm,
    pub key: Zeroizing<[u8; KEY_BYTES]>,
}

/// The associated data of a sealed value: subject, field, key id and algorithm, each
/// length-prefixed so no two different tuples give the same bytes.
fn seal_aad(subject: &str, field: &str, key_id: &str, algorithm: Algorithm) -> Vec<u8> {
    let mut aad = SEAL_AAD_PREFIX.to_vec();
    for part in [subject, field, key_id, algorithm.as_str()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// Seals `plaintext` for `field` with `key`.
pub(crate) fn seal(key: &DataKey, field: &str, plaintext: &[u8]) -> SealedValue {
    let mut nonce = vec![0u8; key.algorithm.nonce_len()];
    rand::rng().fill_bytes(&mut nonce);
    let aad = seal_aad(&key.subject, field, &key.key_id, key.algorithm);
    // Room for the tag up front, so the buffer holding the plaintext is never reallocated.
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_BYTES));
    buffer.extend_from_slice(plaintext);
    let encrypted =
        match key.algorithm {
            Algorithm::XChaCha20Poly1305 => XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.key[..]))
                .encrypt_in_place(chacha20poly1305::XNonce::from_slice(&nonce), &aad, &mut *buffer),
            Algorithm::Aes256Gcm => Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key.key[..]))
                .encrypt_in_place(aes_gcm::Nonce::from_slice(&nonce), &aad, &mut *buffer),
        };
    encrypted.expect("encrypting into a growable buffer only fails past the AEAD's message limit");
    SealedValue {
        version: SEALED_FORMAT_VERSION,
        algorithm: key.algorithm,
        key_id: key.key_id.clone(),
        nonce: BASE64.encode(&nonce),
        ciphertext: BASE64.encode(&*buffer),
    }
}

/// Decodes a sealed value's nonce and ciphertext; `Integrity` when they are not well formed.
pub(crate) fn decode(sealed: &SealedValue) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
    let integrity = || VaultError::Integrity {
        key_id: sealed.key_id.clone(),
    };
    let nonce = BASE64.decode(&sealed.nonce).map_err(|_| integrity())?;
    let ciphertext = BASE64.decode(&sealed.ciphertext).map_err(|_| integrity())?;
    if nonce.len() != sealed.algorithm.nonce_len() || ciphertext.len() < TAG_BYTES {
        return Err(integrity());
    }
    Ok((nonce, ciphertext))
}

/// Opens a decoded sealed value with `key`; `Integrity` when it was altered or belongs to
/// another subject, field or key.
pub(crate) fn open(
    key: &DataKey,
    field: &str,
    nonce: &[u8],
    ciphertext: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let aad = seal_aad(&key.subject, field, &key.key_id, key.algorithm);
    let mut buffer = Zeroizing::new(ciphertext);
    let decrypted =
        match key.algorithm {
            Algorithm::XChaCha20Poly1305 => XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.key[..]))
                .decrypt_in_place(chacha20poly1305::XNonce::from_slice(nonce), &aad, &mut *buffer),
            Algorithm::Aes256Gcm => Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key.key[..]))
                .decrypt_in_place(aes_gcm::Nonce::from_slice(nonce), &aad, &mut *buffer),
        };
    decrypted.map_err(|_| VaultError::Integrity {
        key_id: key.key_id.clone(),
    })?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algorithm: Algorithm) -> DataKey {
        DataKey {
            key_id: "person:p1#1.0123456789abcdef".into(),
            subject: "person:p1".into(),
            algorithm,
            key: Zeroizing::new([9; KEY_BYTES]),
        }
    }

    #[test]
    fn both_algorithms_round_trip_and_refuse_another_field() {
        for algorithm in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
            let key = key(algorithm);
            let sealed = seal(&key, "email", b"ada@example.test");
            assert_eq!(sealed.algorithm, algorithm);
            let (nonce, ciphertext) = decode(&sealed).unwrap();
            assert_eq!(nonce.len(), algorithm.nonce_len());
            assert_eq!(
                &**open(&key, "email", &nonce, ciphertext.clone()).unwrap(),
                b"ada@example.test"
            );
            assert!(matches!(
                open(&key, "name", &nonce, ciphertext),
                Err(VaultError::Integrity { .. })
            ));
        }
    }

    #[test]
    fn the_serialised_form_names_version_algorithm_key_nonce_and_ciphertext() {
        let sealed = seal(&key(Algorithm::Aes256Gcm), "access_token", b"t");
        let json = serde_json::to_value(&sealed).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["algorithm"], "aes256gcm");
        assert_eq!(json["key_id"], "person:p1#1.0123456789abcdef");
        let back: SealedValue = serde_json::from_value(json).unwrap();
        assert_eq!(back, sealed);
    }

    #[test]
    fn an_opened_value_never_shows_its_plaintext_in_debug_output() {
        let opened: Opened = Opened::Plain(Zeroizing::new(b"secret".to_vec()));
        assert_eq!(format!("{opened:?}"), "Plain(<redacted>)");
    }
}
