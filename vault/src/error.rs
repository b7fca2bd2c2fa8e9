//! The vault's one error type. Messages may name key ids, master key ids and subjects (they
//! are identifiers, also carried by tracing spans); they never carry key material, plaintext,
//! ciphertext or the text of a keyring line.

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A [`crate::KeyRef`] component is empty, too long or holds a character outside its set.
    #[error("invalid key reference: {0}")]
    InvalidKeyRef(&'static str),
    /// A field name is empty, too long or holds a character outside `A-Z a-z 0-9 _ . -`.
    #[error("invalid field name: 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` or `-`")]
    InvalidField,
    /// An erasure reason is not a short code (it goes into the personal-data-free ledger).
    #[error("invalid erasure reason: a code of 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `:` or `-`")]
    InvalidReason,
    /// The sealed value was altered, or it was sealed for another subject, field or key: it
    /// does not belong where it was found. Never reported for an erased key.
    #[error("a value sealed under key `{key_id}` failed its integrity check (altered, or moved to another subject or field)")]
    Integrity { key_id: String },
    /// The sealed value has a format version this build does not know.
    #[error("sealed-value format version {0} is not supported")]
    UnsupportedVersion(u32),
    /// A data key is wrapped by a master key the keyring does not hold.
    #[error("data key `{key_id}` is wrapped by master key `{master_key_id}`, which is not in the keyring")]
    UnknownMasterKey { key_id: String, master_key_id: String },
    /// Unwrapping a data key failed: its row was altered, or the keyring's key of that id is
    /// not the key it was wrapped with.
    #[error(
        "data key `{key_id}` could not be unwrapped: its row was altered or the master key of that id is another key"
    )]
    KeyIntegrity { key_id: String },
    /// A stored key row does not match its key id (subject or algorithm).
    #[error("the stored row of data key `{key_id}` is malformed")]
    CorruptKeyRow { key_id: String },
    /// The opened bytes are not UTF-8 ([`crate::Vault::open_string`]).
    #[error("the opened value is not UTF-8 text")]
    NotText,
    /// Rotation was asked of a vault whose current master key is not the new one: keys it
    /// creates meanwhile would be wrapped by the old key.
    #[error("rotation needs this vault's current master key to be the new one (`{new}`); it is `{current}`")]
    RotationNotReady { current: String, new: String },
    /// Data keys in the database are wrapped by master keys the keyring lacks (start-up check).
    #[error("data keys are wrapped by master keys missing from the keyring: {}", .ids.join(", "))]
    MissingMasterKeys { ids: Vec<String> },
    /// The key of a subject was destroyed or replaced again and again while it was being read.
    #[error("the data key of `{subject}` kept changing while it was being read; try again")]
    Contention { subject: String },
    /// The database refused or could not be reached.
    #[error("the vault's database failed")]
    Database(#[from] sqlx::Error),
}

impl VaultError {
    /// Whether the database could not be reached (as opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VaultError::Database(e) if eventlog::error::is_unreachable(e))
    }
}
