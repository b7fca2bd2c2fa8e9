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
use std::str::FromStr;

/// What a caller may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A signed-in artist or team member.
    Person,
    /// Staff acting on people's behalf (publishing policies, requests).
    Support,
    /// Reads consent histories and audit trails.
    Auditor,
    /// Another backend service (ingestion, auth-provider hooks).
    Service,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Person => "person",
            Role::Support => "support",
            Role::Auditor => "auditor",
            Role::Service => "service",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "person" => Ok(Role::Person),
            "support" => Ok(Role::Support),
            "auditor" => Ok(Role::Auditor),
            "service" => Ok(Role::Service),
            _ => Err(format!("`{s}` is not a role: use person, support, auditor or service")),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The subject: the auth provider's user id, or a service name.
    pub subject: String,
    pub role: Role,
}

impl Caller {
    /// The actor recorded in event metadata, e.g. `support:3f2…`.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.subject)
    }

    /// Refuses the call unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<String> = roles.iter().map(Role::to_string).collect();
            Err(ApiError::Forbidden(format!(
                "this action needs the role {}",
                names.join(" or ")
            )))
        }
    }
}

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

/// Verifies and mints tokens with one secret.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    audience: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(secret: &SecretString, audience: &str) -> Authenticator {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.leeway = 30;
        Authenticator {
            decoding: DecodingKey::from_secret(key),
            encoding: EncodingKey::from_secret(key),
            validation,
            audience: audience.to_string(),
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
        let now = chrono::Utc::now().timestamp().max(0) as u64;
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

    fn auth() -> Authenticator {
        Authenticator::new(
            &SecretString::from("a-test-secret-of-at-least-32-characters!"),
            "authenticated",
        )
    }

    #[test]
    fn a_minted_token_authenticates_with_its_role() {
        let a = auth();
        for role in [Role::Person, Role::Support, Role::Auditor, Role::Service] {
            let token = a.mint("user-1", role, 60).unwrap();
            let caller = a.authenticate(Some(&format!("Bearer {token}"))).unwrap();
            assert_eq!(
                caller,
                Caller {
                    subject: "user-1".into(),
                    role
                }
            );
        }
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = Authenticator::new(
            &SecretString::from("another-secret-of-at-least-32-characters"),
            "authenticated",
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

    #[test]
    fn a_role_check_names_the_roles_needed() {
        let caller = Caller {
            subject: "u".into(),
            role: Role::Person,
        };
        let error = caller.require(&[Role::Support]).unwrap_err();
        assert_eq!(error.to_string(), "this action needs the role support");
    }
}
