//! The one restriction check (P22): every processing command on a person's data is refused while
//! they have restricted processing, or after they were erased, with the reason. Read from the
//! person's own stream (the write side), so it is never stale.

use crate::AppError;
use domain::account::{Account, AccountError};
use domain::privacy::{DataSubject, SubjectCommand, SubjectError};
use domain::Aggregate;
use eventlog::{CommandError, EventLog};

pub(crate) fn subject_error(error: CommandError<SubjectError>) -> AppError {
    match error {
        CommandError::Rejected(rule @ (SubjectError::Restricted(_) | SubjectError::Erased(_))) => {
            AppError::Restricted(rule.to_string())
        }
        CommandError::Rejected(rule) => AppError::Conflict(rule.to_string()),
        CommandError::Log(error) => error.into(),
    }
}

/// Refuses a processing command on `person_id`'s data while they have restricted processing
/// (or were erased), with a 409 `processing_restricted` that says so. Reading is not processing
/// in this sense: read routes never call it. Read from the write side: never stale.
pub async fn ensure_processing_allowed(log: &EventLog, person_id: &str) -> Result<(), AppError> {
    let (subject, _, _) = log.load_aggregate::<DataSubject>(person_id).await?;
    subject
        .handle(SubjectCommand::CheckProcessing)
        .map(|_| ())
        .map_err(|rule| subject_error(CommandError::Rejected(rule)))
}

/// Refuses a processing command by `person_id` (connecting a platform, creating an artist,
/// drafting or acting on a campaign, opening a billing account, joining a team, recording click
/// ids) unless they may be processed ([`ensure_processing_allowed`]) and hold an account that
/// passed the age gate and is neither closed nor a child's (403 `account_required`, with the
/// reason). Read from the person's own streams (the write side): never stale.
pub async fn ensure_may_process(log: &EventLog, person_id: &str) -> Result<(), AppError> {
    ensure_processing_allowed(log, person_id).await?;
    let (account, _, _) = log.load_aggregate::<Account>(person_id).await?;
    account.check_usable().map_err(|rule| {
        AppError::AccountRequired(match rule {
            AccountError::NoAccount => "sign up first: this needs an account that passed the age gate".to_string(),
            other => other.to_string(),
        })
    })
}
