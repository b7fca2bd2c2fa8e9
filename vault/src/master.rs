//! Master keys: the [`MasterKeyring`] that wraps and unwraps dynamoi's data keys. Master keys
//! never live in the database; they come from a file or an environment variable, in the same
//! text format:
//!
//! ```text
//! # comments and blank lines are allowed
//! k2026b 5f0c…(64 lowercase hex digits)…
//! k2026a 9a41…
//! ```
//!
//! One key per line (or per `;`-separated entry in a variable): a short id (1 to 32 characters
//! of `A-Z a-z 0-9 _ . -`) and 256 bits as 64 lowercase hex digits. The **first** key is the
//! current one, which wraps new keys; the others only unwrap, for the time a rotation runs.
//!
//! Wrapping is XChaCha20-Poly1305 with a random 24-byte nonce and the data key's id as
//! associated data, so a wrapped key copied onto another key's row does not unwrap.

use crate::VaultError;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Bytes of a master key and of a data key (256 bits).
pub const KEY_BYTES: usize = 32;
/// Bytes of the nonce of a wrapped key.
const WRAP_NONCE_BYTES: usize = 24;
/// Bytes of a Poly1305 tag.
const TAG_BYTES: usize = 16;
/// Domain separation of the wrapping's associated data (then the key id).
const WRAP_AAD_PREFIX: &[u8] = b"dynamoi-vault/v1/wrap\0";
/// The longest master key id.
const MAX_ID_LEN: usize = 32;

/// One master key. Its material sits in [`Zeroizing`], wiped when dropped.
#[derive(Clone)]
struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_BYTES]>,
}

/// One or more 256-bit master keys; the first is current. `Debug` prints the ids only.
#[derive(Clone)]
pub struct MasterKeyring {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for MasterKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyring")
            .field("current", &self.current_id())
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a keyring could not be loaded. Messages name the file and the line (or entry), never
/// the line's text, so a key is never echoed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file could not be read.
    #[error("cannot read the master keyring file {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The development key file could not be created.
    #[error("cannot create the development master key file {}", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not `<id> <64 lowercase hex digits>`.
    #[error("{origin}, {location}: {problem}")]
    Malformed {
        origin: String,
        location: String,
        problem: &'static str,
    },
    /// Two keys have the same id.
    #[error("{origin}: master key id `{id}` appears more than once")]
    DuplicateId { origin: String, id: String },
    /// No key at all.
    #[error("{origin} holds no master key")]
    Empty { origin: String },
    /// A generated key was given an id outside the id character set.
    #[error("a master key id is 1 to 32 characters of A-Z, a-z, 0-9, `_`, `.` or `-`")]
    InvalidId,
}

/// A data key wrapped by the current master key, as stored in `vault_keys`.
pub(crate) struct WrappedKey {
    pub master_key_id: String,
    pub nonce: Vec<u8>,
    pub wrapped: Vec<u8>,
}

const MALFORMED_SHAPE: &str = "expected `<id> <64 lowercase hex digits>`";
const MALFORMED_ID: &str = "the key id must be 1 to 32 characters of A-Z, a-z, 0-9, `_`, `.` or `-`";
const MALFORMED_HEX: &str = "the key must be exactly 64 lowercase hexadecimal digits (256 bits)";

impl MasterKeyring {
    /// A keyring of one fresh random key named `id` (tests, tooling, the development file).
    pub fn generate(id: &str) -> Result<MasterKeyring, KeyringError> {
        if !valid_id(id) {
            return Err(KeyringError::InvalidId);
        }
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(&mut *key);
        Ok(MasterKeyring {
            keys: vec![MasterKey {
                id: id.to_string(),
                key,
            }],
        })
    }

    /// Parses keyring text (an environment variable's content): entries separated by
    /// newlines or `;`, `#` starting a comment. Errors name entries by number.
    pub fn parse(text: &str) -> Result<MasterKeyring, KeyringError> {
        MasterKeyring::parse_named("the master keyring text", text)
    }

    /// [`MasterKeyring::parse`], naming the text's origin (a variable's name) in errors.
    pub fn parse_named(origin: &str, text: &str) -> Result<MasterKeyring, KeyringError> {
        parse(origin, text, false)
    }

    /// Loads a keyring file (one key per line; errors name the line number).
    pub fn from_file(path: impl AsRef<Path>) -> Result<MasterKeyring, KeyringError> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| KeyringError::Read {
            path: path.to_path_buf(),
            source,
        })?);
        warn_if_readable_by_others(path);
        parse(&path.display().to_string(), &text, true)
    }

    /// Loads the development keyring file at `path`, first creating it with one random key
    /// (mode 0600) when it does not exist. Warns loudly every time: anyone who can read the
    /// file can read every person's data. An existing file is never overwritten, even when it
    /// is malformed (that would lose every key it wraps).
    pub fn load_or_create_dev(path: impl AsRef<Path>) -> Result<MasterKeyring, KeyringError> {
        let path = path.as_ref();
        tracing::warn!(
            path = %path.display(),
            "no master key is configured: using a DEVELOPMENT master key stored in plain text on disk. \
             Anyone who can read this file can read every person's data. Never run like this in production."
        );
        match create_dev_file(path) {
            Ok(id) => {
                tracing::warn!(path = %path.display(), master_key_id = %id, "created a DEVELOPMENT master key file")
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(KeyringError::Create {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        MasterKeyring::from_file(path)
    }

    /// This keyring's keys followed by `older`'s: what a service runs with during a rotation
    /// (the new key first, so it wraps; the old one after it, so it still unwraps). An id in
    /// both is kept once when it is the same key; two different keys with one id are refused.
    pub fn followed_by(&self, older: &MasterKeyring) -> Result<MasterKeyring, KeyringError> {
        let mut keys = self.keys.clone();
        for key in &older.keys {
            match keys.iter().find(|k| k.id == key.id) {
                Some(existing) if *existing.key == *key.key => {}
                Some(_) => {
                    return Err(KeyringError::DuplicateId {
                        origin: "the combined keyring".into(),
                        id: key.id.clone(),
                    })
                }
                None => keys.push(key.clone()),
            }
        }
        Ok(MasterKeyring { keys })
    }

    /// The id of the current key, the one that wraps.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Whether a key of this id is in the ring.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Wraps `data_key` (whose id is `key_id`) with the current master key.
    pub(crate) fn wrap(&self, key_id: &str, data_key: &[u8; KEY_BYTES]) -> WrappedKey {
        let current = &self.keys[0];
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&current.key[..]));
        let mut nonce = [0u8; WRAP_NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        // Room for the tag up front, so the buffer holding the key is never reallocated.
        let mut buffer = Zeroizing::new(Vec::with_capacity(KEY_BYTES + TAG_BYTES));
        buffer.extend_from_slice(data_key);
        cipher
            .encrypt_in_place(XNonce::from_slice(&nonce), &wrap_aad(key_id), &mut *buffer)
            .expect("encrypting 32 bytes into a growable buffer cannot fail");
        WrappedKey {
            master_key_id: current.id.clone(),
            nonce: nonce.to_vec(),
            wrapped: std::mem::take(&mut *buffer),
        }
    }

    /// Unwraps the data key `key_id` wrapped by master key `master_key_id`.
    pub(crate) fn unwrap(
        &self,
        key_id: &str,
        master_key_id: &str,
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_BYTES]>, VaultError> {
        let master = self
            .keys
            .iter()
            .find(|k| k.id == master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey {
                key_id: key_id.to_string(),
                master_key_id: master_key_id.to_string(),
            })?;
        let integrity = || VaultError::KeyIntegrity {
            key_id: key_id.to_string(),
        };
        if nonce.len() != WRAP_NONCE_BYTES || wrapped.len() != KEY_BYTES + TAG_BYTES {
            return Err(integrity());
        }
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&master.key[..]));
        let mut buffer = Zeroizing::new(wrapped.to_vec());
        cipher
            .decrypt_in_place(XNonce::from_slice(nonce), &wrap_aad(key_id), &mut *buffer)
            .map_err(|_| integrity())?;
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        key.copy_from_slice(&buffer);
        Ok(key)
    }
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    [WRAP_AAD_PREFIX, key_id.as_bytes()].concat()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Parses keyring text. `by_line`: errors say `line N` (a file), else `entry N` (a variable).
fn parse(origin: &str, text: &str, by_line: bool) -> Result<MasterKeyring, KeyringError> {
    let mut keys: Vec<MasterKey> = Vec::new();
    let mut entry_number = 0;
    for (line_index, line) in text.lines().enumerate() {
        let content = line.split_once('#').map_or(line, |(before, _)| before);
        for entry in content.split(';') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            entry_number += 1;
            let malformed = |problem| KeyringError::Malformed {
                origin: origin.to_string(),
                location: if by_line {
                    format!("line {}", line_index + 1)
                } else {
                    format!("entry {entry_number}")
                },
                problem,
            };
            let mut parts = entry.split_whitespace();
            let (Some(id), Some(hex_key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(malformed(MALFORMED_SHAPE));
            };
            if !valid_id(id) {
                return Err(malformed(MALFORMED_ID));
            }
            if hex_key.len() != 2 * KEY_BYTES || !hex_key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(malformed(MALFORMED_HEX));
            }
            let mut key = Zeroizing::new([0u8; KEY_BYTES]);
            hex::decode_to_slice(hex_key, &mut key[..]).map_err(|_| malformed(MALFORMED_HEX))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyringError::DuplicateId {
                    origin: origin.to_string(),
                    id: id.to_string(),
                });
            }
            keys.push(MasterKey {
                id: id.to_string(),
                key,
            });
        }
    }
    if keys.is_empty() {
        return Err(KeyringError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(MasterKeyring { keys })
}

/// Creates the development key file; `AlreadyExists` when there is one. Returns the key id.
fn create_dev_file(path: &Path) -> std::io::Result<String> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut file = create_private(path)?;
    let mut suffix = [0u8; 4];
    rand::rng().fill_bytes(&mut suffix);
    let id = format!("dev-{}", hex::encode(suffix));
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    rand::rng().fill_bytes(&mut *key);
    let mut text = Zeroizing::new(String::with_capacity(256));
    text.push_str("# dynamoi DEVELOPMENT master key: it protects every person's data in this database.\n");
    text.push_str("# Never use it in production; losing it makes all sealed data unreadable.\n");
    text.push_str(&id);
    text.push(' ');
    text.push_str(&Zeroizing::new(hex::encode(&key[..])));
    text.push('\n');
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    if let Err(error) = written {
        // A half-written key file would be refused at every start; leave none.
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    Ok(id)
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the master keyring file is accessible to other users; make it mode 0600");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HEX_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let path = std::env::temp_dir().join(format!("dynamoi-vault-test-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_keyring_file_has_comments_blank_lines_and_its_first_key_is_current() {
        let dir = TempDir::new();
        let path = dir.0.join("keys");
        std::fs::write(
            &path,
            format!("# rotation in progress\n\nk2 {HEX_B}  # new\nk1 {HEX_A}\n"),
        )
        .unwrap();
        let ring = MasterKeyring::from_file(&path).unwrap();
        assert_eq!(ring.current_id(), "k2");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
    }

    #[test]
    fn an_environment_value_may_separate_keys_with_semicolons() {
        let ring = MasterKeyring::parse(&format!("k2 {HEX_B}; k1 {HEX_A};")).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k1"]);
    }

    #[test]
    fn a_malformed_line_is_named_by_number_without_echoing_the_key() {
        let dir = TempDir::new();
        let path = dir.0.join("keys");
        let short = &HEX_B[..63];
        let upper = HEX_B.to_uppercase();
        for (bad, problem) in [
            (format!("k2 {short}"), MALFORMED_HEX),
            (format!("k2 {upper}"), MALFORMED_HEX),
            (format!("k2 {HEX_B} extra"), MALFORMED_SHAPE),
            (HEX_B.to_string(), MALFORMED_SHAPE),
            (format!("k:2 {HEX_B}"), MALFORMED_ID),
        ] {
            std::fs::write(&path, format!("k1 {HEX_A}\n{bad}\n")).unwrap();
            let error = MasterKeyring::from_file(&path).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("line 2"), "{message}");
            assert!(message.contains(problem), "{message}");
            for secret in [HEX_A, HEX_B, short, &upper, &HEX_B[..16], &HEX_A[..16]] {
                assert!(!message.contains(secret), "the error echoes key material: {message}");
                assert!(
                    !format!("{error:?}").contains(secret),
                    "the error's Debug echoes key material"
                );
            }
        }
    }

    #[test]
    fn duplicate_ids_and_empty_rings_are_refused() {
        let error = MasterKeyring::parse(&format!("k1 {HEX_A}\nk1 {HEX_B}")).unwrap_err();
        assert!(matches!(error, KeyringError::DuplicateId { .. }));
        let error = MasterKeyring::parse_named("DYNAMOI_MASTER_KEYS", "# nothing\n").unwrap_err();
        assert_eq!(error.to_string(), "DYNAMOI_MASTER_KEYS holds no master key");
    }

    #[test]
    fn debug_output_shows_ids_and_never_key_material() {
        let ring = MasterKeyring::parse(&format!("k2 {HEX_B}\nk1 {HEX_A}")).unwrap();
        let debug = format!("{ring:?}");
        assert!(debug.contains("k2") && debug.contains("k1"), "{debug}");
        assert!(!debug.contains(&HEX_B[..8]) && !debug.contains("255"), "{debug}");
    }

    #[test]
    fn a_wrapped_key_unwraps_only_under_its_own_key_id() {
        let ring = MasterKeyring::parse(&format!("k1 {HEX_A}")).unwrap();
        let data_key = [7u8; KEY_BYTES];
        let wrapped = ring.wrap("person:p1#1.0123456789abcdef", &data_key);
        assert_eq!(wrapped.master_key_id, "k1");
        let unwrapped = ring
            .unwrap("person:p1#1.0123456789abcdef", "k1", &wrapped.nonce, &wrapped.wrapped)
            .unwrap();
        assert_eq!(*unwrapped, data_key);
        let moved = ring.unwrap("person:p2#1.0123456789abcdef", "k1", &wrapped.nonce, &wrapped.wrapped);
        assert!(matches!(moved, Err(VaultError::KeyIntegrity { .. })));
        let unknown = ring.unwrap("person:p1#1.0123456789abcdef", "k9", &wrapped.nonce, &wrapped.wrapped);
        assert!(matches!(unknown, Err(VaultError::UnknownMasterKey { .. })));
    }

    #[test]
    fn a_combined_ring_wraps_with_the_new_key_and_unwraps_with_both() {
        let old = MasterKeyring::parse(&format!("old {HEX_A}")).unwrap();
        let new = MasterKeyring::parse(&format!("new {HEX_B}")).unwrap();
        let wrapped_by_old = old.wrap("k#1.0123456789abcdef", &[1; KEY_BYTES]);
        let both = new.followed_by(&old).unwrap();
        assert_eq!(both.current_id(), "new");
        assert!(both
            .unwrap(
                "k#1.0123456789abcdef",
                "old",
                &wrapped_by_old.nonce,
                &wrapped_by_old.wrapped
            )
            .is_ok());
        assert_eq!(both.wrap("k#1.0123456789abcdef", &[1; KEY_BYTES]).master_key_id, "new");
        let clash = MasterKeyring::parse(&format!("old {HEX_B}")).unwrap();
        assert!(new.followed_by(&old).unwrap().followed_by(&clash).is_err());
        assert_eq!(both.followed_by(&old).unwrap().ids().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn the_development_key_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new();
        let path = dir.0.join("data").join("dev-master-key");
        let first = MasterKeyring::load_or_create_dev(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = MasterKeyring::load_or_create_dev(&path).unwrap();
        assert_eq!(first.current_id(), second.current_id());
        assert!(first.current_id().starts_with("dev-"));
        let wrapped = first.wrap("k#1.0123456789abcdef", &[3; KEY_BYTES]);
        let key = second
            .unwrap(
                "k#1.0123456789abcdef",
                &wrapped.master_key_id,
                &wrapped.nonce,
                &wrapped.wrapped,
            )
            .unwrap();
        assert_eq!(*key, [3; KEY_BYTES]);
    }

    #[test]
    fn a_malformed_development_key_file_is_refused_and_never_replaced() {
        let dir = TempDir::new();
        let path = dir.0.join("dev-master-key");
        std::fs::write(&path, "dev-1 not-a-key\n").unwrap();
        assert!(MasterKeyring::load_or_create_dev(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "dev-1 not-a-key\n");
    }
}
