//! dynamoi's vault: it holds the keys, seals personal data and platform tokens, and erases
//! them by destroying keys (crypto-shredding), so the event log stays append-only and
//! replayable while an erased person's data becomes unreadable everywhere.
//!
//! **What it owns.** The master keyring ([`MasterKeyring`]: loaded from a file or an
//! environment variable, never stored in the database); the data keys, one live key per
//! subject ([`KeyRef`]: a person, one purpose of a person's data, a platform connection),
//! wrapped by the current master key in the `vault_keys` table; the erasure ledger
//! `vault_erasures` (destroyed key ids, a reason code, a time: no personal data); the sealed
//! value format ([`SealedValue`]); and all the SQL over those two tables (`store`), beside the
//! migrations `migrations/*/0004_vault.sql`.
//!
//! **What it must never do.** Log, return, display or put in an error any key material or
//! plaintext (errors and spans carry ids only; `Debug` of keyrings and opened values redacts);
//! store a master key in the database; open a value with a key that was destroyed (rows in
//! the ledger are deleted at start-up and whenever met), or issue a destroyed key id again;
//! report a tampered or moved value as erased (that is [`VaultError::Integrity`]); overwrite
//! an existing master key file; depend on warp or reqwest (it is a library of the service,
//! not an endpoint).
//!
//! **Algorithms.** Personal data (person and purpose keys): XChaCha20-Poly1305, random 24-byte
//! nonces. Platform tokens (connection keys): AES-256-GCM, random 12-byte nonces, because the
//! privacy policy promises AES-256-GCM for them (random nonces are sound for the few values
//! one connection's key seals). Key wrapping: XChaCha20-Poly1305 under the master key, the
//! key id as associated data. A sealed value's associated data binds the subject, the field
//! name, the key id and the algorithm, so a value copied into another person's event or
//! another field does not open.
//!
//! **Key ids** are `<subject>#<generation>.<16 random hex>`, e.g.
//! `connection:c-7#2.4f9a0c3be17d2a65`: the generation counts the subject's keys (a reconnect
//! after a destroy gets generation 2), the random part makes a destroyed id impossible to
//! issue again even if the ledger and the key table were restored from different times.
//!
//! **Start-up**: [`Vault::start`] re-applies the ledger and checks the keyring holds every
//! master key in use. **Rotation**: see [`Vault::rotate_in_batches`].
//!
//! Dependencies beyond the workspace's usual ones, one line each:
//! - `chacha20poly1305`: XChaCha20-Poly1305 for personal data and for wrapping data keys.
//! - `aes-gcm`: AES-256-GCM for platform tokens, as the privacy policy promises.
//! - `aes` (no code use; features only): turns on zeroize-on-drop of the AES key schedules
//!   inside `aes-gcm`.
//! - `zeroize`: wipes master keys, data keys and plaintext buffers when they are dropped.
//! - `base64`: nonce and ciphertext text inside event JSON.
//!
//! Layout: [`master`] (keyring, file format, wrapping), [`key_ref`] (subjects, algorithms, key
//! ids), [`sealed`] (sealed values and the AEAD), `cache` (unwrapped keys, zeroized on drop), `store` (SQL),
//! [`vault`] (the [`Vault`]), [`error`].

mod cache;
pub mod error;
pub mod key_ref;
pub mod master;
pub mod sealed;
mod store;
pub mod vault;

pub use cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL};
pub use error::VaultError;
pub use key_ref::{Algorithm, KeyRef};
pub use master::{KeyringError, MasterKeyring};
pub use sealed::{Opened, SealedValue, SEALED_FORMAT_VERSION};
pub use vault::{SealingKey, Vault, ROTATION_BATCH};
