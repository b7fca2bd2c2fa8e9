//! Personal values at the edge of the application: the checks every personal field goes through
//! (person ids, free text, emails, avatar URLs) and sealing and opening with the person's key.
//! A sealed value never leaves the vault's format; a destroyed key opens as `None`.

use crate::error::corrupt;
use crate::AppError;
use domain::sealed::Sealed;
use vault::{KeyRef, Opened, SealedValue, Vault};

/// A person id as the vault accepts it: the auth provider's user id.
pub fn person_id(raw: &str) -> Result<String, AppError> {
    let ok =
        !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(AppError::Validation(
            "person_id must be 1 to 128 letters, digits, `_`, `.` or `-`".into(),
        ))
    }
}

/// Seals one personal field of `key`'s subject.
pub async fn seal(vault: &Vault, key: &KeyRef, field: &str, plaintext: &str) -> Result<Sealed, AppError> {
    let sealed = vault.seal(key, field, plaintext.as_bytes()).await?;
    Ok(Sealed(
        serde_json::to_value(sealed).map_err(|_| corrupt("a sealed value"))?,
    ))
}

/// Opens a sealed field (as stored in a read model) for display: `None` when its key was destroyed.
pub async fn open(vault: &Vault, key: &KeyRef, field: &str, sealed_json: &str) -> Result<Option<String>, AppError> {
    let sealed: SealedValue = serde_json::from_str(sealed_json).map_err(|_| corrupt("a sealed value"))?;
    match vault.open_string(key, field, &sealed).await? {
        Opened::Plain(text) => Ok(Some(text.to_string())),
        Opened::Erased => Ok(None),
    }
}

/// Checks a free-text field: 1 to `max` characters, no control characters.
pub fn bounded(field: &str, value: &str, max: usize) -> Result<(), AppError> {
    let chars = value.trim().chars().count();
    if chars == 0 || chars > max || value.chars().any(char::is_control) {
        return Err(AppError::Validation(format!("{field} must be 1 to {max} characters")));
    }
    Ok(())
}

/// Checks an email address's shape.
pub fn valid_email(email: &str) -> Result<(), AppError> {
    bounded("email", email, 254)?;
    let parts: Vec<&str> = email.split('@').collect();
    if parts.len() != 2 || parts[0].is_empty() || !parts[1].contains('.') || email.contains(' ') {
        return Err(AppError::Validation(
            "email must be an address such as name@example.com".into(),
        ));
    }
    Ok(())
}

/// Checks an avatar URL: https only.
pub fn valid_avatar(url: &str) -> Result<(), AppError> {
    bounded("avatar_url", url, 2048)?;
    if !url.starts_with("https://") {
        return Err(AppError::Validation("avatar_url must be an https:// URL".into()));
    }
    Ok(())
}
