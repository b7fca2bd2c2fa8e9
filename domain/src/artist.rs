//! Artist profiles and their teams (P7, P13, P16): an owner, members with a role, and
//! invitations. An invitation holds the invitee's email sealed (under a key of the invitation
//! itself, destroyed when the invitation ends) and only the hash of its single-use token; it
//! expires after 7 days.

use crate::sealed::Sealed;
use crate::{Aggregate, DomainEvent};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long an invitation can be accepted.
pub const INVITATION_LIFETIME_DAYS: i64 = 7;

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees dashboards and campaigns.
    Viewer,
    /// And runs campaigns.
    Manager,
    /// And manages the team and the profile.
    Admin,
}

/// What a role may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    View,
    ManageCampaigns,
    ManageTeam,
}

impl Role {
    pub fn allows(&self, permission: Permission) -> bool {
        match permission {
            Permission::View => true,
            Permission::ManageCampaigns => *self >= Role::Manager,
            Permission::ManageTeam => *self == Role::Admin,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

/// Commands of an artist profile. `by` is the person acting; `now` the service's clock.
#[derive(Clone, Debug, PartialEq)]
pub enum ArtistCommand {
    Create {
        owner: String,
        name: String,
        spotify_artist_id: Option<String>,
    },
    Invite {
        by: String,
        invitation_id: String,
        email: Sealed,
        role: Role,
        token_sha256: String,
        now: DateTime<Utc>,
    },
    Accept {
        person_id: String,
        token_sha256: String,
        now: DateTime<Utc>,
    },
    Revoke {
        by: String,
        invitation_id: String,
    },
    Expire {
        invitation_id: String,
        now: DateTime<Utc>,
    },
    RemoveMember {
        by: String,
        person_id: String,
    },
    RecordInvitationEmailSent {
        invitation_id: String,
        provider_message_id: String,
    },
}

/// Events of an artist profile (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ArtistEvent {
    ArtistCreated {
        owner: String,
        name: String,
        spotify_artist_id: Option<String>,
    },
    MemberInvited {
        invitation_id: String,
        by: String,
        email: Sealed,
        role: Role,
        token_sha256: String,
        expires_at: DateTime<Utc>,
    },
    InvitationEmailSent {
        invitation_id: String,
        provider_message_id: String,
    },
    InvitationAccepted {
        invitation_id: String,
        person_id: String,
        role: Role,
    },
    InvitationRevoked {
        invitation_id: String,
    },
    InvitationExpired {
        invitation_id: String,
    },
    MemberRemoved {
        person_id: String,
    },
}

impl DomainEvent for ArtistEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[
        ("ArtistCreated", 1),
        ("MemberInvited", 1),
        ("InvitationEmailSent", 1),
        ("InvitationAccepted", 1),
        ("InvitationRevoked", 1),
        ("InvitationExpired", 1),
        ("MemberRemoved", 1),
    ];

    fn event_type(&self) -> String {
        match self {
            ArtistEvent::ArtistCreated { .. } => "ArtistCreated",
            ArtistEvent::MemberInvited { .. } => "MemberInvited",
            ArtistEvent::InvitationEmailSent { .. } => "InvitationEmailSent",
            ArtistEvent::InvitationAccepted { .. } => "InvitationAccepted",
            ArtistEvent::InvitationRevoked { .. } => "InvitationRevoked",
            ArtistEvent::InvitationExpired { .. } => "InvitationExpired",
            ArtistEvent::MemberRemoved { .. } => "MemberRemoved",
        }
        .to_string()
    }
}

/// Why an artist command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArtistError {
    #[error("this artist profile already exists")]
    AlreadyExists,
    #[error("there is no such artist profile")]
    NoProfile,
    #[error("the name must be 1 to 200 characters")]
    InvalidName,
    #[error("only the artist's admins may do this")]
    NotAnAdmin,
    #[error("this invitation is not valid: it is unknown, used, revoked or expired")]
    InvitationNotValid,
    #[error("there is no open invitation with that id")]
    NoSuchInvitation,
    #[error("the invitation has not expired yet")]
    NotExpiredYet,
    #[error("the person is not a member")]
    NotAMember,
    #[error("the owner cannot be removed")]
    OwnerCannotBeRemoved,
    #[error("the person is already a member")]
    AlreadyMember,
}

#[derive(Debug, Clone, PartialEq)]
struct Invitation {
    role: Role,
    token_sha256: String,
    expires_at: DateTime<Utc>,
    open: bool,
    email_sent: bool,
}

/// The state of an artist profile.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ArtistProfile {
    owner: Option<String>,
    name: String,
    members: BTreeMap<String, Role>,
    invitations: BTreeMap<String, Invitation>,
}

impl ArtistProfile {
    /// The role of `person`, if a member (the owner is an admin).
    pub fn role_of(&self, person: &str) -> Option<Role> {
        self.members.get(person).copied()
    }

    /// The artist's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether invitation `id` is open and its email not yet sent: what the outbox asks.
    pub fn invitation_awaits_email(&self, id: &str) -> bool {
        self.invitations.get(id).is_some_and(|i| i.open && !i.email_sent)
    }

    fn require_admin(&self, by: &str) -> Result<(), ArtistError> {
        if self.owner.is_none() {
            return Err(ArtistError::NoProfile);
        }
        match self.role_of(by) {
            Some(role) if role.allows(Permission::ManageTeam) => Ok(()),
            _ => Err(ArtistError::NotAnAdmin),
        }
    }
}

impl Aggregate for ArtistProfile {
    const TYPE: &'static str = "artist";
    type Command = ArtistCommand;
    type Event = ArtistEvent;
    type Error = ArtistError;

    fn handle(&self, command: ArtistCommand) -> Result<Vec<ArtistEvent>, ArtistError> {
        match command {
            ArtistCommand::Create {
                owner,
                name,
                spotify_artist_id,
            } => {
                if self.owner.is_some() {
                    return Err(ArtistError::AlreadyExists);
                }
                let n = name.trim().chars().count();
                if n == 0 || n > 200 || name.chars().any(char::is_control) {
                    return Err(ArtistError::InvalidName);
                }
                Ok(vec![ArtistEvent::ArtistCreated {
                    owner,
                    name: name.trim().to_string(),
                    spotify_artist_id,
                }])
            }
            ArtistCommand::Invite {
                by,
                invitation_id,
                email,
                role,
                token_sha256,
                now,
            } => {
                self.require_admin(&by)?;
                Ok(vec![ArtistEvent::MemberInvited {
                    invitation_id,
                    by,
                    email,
                    role,
                    token_sha256,
                    expires_at: now + Duration::days(INVITATION_LIFETIME_DAYS),
                }])
            }
            ArtistCommand::Accept {
                person_id,
                token_sha256,
                now,
            } => {
                let (id, invitation) = self
                    .invitations
                    .iter()
                    .find(|(_, i)| i.token_sha256 == token_sha256)
                    .ok_or(ArtistError::InvitationNotValid)?;
                if !invitation.open || now >= invitation.expires_at {
                    return Err(ArtistError::InvitationNotValid);
                }
                if self.members.contains_key(&person_id) {
                    return Err(ArtistError::AlreadyMember);
                }
                Ok(vec![ArtistEvent::InvitationAccepted {
                    invitation_id: id.clone(),
                    person_id,
                    role: invitation.role,
                }])
            }
            ArtistCommand::Revoke { by, invitation_id } => {
                self.require_admin(&by)?;
                match self.invitations.get(&invitation_id) {
                    Some(i) if i.open => Ok(vec![ArtistEvent::InvitationRevoked { invitation_id }]),
                    _ => Err(ArtistError::NoSuchInvitation),
                }
            }
            ArtistCommand::Expire { invitation_id, now } => match self.invitations.get(&invitation_id) {
                Some(i) if i.open && now >= i.expires_at => Ok(vec![ArtistEvent::InvitationExpired { invitation_id }]),
                Some(i) if i.open => Err(ArtistError::NotExpiredYet),
                _ => Ok(vec![]),
            },
            ArtistCommand::RemoveMember { by, person_id } => {
                self.require_admin(&by)?;
                if self.owner.as_deref() == Some(person_id.as_str()) {
                    return Err(ArtistError::OwnerCannotBeRemoved);
                }
                if !self.members.contains_key(&person_id) {
                    return Err(ArtistError::NotAMember);
                }
                Ok(vec![ArtistEvent::MemberRemoved { person_id }])
            }
            ArtistCommand::RecordInvitationEmailSent {
                invitation_id,
                provider_message_id,
            } => match self.invitations.get(&invitation_id) {
                // Recorded once: a repeat (a retried outbox) changes nothing.
                Some(i) if !i.email_sent => Ok(vec![ArtistEvent::InvitationEmailSent {
                    invitation_id,
                    provider_message_id,
                }]),
                Some(_) => Ok(vec![]),
                None => Err(ArtistError::NoSuchInvitation),
            },
        }
    }

    fn apply(&mut self, event: ArtistEvent) {
        match event {
            ArtistEvent::ArtistCreated { owner, name, .. } => {
                self.name = name;
                self.members.insert(owner.clone(), Role::Admin);
                self.owner = Some(owner);
            }
            ArtistEvent::MemberInvited {
                invitation_id,
                role,
                token_sha256,
                expires_at,
                ..
            } => {
                self.invitations.insert(
                    invitation_id,
                    Invitation {
                        role,
                        token_sha256,
                        expires_at,
                        open: true,
                        email_sent: false,
                    },
                );
            }
            ArtistEvent::InvitationEmailSent { invitation_id, .. } => {
                if let Some(i) = self.invitations.get_mut(&invitation_id) {
                    i.email_sent = true;
                }
            }
            ArtistEvent::InvitationAccepted {
                invitation_id,
                person_id,
                role,
            } => {
                if let Some(i) = self.invitations.get_mut(&invitation_id) {
                    i.open = false;
                }
                self.members.insert(person_id, role);
            }
            ArtistEvent::InvitationRevoked { invitation_id } | ArtistEvent::InvitationExpired { invitation_id } => {
                if let Some(i) = self.invitations.get_mut(&invitation_id) {
                    i.open = false;
                }
            }
            ArtistEvent::MemberRemoved { person_id } => {
                self.members.remove(&person_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn created() -> ArtistEvent {
        ArtistEvent::ArtistCreated {
            owner: "owner".into(),
            name: "Ayesha".into(),
            spotify_artist_id: None,
        }
    }

    fn invited(role: Role) -> ArtistEvent {
        ArtistEvent::MemberInvited {
            invitation_id: "inv1".into(),
            by: "owner".into(),
            email: Sealed(serde_json::json!({"ct": "e"})),
            role,
            token_sha256: "hash".into(),
            expires_at: at("2026-01-08T00:00:00Z"),
        }
    }

    #[test]
    fn an_admin_invites_with_a_seven_day_expiry() {
        given::<ArtistProfile>(vec![created()])
            .when(ArtistCommand::Invite {
                by: "owner".into(),
                invitation_id: "inv1".into(),
                email: Sealed(serde_json::json!({"ct": "e"})),
                role: Role::Manager,
                token_sha256: "hash".into(),
                now: at("2026-01-01T00:00:00Z"),
            })
            .then_expect_events(vec![invited(Role::Manager)]);
    }

    #[test]
    fn only_admins_invite_or_remove() {
        let joined = ArtistEvent::InvitationAccepted {
            invitation_id: "inv1".into(),
            person_id: "m".into(),
            role: Role::Manager,
        };
        given::<ArtistProfile>(vec![created(), invited(Role::Manager), joined])
            .when(ArtistCommand::RemoveMember {
                by: "m".into(),
                person_id: "owner".into(),
            })
            .then_expect_error_message("only the artist's admins may do this");
    }

    #[test]
    fn an_invitation_is_accepted_once_and_not_after_expiry() {
        let accept = |now: &str| ArtistCommand::Accept {
            person_id: "p".into(),
            token_sha256: "hash".into(),
            now: at(now),
        };
        let joined = ArtistEvent::InvitationAccepted {
            invitation_id: "inv1".into(),
            person_id: "p".into(),
            role: Role::Viewer,
        };
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer)])
            .when(accept("2026-01-02T00:00:00Z"))
            .then_expect_events(vec![joined.clone()]);
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer), joined])
            .when(accept("2026-01-02T00:00:00Z"))
            .then_expect_error_message("this invitation is not valid: it is unknown, used, revoked or expired");
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer)])
            .when(accept("2026-01-08T00:00:00Z"))
            .then_expect_error_message("this invitation is not valid: it is unknown, used, revoked or expired");
    }

    #[test]
    fn a_revoked_invitation_cannot_be_accepted() {
        given::<ArtistProfile>(vec![
            created(),
            invited(Role::Viewer),
            ArtistEvent::InvitationRevoked {
                invitation_id: "inv1".into(),
            },
        ])
        .when(ArtistCommand::Accept {
            person_id: "p".into(),
            token_sha256: "hash".into(),
            now: at("2026-01-02T00:00:00Z"),
        })
        .then_expect_error_message("this invitation is not valid: it is unknown, used, revoked or expired");
    }

    #[test]
    fn an_invitation_expires_only_after_its_time() {
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer)])
            .when(ArtistCommand::Expire {
                invitation_id: "inv1".into(),
                now: at("2026-01-07T00:00:00Z"),
            })
            .then_expect_error_message("the invitation has not expired yet");
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer)])
            .when(ArtistCommand::Expire {
                invitation_id: "inv1".into(),
                now: at("2026-01-08T00:00:00Z"),
            })
            .then_expect_events(vec![ArtistEvent::InvitationExpired {
                invitation_id: "inv1".into(),
            }]);
    }

    #[test]
    fn the_invitation_email_is_recorded_as_sent_once() {
        let sent = ArtistEvent::InvitationEmailSent {
            invitation_id: "inv1".into(),
            provider_message_id: "re_1".into(),
        };
        let record = ArtistCommand::RecordInvitationEmailSent {
            invitation_id: "inv1".into(),
            provider_message_id: "re_1".into(),
        };
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer)])
            .when(record.clone())
            .then_expect_events(vec![sent.clone()]);
        given::<ArtistProfile>(vec![created(), invited(Role::Viewer), sent])
            .when(record)
            .then_expect_events(vec![]);
    }

    #[test]
    fn roles_carry_their_permissions() {
        assert!(Role::Viewer.allows(Permission::View));
        assert!(!Role::Viewer.allows(Permission::ManageCampaigns));
        assert!(Role::Manager.allows(Permission::ManageCampaigns));
        assert!(!Role::Manager.allows(Permission::ManageTeam));
        assert!(Role::Admin.allows(Permission::ManageTeam));
    }
}
