//! People (P2, P27): sign-up from the auth provider (the age gate first), the profile, its
//! rectification, closing one's account, and an account found to be a child's.
//!
//! Personal fields are sealed with the person's key before any command sees them, and opened
//! only to answer; a destroyed key shows them as erased (`None`, `erased: true`).

use crate::personal::{bounded, open, person_id, seal, valid_avatar, valid_email};
use crate::{App, AppError, Call, Role};
use chrono::NaiveDate;
use domain::account::{Account, AccountCommand, AccountError, AuthProvider, ChildReport};
use eventlog::CommandError;
use projections::read_models::accounts;
use serde::{Deserialize, Serialize};
use vault::KeyRef;

fn account_error(error: CommandError<AccountError>) -> AppError {
    match error {
        CommandError::Rejected(rule) => match rule {
            AccountError::AlreadySignedUp | AccountError::ChildAccount | AccountError::Closed => {
                AppError::Conflict(rule.to_string())
            }
            AccountError::NoAccount => AppError::NotFound(rule.to_string()),
            _ => AppError::Validation(rule.to_string()),
        },
        CommandError::Log(log) => log.into(),
    }
}

/// A command's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Done {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    pub position: Option<String>,
}

/// What the auth provider's hook sends at sign-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    pub person_id: String,
    pub provider: AuthProvider,
    pub provider_subject: String,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
    pub country: String,
    pub birth_date: NaiveDate,
}

/// Signs a person up (a service's call: the auth provider's hook). The age gate comes first,
/// before anything is sealed or stored: an under-age sign-up leaves no key, no event and no log
/// line with personal data (P27).
pub async fn sign_up(app: &App, call: &Call, request: SignUpRequest) -> Result<Done, AppError> {
    call.caller.require(&[Role::Service])?;
    let person = person_id(&request.person_id)?;
    let minimum = domain::age::minimum_age(&request.country).ok_or_else(|| {
        AppError::Validation("country must be an ISO 3166-1 alpha-2 code such as `PK` or `DE`".into())
    })?;
    let today = app.now().date_naive();
    if request.birth_date > today {
        return Err(AppError::Validation("birth_date is in the future".into()));
    }
    let age_years = domain::age::age_on(request.birth_date, today);
    if age_years < i32::from(minimum) {
        tracing::info!(request_id = ?call.request_id, "sign-up refused by the age gate");
        return Err(AppError::Validation(AccountError::AgeGate.to_string()));
    }
    bounded("name", &request.name, 200)?;
    valid_email(&request.email)?;
    bounded("provider_subject", &request.provider_subject, 256)?;
    if let Some(url) = &request.avatar_url {
        valid_avatar(url)?;
    }
    let vault = &app.vault;
    let key = KeyRef::person(&person);
    let command = AccountCommand::SignUp {
        provider: request.provider,
        provider_subject: seal(vault, &key, "provider_subject", &request.provider_subject).await?,
        name: seal(vault, &key, "name", &request.name).await?,
        email: seal(vault, &key, "email", &request.email).await?,
        avatar_url: match &request.avatar_url {
            Some(url) => Some(seal(vault, &key, "avatar_url", url).await?),
            None => None,
        },
        country: request.country,
        age_years,
    };
    let outcome = app
        .log
        .execute::<Account>(&person, command, &call.metadata())
        .await
        .map_err(account_error)?;
    Ok(Done {
        person_id: Some(person),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// A person's profile, opened with their key.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub person_id: String,
    pub provider: String,
    pub country: String,
    /// The minimum age of the country's age gate at sign-up (e.g. 13, 16 in DE).
    pub minimum_age: i32,
    /// The person met it (the gate refuses anyone under it, so always true).
    pub minimum_age_met: bool,
    /// Every personal field reads as erased (the person's key was destroyed).
    pub erased: bool,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    pub child_account: bool,
    pub signed_up_at: String,
}

/// A person's profile from the `accounts` read model, opened with their key.
pub async fn profile(app: &App, person: &str) -> Result<Profile, AppError> {
    let row = accounts::account(app.log.db(), person)
        .await?
        .ok_or_else(|| AppError::NotFound("there is no account for this person".into()))?;
    let key = KeyRef::person(person);
    let name = open(&app.vault, &key, "name", &row.name_sealed).await?;
    let email = open(&app.vault, &key, "email", &row.email_sealed).await?;
    let avatar_url = match &row.avatar_url_sealed {
        Some(a) => open(&app.vault, &key, "avatar_url", a).await?,
        None => None,
    };
    Ok(Profile {
        person_id: person.to_string(),
        provider: row.provider,
        country: row.country,
        minimum_age: row.minimum_age,
        minimum_age_met: row.minimum_age_met,
        erased: name.is_none(),
        name,
        email,
        avatar_url,
        child_account: row.child,
        signed_up_at: row.signed_up_at,
    })
}

/// The calling person's own profile.
pub async fn me(app: &App, call: &Call, min_position: Option<&str>) -> Result<Profile, AppError> {
    call.caller.require(&[Role::Person])?;
    app.wait_for("accounts", min_position).await?;
    profile(app, &call.caller.subject).await
}

/// New values for one's own profile; at least one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RectifyRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// The calling person corrects their profile (P22), sealed under their key.
pub async fn rectify(app: &App, call: &Call, request: RectifyRequest) -> Result<Done, AppError> {
    call.caller.require(&[Role::Person])?;
    let key = KeyRef::person(&call.caller.subject);
    if let Some(name) = &request.name {
        bounded("name", name, 200)?;
    }
    if let Some(email) = &request.email {
        valid_email(email)?;
    }
    if let Some(url) = &request.avatar_url {
        valid_avatar(url)?;
    }
    let mut fields = [None, None, None];
    for (slot, (field, value)) in fields.iter_mut().zip([
        ("name", &request.name),
        ("email", &request.email),
        ("avatar_url", &request.avatar_url),
    ]) {
        if let Some(value) = value {
            *slot = Some(seal(&app.vault, &key, field, value).await?);
        }
    }
    let [name, email, avatar_url] = fields;
    let outcome = app
        .log
        .execute::<Account>(
            &call.caller.subject,
            AccountCommand::Rectify {
                name,
                email,
                avatar_url,
            },
            &call.metadata(),
        )
        .await
        .map_err(account_error)?;
    Ok(Done {
        person_id: None,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// The calling person closes their account. Its data is erased once the retention period for
/// closed accounts has passed (the retention job, P24); closing again changes nothing.
pub async fn close(app: &App, call: &Call) -> Result<Done, AppError> {
    call.caller.require(&[Role::Person])?;
    let outcome = app
        .log
        .execute::<Account>(&call.caller.subject, AccountCommand::Close, &call.metadata())
        .await
        .map_err(account_error)?;
    Ok(Done {
        person_id: None,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// What support reports about a child's account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildRequest {
    pub report: ChildReport,
}

/// What marking a child's account did.
#[derive(Clone, Debug, Serialize)]
pub struct ChildErased {
    pub person_id: String,
    pub erase_request: String,
    pub state: serde_json::Value,
    pub keys_destroyed: usize,
    pub position: Option<String>,
}

/// Support marks an account as a child's: a child's data is deleted when learned (P27), so this
/// opens an erase request by itself, carried out at once (keys destroyed, tokens revoked,
/// processors asked).
pub async fn mark_as_child(
    app: &App,
    call: &Call,
    person: &str,
    request: ChildRequest,
) -> Result<ChildErased, AppError> {
    call.caller.require(&[Role::Support])?;
    let person = person_id(person)?;
    let outcome = app
        .log
        .execute::<Account>(
            &person,
            AccountCommand::MarkAsChild { report: request.report },
            &call.metadata(),
        )
        .await
        .map_err(account_error)?;
    let request_id = crate::privacy::open_system_erasure(app, &person, "child_account").await?;
    let view = crate::privacy::request_view(&app.log, &request_id).await?;
    let keys_destroyed = view["erasure_certificate"]["certificate"]["keys_destroyed"]
        .as_array()
        .map_or(0, Vec::len);
    Ok(ChildErased {
        person_id: person,
        erase_request: request_id,
        state: view["state"].clone(),
        keys_destroyed,
        position: view["position"]
            .as_str()
            .map(str::to_string)
            .or_else(|| outcome.position.map(|p| p.to_string())),
    })
}
