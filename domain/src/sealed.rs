//! [`Sealed`]: a personal field as events carry it, encrypted by the vault before the command
//! reaches the domain. The domain never sees plaintext personal data and never decrypts.

use serde::{Deserialize, Serialize};

/// An AEAD-sealed value (the vault's `SealedValue` JSON: format version, algorithm, key id,
/// nonce, ciphertext). Opaque here: the domain only stores and compares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub serde_json::Value);
