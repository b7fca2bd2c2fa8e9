//! Bearer-token authentication: HS256 JWTs with Supabase's claims (`sub`, `exp`, `aud`,
//! `role`), mapped to dynamoi's roles, and minting of development tokens.
//!
//! Supabase gives every signed-in user `role: "authenticated"` and server keys
//! `role: "service_role"`; staff roles travel in `app_metadata.dynamoi_role`. A token whose
//! `role` is itself one of ours (`person`, `support`, `auditor`, `service`) is accepted too.

use crate::ApiError;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;

pub use app::{Caller, Role};

#[derive(Debug, Serialize, Deserialize)]
struct AppMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dynamoi_role: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    aud: String,
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_metadata: Option<AppMetadata>,
}

/// Verifies and mints tokens with one secret; expiry is judged by the service's clock.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    audience: String,
    clock: clock::SharedClock,
}

/// Seconds a token may be past its `exp` and still pass (clocks drift).
const LEEWAY_SECONDS: u64 = 30;

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator judging expiry by the system clock.
    pub fn new(secret: &SecretString, audience: &str) -> Authenticator {
        Authenticator::with_clock(secret, audience, clock::system())
    }

    /// An authenticator judging expiry (and minting) by `clock`.
    pub fn with_clock(secret: &SecretString, audience: &str, clock: clock::SharedClock) -> Authenticator {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // Expiry is checked against the service's clock below, not the library's system time.
        validation.validate_exp = false;
        Authenticator {
            decoding: DecodingKey::from_secret(key),
            encoding: EncodingKey::from_secret(key),
            validation,
            audience: audience.to_string(),
            clock,
        }
    }

    /// The caller named by an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let header =
            authorization.ok_or_else(|| ApiError::Unauthorized("an Authorization: Bearer token is required".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?
            .trim();
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidAudience => "the token is for another audience",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (sub, exp, aud)",
                _ => "the token is malformed",
            };
            ApiError::Unauthorized(why.into())
        })?;
        let claims = data.claims;
        let now = self.clock.now().timestamp().max(0) as u64;
        if claims.exp.saturating_add(LEEWAY_SECONDS) < now {
            return Err(ApiError::Unauthorized("the token has expired".into()));
        }
        let staff_role = claims.app_metadata.and_then(|m| m.dynamoi_role);
        let role = match (claims.role.as_str(), staff_role.as_deref()) {
            ("service_role", _) | ("service", _) => Role::Service,
            (_, Some(staff)) => staff
                .parse()
                .map_err(|_| ApiError::Unauthorized("the token names an unknown dynamoi_role".into()))?,
            ("authenticated", None) | ("person", None) => Role::Person,
            ("support", None) => Role::Support,
            ("auditor", None) => Role::Auditor,
            _ => return Err(ApiError::Unauthorized("the token's role may not call this API".into())),
        };
        if claims.sub.is_empty() || claims.sub.len() > 128 {
            return Err(ApiError::Unauthorized(
                "the token's subject is empty or too long".into(),
            ));
        }
        Ok(Caller {
            subject: claims.sub,
            role,
        })
    }

    /// Mints a token as Supabase would shape it, valid for `ttl_seconds`.
    pub fn mint(&self, subject: &str, role: Role, ttl_seconds: u64) -> Result<String, jsonwebtoken::errors::Error> {
        let now = self.clock.now().timestamp().max(0) as u64;
        let (role_claim, staff) = match role {
            Role::Person => ("authenticated", None),
            Role::Service => ("service_role", None),
            Role::Support | Role::Auditor => ("authenticated", Some(role.to_string())),
        };
        let claims = Claims {
            sub: subject.to_string(),
            exp: now + ttl_seconds,
            iat: Some(now),
            aud: self.audience.clone(),
            role: role_claim.to_string(),
            app_metadata: staff.map(|r| AppMetadata { dynamoi_role: Some(r) }),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SECRET: &str = "a-test-secret-of-at-least-32-characters!";

    fn clock() -> Arc<clock::ManualClock> {
        clock::ManualClock::new("2026-11-30T12:00:00Z".parse().unwrap())
    }

    fn auth_at(clock: &Arc<clock::ManualClock>) -> Authenticator {
        Authenticator::with_clock(&SecretString::from(SECRET), "authenticated", clock.clone())
    }

    fn auth() -> Authenticator {
        auth_at(&clock())
    }

    #[test]
    fn a_minted_token_authenticates_with_its_role() {
        let a = auth();
        for role in [Role::Person, Role::Support, Role::Auditor, Role::Service] {
            let token = a.mint("user-1", role, 60).unwrap();
            let caller = a.authenticate(Some(&format!("Bearer {token}"))).unwrap();
            assert_eq!(caller, Caller::new("user-1", role));
        }
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = Authenticator::with_clock(
            &SecretString::from("another-secret-of-at-least-32-characters"),
            "authenticated",
            clock(),
        );
        let token = other.mint("user-1", Role::Support, 60).unwrap();
        let error = auth().authenticate(Some(&format!("Bearer {token}"))).unwrap_err();
        assert_eq!(error.to_string(), "the token's signature is not valid");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let a = auth();
        let claims = Claims {
            sub: "u".into(),
            exp: 1_000,
            iat: None,
            aud: "authenticated".into(),
            role: "authenticated".into(),
            app_metadata: None,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &a.encoding).unwrap();
        let error = a.authenticate(Some(&format!("Bearer {token}"))).unwrap_err();
        assert_eq!(error.to_string(), "the token has expired");
    }

    #[test]
    fn expiry_is_judged_by_the_service_clock_with_thirty_seconds_of_leeway() {
        let clock = clock();
        let a = auth_at(&clock);
        let token = a.mint("user-1", Role::Person, 60).unwrap();
        let header = format!("Bearer {token}");
        clock.advance(chrono::Duration::seconds(90));
        assert!(a.authenticate(Some(&header)).is_ok(), "within the leeway");
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            a.authenticate(Some(&header)).unwrap_err().to_string(),
            "the token has expired"
        );
    }

    #[test]
    fn a_missing_or_malformed_header_is_refused() {
        assert!(matches!(auth().authenticate(None), Err(ApiError::Unauthorized(_))));
        assert!(matches!(
            auth().authenticate(Some("Basic abc")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            auth().authenticate(Some("Bearer not.a.jwt")),
            Err(ApiError::Unauthorized(_))
        ));
    }
}
