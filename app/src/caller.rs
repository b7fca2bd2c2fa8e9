//! Who is asking: an authenticated [`Caller`] and its [`Role`]. The HTTP adapter authenticates
//! (bearer JWTs) and hands the caller to the use cases, which decide what it may do.

use crate::AppError;
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
    /// A caller acting as `role`.
    pub fn new(subject: impl Into<String>, role: Role) -> Caller {
        Caller {
            subject: subject.into(),
            role,
        }
    }

    /// The actor recorded in event metadata, e.g. `support:3f2…`.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.subject)
    }

    /// Refuses the call unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<String> = roles.iter().map(Role::to_string).collect();
            Err(AppError::Forbidden(format!(
                "this action needs the role {}",
                names.join(" or ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_check_names_the_roles_needed() {
        let caller = Caller::new("p-1", Role::Person);
        assert!(caller.require(&[Role::Person]).is_ok());
        let refused = caller.require(&[Role::Support, Role::Auditor]).unwrap_err();
        assert_eq!(refused.to_string(), "this action needs the role support or auditor");
        assert_eq!(caller.actor(), "person:p-1");
    }
}
