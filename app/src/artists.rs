//! Artist profiles and teams (P7, P13, P16): create, read, members, invitations (sent by email
//! through the `invitation_mailer` workflow), accepting, revoking, removing. Every
//! artist-scoped use case checks the caller's role in the `artist_access` read model
//! ([`authorize`]): a stranger gets not-found (whether the artist exists is not revealed), a
//! member without the permission forbidden; neither says anything about the artist.
//!
//! Invitation tokens are `<artist id>.<HMAC-SHA256 of the artist and invitation ids>` under a
//! secret derived from the JWT secret: only their SHA-256 is stored, the workflow can still put
//! the token in the email it sends, and accepting needs no read model (the artist id it starts
//! with names the stream whose invitations the hash is matched against). The invitee's email is
//! sealed under its own key, destroyed when the invitation ends, so the address serves nothing
//! else (P13).

use crate::error::corrupt;
use crate::{App, AppError, Call, Caller, Role};
use base64::Engine as _;
use domain::artist::{ArtistCommand, ArtistError, ArtistEvent, ArtistProfile, Permission, Role as TeamRole};
use eventlog::CommandError;
use projections::read_models::artist_access;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vault::KeyRef;

/// The vault subject under which an invitee's email is sealed; destroyed when the invitation
/// ends, so the address serves nothing else (P13).
pub fn invitee_key(invitation_id: &str) -> KeyRef {
    KeyRef::person(format!("invitee.{invitation_id}"))
}

/// The single-use token of an invitation (see the module docs).
pub fn invitation_token(secret: &[u8], artist_id: &str, invitation_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"dynamoi invitation token\n");
    mac.update(artist_id.as_bytes());
    mac.update(b"\n");
    mac.update(invitation_id.as_bytes());
    let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{artist_id}.{mac}")
}

/// The secret invitation tokens are derived with, itself derived from the JWT secret.
pub fn invitation_secret(jwt_secret: &str) -> secrecy::SecretString {
    secrecy::SecretString::from(hex::encode(Sha256::digest(
        format!("dynamoi invitations\n{jwt_secret}").as_bytes(),
    )))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The caller's role on `artist` from `artist_access`.
pub async fn role_on(app: &App, artist: &str, person: &str) -> Result<Option<TeamRole>, AppError> {
    let role = artist_access::role_of(app.log.db(), artist, person).await?;
    Ok(role.and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok()))
}

/// Checks that the caller (a person) holds `permission` on `artist`, after the read model has
/// applied `min_position` and, when it does not know the caller on the artist, the artist's own
/// latest event (so a command right after the artist's creation never answers 404): not-found for strangers and unknown artists alike, forbidden for
/// members whose role lacks it.
pub async fn authorize(
    app: &App,
    caller: &Caller,
    artist: &str,
    permission: Permission,
    min_position: Option<&str>,
) -> Result<TeamRole, AppError> {
    caller.require(&[Role::Person])?;
    app.wait_for("artist_access", min_position).await?;
    let mut role = role_on(app, artist, &caller.subject).await?;
    if role.is_none() {
        // The read model may not have applied the artist's latest event yet (a command right
        // after the artist's creation): wait, bounded, until it has, then look again.
        let stream = app.log.load(<ArtistProfile as domain::Aggregate>::TYPE, artist).await?;
        if let Some(last) = stream.last() {
            let _ = app
                .engine
                .wait_for("artist_access", last.position, app.config.consistency_wait)
                .await?;
            role = role_on(app, artist, &caller.subject).await?;
        }
    }
    match role {
        None => Err(AppError::NotFound("no such artist".into())),
        Some(role) if role.allows(permission) => Ok(role),
        Some(_) => Err(AppError::Forbidden("your role does not allow this".into())),
    }
}

fn artist_error(error: CommandError<ArtistError>) -> AppError {
    match error {
        CommandError::Rejected(rule) => match rule {
            ArtistError::NotAnAdmin => AppError::Forbidden("your role does not allow this".into()),
            ArtistError::NoProfile => AppError::NotFound("no such artist".into()),
            ArtistError::InvitationNotValid => AppError::NotFound(rule.to_string()),
            ArtistError::NoSuchInvitation | ArtistError::NotAMember => AppError::NotFound(rule.to_string()),
            ArtistError::InvalidName => AppError::Validation(rule.to_string()),
            _ => AppError::Conflict(rule.to_string()),
        },
        CommandError::Log(log) => log.into(),
    }
}

/// A command's answer: its consistency token, and what it created.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Done {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artist_id: Option<String>,
    pub position: Option<String>,
}

/// What creating an artist takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub name: String,
    #[serde(default)]
    pub spotify_artist_id: Option<String>,
}

/// Creates an artist owned by the calling person.
pub async fn create(app: &App, call: &Call, request: CreateRequest) -> Result<Done, AppError> {
    let caller = &call.caller;
    caller.require(&[Role::Person])?;
    crate::restriction::ensure_may_process(&app.log, &caller.subject).await?;
    if let Some(id) = &request.spotify_artist_id {
        if !crate::extension::is_spotify_id(id) {
            return Err(AppError::Validation(
                "spotify_artist_id must be 22 base62 characters".into(),
            ));
        }
    }
    let artist_id = uuid::Uuid::now_v7().to_string();
    let command = ArtistCommand::Create {
        owner: caller.subject.clone(),
        name: request.name,
        spotify_artist_id: request.spotify_artist_id,
    };
    let outcome = app
        .log
        .execute::<ArtistProfile>(&artist_id, command, &call.metadata())
        .await
        .map_err(artist_error)?;
    Ok(Done {
        artist_id: Some(artist_id),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// An artist as its members see it.
#[derive(Clone, Debug, Serialize)]
pub struct ArtistView {
    pub artist_id: String,
    pub name: String,
    pub spotify_artist_id: Option<String>,
    pub owner: String,
    pub your_role: TeamRole,
}

/// The artist, for a member who may view it.
pub async fn show(app: &App, call: &Call, artist: &str, min_position: Option<&str>) -> Result<ArtistView, AppError> {
    let role = authorize(app, &call.caller, artist, Permission::View, min_position).await?;
    let row = artist_access::artist(app.log.db(), artist)
        .await?
        .ok_or_else(|| AppError::NotFound("no such artist".into()))?;
    Ok(ArtistView {
        artist_id: artist.to_string(),
        name: row.name,
        spotify_artist_id: row.spotify_artist_id,
        owner: row.owner,
        your_role: role,
    })
}

/// One member of a team.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub person_id: String,
    pub role: String,
}

/// The artist's members with their roles, for a member who may view it.
pub async fn members(
    app: &App,
    call: &Call,
    artist: &str,
    min_position: Option<&str>,
) -> Result<Vec<Member>, AppError> {
    authorize(app, &call.caller, artist, Permission::View, min_position).await?;
    Ok(artist_access::members(app.log.db(), artist)
        .await?
        .into_iter()
        .map(|(person_id, role)| Member { person_id, role })
        .collect())
}

/// What inviting someone takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub email: String,
    pub role: TeamRole,
}

/// An invitation as created.
#[derive(Clone, Debug, Serialize)]
pub struct Invited {
    pub invitation_id: String,
    pub role: TeamRole,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub position: Option<String>,
}

/// Invites someone by email to the artist's team (an admin's act); the email goes out through
/// the `invitation_mailer` workflow.
pub async fn invite(
    app: &App,
    call: &Call,
    artist: &str,
    min_position: Option<&str>,
    request: InviteRequest,
) -> Result<Invited, AppError> {
    authorize(app, &call.caller, artist, Permission::ManageTeam, min_position).await?;
    let email = request.email.trim();
    let parts: Vec<&str> = email.split('@').collect();
    if email.len() > 254 || parts.len() != 2 || parts[0].is_empty() || !parts[1].contains('.') || email.contains(' ') {
        return Err(AppError::Validation(
            "email must be an address such as name@example.com".into(),
        ));
    }
    let invitation_id = uuid::Uuid::now_v7().simple().to_string();
    let sealed = app
        .vault
        .seal(&invitee_key(&invitation_id), "email", email.as_bytes())
        .await?;
    let token = invitation_token(
        secrecy::ExposeSecret::expose_secret(&app.config.invitation_secret).as_bytes(),
        artist,
        &invitation_id,
    );
    let command = ArtistCommand::Invite {
        by: call.caller.subject.clone(),
        invitation_id: invitation_id.clone(),
        email: domain::sealed::Sealed(serde_json::to_value(sealed).map_err(|_| corrupt("a sealed email"))?),
        role: request.role,
        token_sha256: token_hash(&token),
        now: app.now(),
    };
    let outcome = app
        .log
        .execute::<ArtistProfile>(artist, command, &call.metadata())
        .await
        .map_err(artist_error)?;
    let expires_at = outcome.events.iter().find_map(|e| match e {
        ArtistEvent::MemberInvited { expires_at, .. } => Some(*expires_at),
        _ => None,
    });
    Ok(Invited {
        invitation_id,
        role: request.role,
        expires_at,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// Revokes an open invitation (an admin's act); the invitee's address is destroyed at once.
pub async fn revoke(
    app: &App,
    call: &Call,
    artist: &str,
    invitation: &str,
    min_position: Option<&str>,
) -> Result<Done, AppError> {
    authorize(app, &call.caller, artist, Permission::ManageTeam, min_position).await?;
    let command = ArtistCommand::Revoke {
        by: call.caller.subject.clone(),
        invitation_id: invitation.to_string(),
    };
    let outcome = app
        .log
        .execute::<ArtistProfile>(artist, command, &call.metadata())
        .await
        .map_err(artist_error)?;
    // The address has served its one purpose.
    app.vault.destroy(&invitee_key(invitation), "invitation_ended").await?;
    Ok(Done {
        artist_id: None,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// Removes a member from the team (an admin's act).
pub async fn remove_member(
    app: &App,
    call: &Call,
    artist: &str,
    person: &str,
    min_position: Option<&str>,
) -> Result<Done, AppError> {
    authorize(app, &call.caller, artist, Permission::ManageTeam, min_position).await?;
    let command = ArtistCommand::RemoveMember {
        by: call.caller.subject.clone(),
        person_id: person.to_string(),
    };
    let outcome = app
        .log
        .execute::<ArtistProfile>(artist, command, &call.metadata())
        .await
        .map_err(artist_error)?;
    Ok(Done {
        artist_id: None,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// Accepts an invitation with its token: the calling person joins the team with the invited
/// role, and the invitee's address is destroyed at once. Any token that does not match an open,
/// unexpired invitation is not-found, whatever the reason.
pub async fn accept(app: &App, call: &Call, token: &str) -> Result<Done, AppError> {
    let caller = &call.caller;
    caller.require(&[Role::Person])?;
    crate::restriction::ensure_may_process(&app.log, &caller.subject).await?;
    let token = token.trim();
    let not_valid = || AppError::NotFound(ArtistError::InvitationNotValid.to_string());
    let artist = token
        .split_once('.')
        .map(|(artist, _)| artist)
        .filter(|a| !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .ok_or_else(not_valid)?;
    let command = ArtistCommand::Accept {
        person_id: caller.subject.clone(),
        token_sha256: token_hash(token),
        now: app.now(),
    };
    let outcome = app
        .log
        .execute::<ArtistProfile>(artist, command, &call.metadata())
        .await
        .map_err(|e| match e {
            CommandError::Rejected(ArtistError::NoProfile) => not_valid(),
            other => artist_error(other),
        })?;
    let invitation_id = outcome.events.iter().find_map(|e| match e {
        ArtistEvent::InvitationAccepted { invitation_id, .. } => Some(invitation_id.clone()),
        _ => None,
    });
    if let Some(invitation_id) = invitation_id {
        app.vault
            .destroy(&invitee_key(&invitation_id), "invitation_ended")
            .await?;
    }
    Ok(Done {
        artist_id: Some(artist.to_string()),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// The `invitation_mailer` workflow (P7, P13): each invitation is one item (`<artist>:<invitation
/// id>`), emailed through Resend exactly once. Before sending, the artist's stream says whether
/// the email was recorded as sent already (`InvitationEmailSent`) and whether the invitation is
/// still open; the email goes with the idempotency key `invitation-<id>`, so a crash between
/// sending and recording makes the retry a repeat that Resend answers without sending again.
pub struct InvitationEmails;

#[async_trait::async_trait]
impl crate::workflows::Workflow for InvitationEmails {
    fn name(&self) -> &'static str {
        // The checkpoint name of the outbox this workflow replaced, so it resumes where that stopped.
        "invitation_mailer"
    }

    fn select(&self, event: &eventlog::StoredEvent) -> Vec<eventlog::workflow::NewItem> {
        use domain::Aggregate;
        if event.aggregate_type != ArtistProfile::TYPE || event.event_type != "MemberInvited" {
            return Vec::new();
        }
        match event.decode::<ArtistEvent>() {
            Ok(ArtistEvent::MemberInvited { invitation_id, .. }) => vec![crate::workflows::item(
                format!("{}:{invitation_id}", event.aggregate_id),
                &serde_json::Value::Null,
            )],
            _ => Vec::new(),
        }
    }

    fn blocked(&self, app: &App) -> Option<String> {
        app.platforms
            .resend
            .is_none()
            .then(|| "Resend is not configured (DYNAMOI_RESEND_API_KEY): invitation emails wait, unsent".to_string())
    }

    async fn handle(&self, app: &App, item: &eventlog::workflow::Item) -> Result<String, String> {
        let (artist, invitation) = item
            .item
            .split_once(':')
            .ok_or_else(|| format!("the item `{}` names no invitation", item.item))?;
        send_invitation(app, artist, invitation)
            .await
            .map_err(|e| e.to_string())
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Sends one invitation's email, unless it was sent already or the invitation ended.
async fn send_invitation(app: &App, artist_id: &str, invitation_id: &str) -> Result<String, AppError> {
    use connectors::resend::EmailMessage;
    use domain::disclosure::{DataCategory, Processor, Purpose};
    use domain::Aggregate;
    use secrecy::ExposeSecret;
    use vault::{Opened, SealedValue};
    let resend = app
        .platforms
        .resend
        .as_ref()
        .ok_or_else(|| AppError::Upstream("Resend is not configured (DYNAMOI_RESEND_API_KEY)".into()))?;
    let events = app.log.load(ArtistProfile::TYPE, artist_id).await?;
    let mut artist = ArtistProfile::default();
    let mut invited = None;
    for stored in &events {
        let event = stored.decode::<ArtistEvent>().map_err(|_| corrupt("an artist event"))?;
        if let ArtistEvent::MemberInvited {
            invitation_id: id,
            email,
            by,
            ..
        } = &event
        {
            if id == invitation_id {
                invited = Some((email.clone(), by.clone(), stored.event_id));
            }
        }
        artist.apply(event);
    }
    let Some((email, by, invited_event)) = invited else {
        return Ok("no such invitation".into());
    };
    if !artist.invitation_awaits_email(invitation_id) {
        return Ok("sent already, or the invitation ended".into());
    }
    let sealed: SealedValue = serde_json::from_value(email.0).map_err(|_| corrupt("a sealed invitee email"))?;
    let address = match app
        .vault
        .open_string(&invitee_key(invitation_id), "email", &sealed)
        .await?
    {
        Opened::Plain(address) => address,
        // The invitation ended and its address was erased: there is nobody to write to.
        Opened::Erased => return Ok("the invitee's address was erased".into()),
    };
    let token = invitation_token(
        app.config.invitation_secret.expose_secret().as_bytes(),
        artist_id,
        invitation_id,
    );
    let link = format!(
        "{}/invitations/accept?token={token}",
        app.config.app_base_url.trim_end_matches('/')
    );
    let name = artist.name();
    let message = EmailMessage {
        from: app.config.email_from.clone(),
        to: vec![address.to_string()],
        subject: format!("You are invited to join {name} on dynamoi"),
        html: format!(
            "<p>You have been invited to join the team of <strong>{}</strong> on dynamoi.</p>\
             <p><a href=\"{link}\">Accept the invitation</a> (valid for 7 days).</p>",
            html_escape(name)
        ),
        text: format!(
            "You have been invited to join the team of {name} on dynamoi.\nAccept (valid for 7 days): {link}\n"
        ),
    };
    // P17: recorded under the inviter, who gave us the address (the invitee has no account).
    let metadata = eventlog::EventMetadata {
        actor: "service:invitation_mailer".into(),
        request_id: None,
        causation_id: Some(invited_event.to_string()),
    };
    crate::disclosure::record(
        &app.log,
        &by,
        Processor::Resend,
        &[DataCategory::EmailAddress, DataCategory::ArtistName],
        Purpose::InvitationEmail,
        Some(invitation_id),
        &metadata,
    )
    .await?;
    let provider_message_id = resend
        .send_email(&message, &format!("invitation-{invitation_id}"))
        .await
        .map_err(|e| AppError::Upstream(format!("Resend: {e}")))?;
    app.log
        .execute::<ArtistProfile>(
            artist_id,
            ArtistCommand::RecordInvitationEmailSent {
                invitation_id: invitation_id.to_string(),
                provider_message_id,
            },
            &metadata,
        )
        .await
        .map_err(artist_error)?;
    Ok(format!("invitation {invitation_id} emailed"))
}
