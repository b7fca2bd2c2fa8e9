//! Data-subject requests (P22, P27, P29): access, rectify, erase, restrict and lift restriction;
//! identity verification, one step per system that holds the person's data, a deadline one
//! month after opening (extendable once, with a reason), and the erasure certificate. Also the
//! person's processing state ([`DataSubject`]): restricted, or erased.
//!
//! A [`PrivacyRequest`] is one stream per request (id chosen by the service). Its states:
//! `pending` (opened, identity not verified) → `verified` → `in_progress` (a step started) →
//! `completed`; `failed` when a step failed (retrying starts that step again, never the ones
//! done); `paused` (from verified, in progress or failed; resuming returns there); `denied`
//! (before any step ran). Evidence and reasons are short texts written by the service or by
//! support: never personal data.

use crate::sealed::Sealed;
use crate::{Aggregate, DomainEvent};
use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

/// What the person asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Access,
    Rectify,
    Erase,
    Restrict,
    LiftRestriction,
}

impl RequestKind {
    /// The snake_case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Rectify => "rectify",
            RequestKind::Erase => "erase",
            RequestKind::Restrict => "restrict",
            RequestKind::LiftRestriction => "lift_restriction",
        }
    }
}

/// Who opened the request (P29).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Opener {
    /// The person, signed in.
    Person,
    /// Support, on the person's behalf; `reason` says how the person asked (e.g. `email to privacy@`).
    Support { agent: String, reason: String },
    /// The service itself: a child's account (P27), retention of closed accounts (P24).
    System { reason: String },
}

/// New values of a rectification, sealed under the person's key like the account's own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rectification {
    pub name: Option<Sealed>,
    pub email: Option<Sealed>,
    pub avatar_url: Option<Sealed>,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Carried out through the system's connector; `evidence` says what it answered.
    Done { evidence: String },
    /// Carried out by hand (e.g. in a processor's dashboard); `by` is the agent.
    Manual { evidence: String, by: String },
    /// Nothing to do in that system; `reason` says why.
    NotApplicable { reason: String },
}

impl StepOutcome {
    fn text(&self) -> &str {
        match self {
            StepOutcome::Done { evidence } | StepOutcome::Manual { evidence, .. } => evidence,
            StepOutcome::NotApplicable { reason } => reason,
        }
    }
}

/// Something kept after an erasure, and why (P24, P26).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The data category, e.g. `billing_records`.
    pub category: String,
    /// The legal basis, e.g. `legal_obligation`.
    pub basis: String,
    /// What is kept and in which form.
    pub detail: String,
}

/// What an erasure did: issued when an erase request completes, chained into the request's stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureCertificate {
    pub request_id: String,
    pub person_id: String,
    pub erased_at: DateTime<Utc>,
    /// The ids of every key destroyed (no key material).
    pub keys_destroyed: Vec<String>,
    /// Every step, its outcome and evidence, in order.
    pub steps: Vec<CertifiedStep>,
    pub kept: Vec<Kept>,
}

/// One step, as the certificate records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedStep {
    pub step: String,
    pub completed_at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: StepOutcome,
}

/// Commands of a privacy request.
#[derive(Clone, Debug, PartialEq)]
pub enum PrivacyCommand {
    Open {
        person_id: String,
        kind: RequestKind,
        opener: Opener,
        opened_at: DateTime<Utc>,
        /// The systems to carry the request out in, in the order they must run.
        steps: Vec<String>,
        rectification: Option<Rectification>,
    },
    Verify {
        method: String,
        at: DateTime<Utc>,
    },
    Extend {
        reason: String,
        until: DateTime<Utc>,
    },
    Deny {
        reason: String,
        at: DateTime<Utc>,
    },
    Pause {
        reason: String,
        at: DateTime<Utc>,
    },
    Resume {
        at: DateTime<Utc>,
    },
    StartStep {
        step: String,
        at: DateTime<Utc>,
    },
    CompleteStep {
        step: String,
        outcome: StepOutcome,
        at: DateTime<Utc>,
    },
    FailStep {
        step: String,
        reason: String,
        at: DateTime<Utc>,
    },
    Complete {
        at: DateTime<Utc>,
        certificate: Option<ErasureCertificate>,
    },
}

/// Events of a privacy request (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PrivacyEvent {
    RequestOpened {
        person_id: String,
        kind: RequestKind,
        opener: Opener,
        opened_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
        steps: Vec<String>,
        rectification: Option<Rectification>,
    },
    IdentityVerified {
        method: String,
        at: DateTime<Utc>,
    },
    DeadlineExtended {
        reason: String,
        deadline: DateTime<Utc>,
    },
    RequestDenied {
        reason: String,
        at: DateTime<Utc>,
    },
    RequestPaused {
        reason: String,
        at: DateTime<Utc>,
    },
    RequestResumed {
        at: DateTime<Utc>,
    },
    StepStarted {
        step: String,
        attempt: u32,
        at: DateTime<Utc>,
    },
    StepCompleted {
        step: String,
        #[serde(flatten)]
        outcome: StepOutcome,
        at: DateTime<Utc>,
    },
    StepFailed {
        step: String,
        reason: String,
        at: DateTime<Utc>,
    },
    RequestCompleted {
        at: DateTime<Utc>,
    },
    ErasureCertificateIssued {
        certificate: ErasureCertificate,
    },
}

impl DomainEvent for PrivacyEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[
        ("PrivacyRequestOpened", 1),
        ("IdentityVerified", 1),
        ("DeadlineExtended", 1),
        ("PrivacyRequestDenied", 1),
        ("PrivacyRequestPaused", 1),
        ("PrivacyRequestResumed", 1),
        ("PrivacyStepStarted", 1),
        ("PrivacyStepCompleted", 1),
        ("PrivacyStepFailed", 1),
        ("PrivacyRequestCompleted", 1),
        ("ErasureCertificateIssued", 1),
    ];

    fn event_type(&self) -> String {
        match self {
            PrivacyEvent::RequestOpened { .. } => "PrivacyRequestOpened",
            PrivacyEvent::IdentityVerified { .. } => "IdentityVerified",
            PrivacyEvent::DeadlineExtended { .. } => "DeadlineExtended",
            PrivacyEvent::RequestDenied { .. } => "PrivacyRequestDenied",
            PrivacyEvent::RequestPaused { .. } => "PrivacyRequestPaused",
            PrivacyEvent::RequestResumed { .. } => "PrivacyRequestResumed",
            PrivacyEvent::StepStarted { .. } => "PrivacyStepStarted",
            PrivacyEvent::StepCompleted { .. } => "PrivacyStepCompleted",
            PrivacyEvent::StepFailed { .. } => "PrivacyStepFailed",
            PrivacyEvent::RequestCompleted { .. } => "PrivacyRequestCompleted",
            PrivacyEvent::ErasureCertificateIssued { .. } => "ErasureCertificateIssued",
        }
        .to_string()
    }
}

/// Why a privacy-request command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivacyError {
    #[error("this privacy request already exists")]
    AlreadyOpened,
    #[error("there is no such privacy request")]
    NotOpened,
    #[error("a request needs at least one step, each named once")]
    BadSteps,
    #[error("a rectify request needs at least one new value, and only a rectify request takes them")]
    BadRectification,
    #[error("the identity of the person is already verified")]
    AlreadyVerified,
    #[error("the person's identity must be verified first")]
    NotVerified,
    #[error("this request is {0}: it can no longer change")]
    Finished(&'static str),
    #[error("this request is paused; resume it first")]
    Paused,
    #[error("this request is not paused")]
    NotPaused,
    #[error("a request can be denied only before any step ran")]
    TooLateToDeny,
    #[error("the deadline was extended once already")]
    AlreadyExtended,
    #[error("an extension must move the deadline later, and at most three months after opening")]
    BadExtension,
    #[error("a reason, method or evidence is required (at most 500 characters)")]
    MissingText,
    #[error("`{0}` is not a step of this request")]
    UnknownStep(String),
    #[error("step `{0}` is done already")]
    StepDone(String),
    #[error("step `{0}` must wait for the steps before it")]
    StepOutOfOrder(String),
    #[error("step `{0}` has not started")]
    StepNotStarted(String),
    #[error("some steps are not done yet")]
    StepsLeft,
    #[error("an erase request completes with its erasure certificate, and only an erase request has one")]
    CertificateMismatch,
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    #[default]
    Pending,
    Verified,
    InProgress,
    Failed,
    Paused,
    Denied,
    Completed,
}

impl RequestState {
    /// The snake_case name, as in the API and the read model.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Verified => "verified",
            RequestState::InProgress => "in_progress",
            RequestState::Failed => "failed",
            RequestState::Paused => "paused",
            RequestState::Denied => "denied",
            RequestState::Completed => "completed",
        }
    }
}

/// Where one step stands.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StepState {
    #[default]
    Waiting,
    Running {
        attempt: u32,
    },
    Failed {
        attempt: u32,
    },
    Done,
}

/// The state of a privacy request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrivacyRequest {
    opened: bool,
    person_id: String,
    kind: Option<RequestKind>,
    state: RequestState,
    before_pause: Option<RequestState>,
    opened_at: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
    extended: bool,
    steps: Vec<(String, StepState)>,
}

/// Longest reason, method or evidence text.
const MAX_TEXT: usize = 500;

fn text(value: &str) -> Result<(), PrivacyError> {
    if value.trim().is_empty() || value.chars().count() > MAX_TEXT {
        return Err(PrivacyError::MissingText);
    }
    Ok(())
}

impl PrivacyRequest {
    /// The request's state.
    pub fn state(&self) -> RequestState {
        self.state
    }

    /// The kind, once opened.
    pub fn kind(&self) -> Option<RequestKind> {
        self.kind
    }

    /// The person the request is about.
    pub fn person_id(&self) -> &str {
        &self.person_id
    }

    /// The deadline, once opened.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.deadline
    }

    /// The steps and where each stands, in order.
    pub fn steps(&self) -> &[(String, StepState)] {
        &self.steps
    }

    /// The first step not done yet: the one to run next (a failed step is retried from here).
    pub fn next_step(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|(_, state)| *state != StepState::Done)
            .map(|(name, _)| name.as_str())
    }

    fn open_and_unfinished(&self) -> Result<(), PrivacyError> {
        if !self.opened {
            return Err(PrivacyError::NotOpened);
        }
        match self.state {
            RequestState::Completed | RequestState::Denied => Err(PrivacyError::Finished(self.state.as_str())),
            _ => Ok(()),
        }
    }

    /// Steps may run: verified, in progress or failed (not pending, paused or finished).
    fn may_run(&self) -> Result<(), PrivacyError> {
        self.open_and_unfinished()?;
        match self.state {
            RequestState::Pending => Err(PrivacyError::NotVerified),
            RequestState::Paused => Err(PrivacyError::Paused),
            _ => Ok(()),
        }
    }

    fn step(&self, step: &str) -> Result<(usize, &StepState), PrivacyError> {
        self.steps
            .iter()
            .enumerate()
            .find(|(_, (name, _))| name == step)
            .map(|(index, (_, state))| (index, state))
            .ok_or_else(|| PrivacyError::UnknownStep(step.chars().take(64).collect()))
    }
}

impl Aggregate for PrivacyRequest {
    const TYPE: &'static str = "privacy_request";
    type Command = PrivacyCommand;
    type Event = PrivacyEvent;
    type Error = PrivacyError;

    fn handle(&self, command: PrivacyCommand) -> Result<Vec<PrivacyEvent>, PrivacyError> {
        match command {
            PrivacyCommand::Open {
                person_id,
                kind,
                opener,
                opened_at,
                steps,
                rectification,
            } => {
                if self.opened {
                    return Err(PrivacyError::AlreadyOpened);
                }
                let mut seen = std::collections::BTreeSet::new();
                if steps.is_empty() || !steps.iter().all(|s| !s.is_empty() && s.len() <= 128 && seen.insert(s)) {
                    return Err(PrivacyError::BadSteps);
                }
                let has_values = rectification
                    .as_ref()
                    .is_some_and(|r| r.name.is_some() || r.email.is_some() || r.avatar_url.is_some());
                if (kind == RequestKind::Rectify) != has_values {
                    return Err(PrivacyError::BadRectification);
                }
                match &opener {
                    Opener::Person => {}
                    Opener::Support { agent, reason } => {
                        text(agent)?;
                        text(reason)?;
                    }
                    Opener::System { reason } => text(reason)?,
                }
                // One month after opening (the GDPR's Art. 12(3)); chrono clamps the 31st.
                let deadline = opened_at.checked_add_months(Months::new(1)).unwrap_or(opened_at);
                Ok(vec![PrivacyEvent::RequestOpened {
                    person_id,
                    kind,
                    opener,
                    opened_at,
                    deadline,
                    steps,
                    rectification,
                }])
            }
            PrivacyCommand::Verify { method, at } => {
                self.open_and_unfinished()?;
                text(&method)?;
                if self.state != RequestState::Pending {
                    return Err(PrivacyError::AlreadyVerified);
                }
                Ok(vec![PrivacyEvent::IdentityVerified { method, at }])
            }
            PrivacyCommand::Extend { reason, until } => {
                self.open_and_unfinished()?;
                text(&reason)?;
                if self.extended {
                    return Err(PrivacyError::AlreadyExtended);
                }
                let (Some(deadline), Some(opened_at)) = (self.deadline, self.opened_at) else {
                    return Err(PrivacyError::NotOpened);
                };
                let latest = opened_at.checked_add_months(Months::new(3)).unwrap_or(opened_at);
                if until <= deadline || until > latest {
                    return Err(PrivacyError::BadExtension);
                }
                Ok(vec![PrivacyEvent::DeadlineExtended {
                    reason,
                    deadline: until,
                }])
            }
            PrivacyCommand::Deny { reason, at } => {
                self.open_and_unfinished()?;
                text(&reason)?;
                let any_ran = self.steps.iter().any(|(_, s)| *s != StepState::Waiting);
                if any_ran {
                    return Err(PrivacyError::TooLateToDeny);
                }
                Ok(vec![PrivacyEvent::RequestDenied { reason, at }])
            }
            PrivacyCommand::Pause { reason, at } => {
                self.open_and_unfinished()?;
                text(&reason)?;
                match self.state {
                    RequestState::Paused => Ok(vec![]),
                    RequestState::Pending => Err(PrivacyError::NotVerified),
                    _ => Ok(vec![PrivacyEvent::RequestPaused { reason, at }]),
                }
            }
            PrivacyCommand::Resume { at } => {
                self.open_and_unfinished()?;
                if self.state != RequestState::Paused {
                    return Err(PrivacyError::NotPaused);
                }
                Ok(vec![PrivacyEvent::RequestResumed { at }])
            }
            PrivacyCommand::StartStep { step, at } => {
                self.may_run()?;
                let (index, state) = self.step(&step)?;
                let attempt = match state {
                    StepState::Done => return Err(PrivacyError::StepDone(step)),
                    StepState::Waiting => 1,
                    StepState::Running { attempt } | StepState::Failed { attempt } => attempt + 1,
                };
                if self.steps[..index].iter().any(|(_, s)| *s != StepState::Done) {
                    return Err(PrivacyError::StepOutOfOrder(step));
                }
                Ok(vec![PrivacyEvent::StepStarted { step, attempt, at }])
            }
            PrivacyCommand::CompleteStep { step, outcome, at } => {
                self.may_run()?;
                text(outcome.text())?;
                if let StepOutcome::Manual { by, .. } = &outcome {
                    text(by)?;
                }
                let (index, state) = self.step(&step)?;
                match state {
                    StepState::Done => return Err(PrivacyError::StepDone(step)),
                    // A manual step may be recorded without a start (support did it by hand),
                    // but never ahead of the steps before it.
                    StepState::Waiting if !matches!(outcome, StepOutcome::Manual { .. }) => {
                        return Err(PrivacyError::StepNotStarted(step))
                    }
                    _ => {}
                }
                if self.steps[..index].iter().any(|(_, s)| *s != StepState::Done) {
                    return Err(PrivacyError::StepOutOfOrder(step));
                }
                Ok(vec![PrivacyEvent::StepCompleted { step, outcome, at }])
            }
            PrivacyCommand::FailStep { step, reason, at } => {
                self.may_run()?;
                text(&reason)?;
                let (_, state) = self.step(&step)?;
                match state {
                    StepState::Running { .. } => Ok(vec![PrivacyEvent::StepFailed { step, reason, at }]),
                    StepState::Done => Err(PrivacyError::StepDone(step)),
                    _ => Err(PrivacyError::StepNotStarted(step)),
                }
            }
            PrivacyCommand::Complete { at, certificate } => {
                self.may_run()?;
                if self.next_step().is_some() {
                    return Err(PrivacyError::StepsLeft);
                }
                let is_erase = self.kind == Some(RequestKind::Erase);
                match certificate {
                    Some(certificate) if is_erase => Ok(vec![
                        PrivacyEvent::ErasureCertificateIssued { certificate },
                        PrivacyEvent::RequestCompleted { at },
                    ]),
                    None if !is_erase => Ok(vec![PrivacyEvent::RequestCompleted { at }]),
                    _ => Err(PrivacyError::CertificateMismatch),
                }
            }
        }
    }

    fn apply(&mut self, event: PrivacyEvent) {
        match event {
            PrivacyEvent::RequestOpened {
                person_id,
                kind,
                opened_at,
                deadline,
                steps,
                ..
            } => {
                self.opened = true;
                self.person_id = person_id;
                self.kind = Some(kind);
                self.opened_at = Some(opened_at);
                self.deadline = Some(deadline);
                self.steps = steps.into_iter().map(|s| (s, StepState::Waiting)).collect();
            }
            PrivacyEvent::IdentityVerified { .. } => self.state = RequestState::Verified,
            PrivacyEvent::DeadlineExtended { deadline, .. } => {
                self.extended = true;
                self.deadline = Some(deadline);
            }
            PrivacyEvent::RequestDenied { .. } => self.state = RequestState::Denied,
            PrivacyEvent::RequestPaused { .. } => {
                self.before_pause = Some(self.state);
                self.state = RequestState::Paused;
            }
            PrivacyEvent::RequestResumed { .. } => {
                self.state = self.before_pause.take().unwrap_or(RequestState::Verified);
            }
            PrivacyEvent::StepStarted { step, attempt, .. } => {
                self.state = RequestState::InProgress;
                if let Some((_, state)) = self.steps.iter_mut().find(|(name, _)| *name == step) {
                    *state = StepState::Running { attempt };
                }
            }
            PrivacyEvent::StepCompleted { step, .. } => {
                self.state = RequestState::InProgress;
                if let Some((_, state)) = self.steps.iter_mut().find(|(name, _)| *name == step) {
                    *state = StepState::Done;
                }
            }
            PrivacyEvent::StepFailed { step, .. } => {
                self.state = RequestState::Failed;
                if let Some((_, state)) = self.steps.iter_mut().find(|(name, _)| *name == step) {
                    let attempt = match state {
                        StepState::Running { attempt } => *attempt,
                        _ => 1,
                    };
                    *state = StepState::Failed { attempt };
                }
            }
            PrivacyEvent::RequestCompleted { .. } => self.state = RequestState::Completed,
            PrivacyEvent::ErasureCertificateIssued { .. } => {}
        }
    }
}

/// Commands of a person's processing state.
#[derive(Clone, Debug, PartialEq)]
pub enum SubjectCommand {
    /// Restrict processing (an executed restrict request).
    Restrict { request_id: String },
    /// Lift the restriction (an executed lift-restriction request).
    Lift { request_id: String },
    /// Record that the person was erased (an executed erase request).
    RecordErasure { request_id: String },
    /// Asks whether a processing command may run now: no event, or the refusal.
    CheckProcessing,
}

/// Events of a person's processing state (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SubjectEvent {
    ProcessingRestricted { request_id: String },
    RestrictionLifted { request_id: String },
    PersonErased { request_id: String },
}

impl DomainEvent for SubjectEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[
        ("ProcessingRestricted", 1),
        ("RestrictionLifted", 1),
        ("PersonErased", 1),
    ];

    fn event_type(&self) -> String {
        match self {
            SubjectEvent::ProcessingRestricted { .. } => "ProcessingRestricted",
            SubjectEvent::RestrictionLifted { .. } => "RestrictionLifted",
            SubjectEvent::PersonErased { .. } => "PersonErased",
        }
        .to_string()
    }
}

/// Why processing (or a change of the processing state) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubjectError {
    #[error(
        "processing of this person's data is restricted at their request (privacy request {0}); \
         reading is still possible, changes are not until the restriction is lifted"
    )]
    Restricted(String),
    #[error("this person's data was erased (privacy request {0}); nothing more can be done with it")]
    Erased(String),
    #[error("processing is not restricted")]
    NotRestricted,
}

/// A person's processing state: one stream per person, id = the person id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSubject {
    restricted_by: Option<String>,
    erased_by: Option<String>,
}

impl DataSubject {
    /// Whether processing is restricted now.
    pub fn is_restricted(&self) -> bool {
        self.restricted_by.is_some()
    }

    /// Whether the person was erased.
    pub fn is_erased(&self) -> bool {
        self.erased_by.is_some()
    }

    /// The erase request that erased the person, if one did.
    pub fn erased_by(&self) -> Option<&str> {
        self.erased_by.as_deref()
    }
}

impl Aggregate for DataSubject {
    const TYPE: &'static str = "data_subject";
    type Command = SubjectCommand;
    type Event = SubjectEvent;
    type Error = SubjectError;

    fn handle(&self, command: SubjectCommand) -> Result<Vec<SubjectEvent>, SubjectError> {
        if let Some(request) = &self.erased_by {
            return Err(SubjectError::Erased(request.clone()));
        }
        match command {
            SubjectCommand::Restrict { request_id } => match self.restricted_by {
                Some(_) => Ok(vec![]),
                None => Ok(vec![SubjectEvent::ProcessingRestricted { request_id }]),
            },
            SubjectCommand::Lift { request_id } => match self.restricted_by {
                Some(_) => Ok(vec![SubjectEvent::RestrictionLifted { request_id }]),
                None => Err(SubjectError::NotRestricted),
            },
            SubjectCommand::RecordErasure { request_id } => Ok(vec![SubjectEvent::PersonErased { request_id }]),
            SubjectCommand::CheckProcessing => match &self.restricted_by {
                Some(request) => Err(SubjectError::Restricted(request.clone())),
                None => Ok(vec![]),
            },
        }
    }

    fn apply(&mut self, event: SubjectEvent) {
        match event {
            SubjectEvent::ProcessingRestricted { request_id } => self.restricted_by = Some(request_id),
            SubjectEvent::RestrictionLifted { .. } => self.restricted_by = None,
            SubjectEvent::PersonErased { request_id } => self.erased_by = Some(request_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at(day: u32) -> DateTime<Utc> {
        format!("2026-01-{day:02}T10:00:00Z").parse().unwrap()
    }

    fn opened(kind: RequestKind, steps: &[&str]) -> PrivacyEvent {
        PrivacyEvent::RequestOpened {
            person_id: "p1".into(),
            kind,
            opener: Opener::Person,
            opened_at: at(31),
            deadline: "2026-02-28T10:00:00Z".parse().unwrap(),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            rectification: None,
        }
    }

    fn verified() -> PrivacyEvent {
        PrivacyEvent::IdentityVerified {
            method: "authenticated_session".into(),
            at: at(31),
        }
    }

    fn started(step: &str, attempt: u32) -> PrivacyEvent {
        PrivacyEvent::StepStarted {
            step: step.into(),
            attempt,
            at: at(31),
        }
    }

    fn done(step: &str) -> PrivacyEvent {
        PrivacyEvent::StepCompleted {
            step: step.into(),
            outcome: StepOutcome::Done { evidence: "ok".into() },
            at: at(31),
        }
    }

    fn certificate() -> ErasureCertificate {
        ErasureCertificate {
            request_id: "r1".into(),
            person_id: "p1".into(),
            erased_at: at(31),
            keys_destroyed: vec!["person:p1#1.00".into()],
            steps: vec![],
            kept: vec![],
        }
    }

    #[test]
    fn opening_sets_a_deadline_one_month_later_clamped_to_the_month_end() {
        given::<PrivacyRequest>(vec![])
            .when(PrivacyCommand::Open {
                person_id: "p1".into(),
                kind: RequestKind::Erase,
                opener: Opener::Person,
                opened_at: at(31),
                steps: vec!["vault".into(), "read_models".into()],
                rectification: None,
            })
            .then_expect_events(vec![opened(RequestKind::Erase, &["vault", "read_models"])]);
    }

    #[test]
    fn a_request_opens_once_with_distinct_steps() {
        given::<PrivacyRequest>(vec![opened(RequestKind::Access, &["event_log"])])
            .when(PrivacyCommand::Open {
                person_id: "p1".into(),
                kind: RequestKind::Access,
                opener: Opener::Person,
                opened_at: at(1),
                steps: vec!["event_log".into()],
                rectification: None,
            })
            .then_expect_error_message("this privacy request already exists");
        given::<PrivacyRequest>(vec![])
            .when(PrivacyCommand::Open {
                person_id: "p1".into(),
                kind: RequestKind::Access,
                opener: Opener::Person,
                opened_at: at(1),
                steps: vec!["a".into(), "a".into()],
                rectification: None,
            })
            .then_expect_error_message("a request needs at least one step, each named once");
    }

    #[test]
    fn only_a_rectify_request_carries_new_values_and_it_must() {
        given::<PrivacyRequest>(vec![])
            .when(PrivacyCommand::Open {
                person_id: "p1".into(),
                kind: RequestKind::Rectify,
                opener: Opener::Person,
                opened_at: at(1),
                steps: vec!["event_log".into()],
                rectification: Some(Rectification::default()),
            })
            .then_expect_error_message(
                "a rectify request needs at least one new value, and only a rectify request takes them",
            );
    }

    #[test]
    fn support_must_say_how_the_person_asked() {
        given::<PrivacyRequest>(vec![])
            .when(PrivacyCommand::Open {
                person_id: "p1".into(),
                kind: RequestKind::Access,
                opener: Opener::Support {
                    agent: "support:s1".into(),
                    reason: " ".into(),
                },
                opened_at: at(1),
                steps: vec!["event_log".into()],
                rectification: None,
            })
            .then_expect_error_message("a reason, method or evidence is required (at most 500 characters)");
    }

    #[test]
    fn no_step_runs_before_the_identity_is_verified() {
        given::<PrivacyRequest>(vec![opened(RequestKind::Erase, &["vault"])])
            .when(PrivacyCommand::StartStep {
                step: "vault".into(),
                at: at(31),
            })
            .then_expect_error_message("the person's identity must be verified first");
    }

    #[test]
    fn verification_happens_once() {
        given::<PrivacyRequest>(vec![opened(RequestKind::Erase, &["vault"]), verified()])
            .when(PrivacyCommand::Verify {
                method: "x".into(),
                at: at(31),
            })
            .then_expect_error_message("the identity of the person is already verified");
    }

    #[test]
    fn steps_run_in_order() {
        given::<PrivacyRequest>(vec![opened(RequestKind::Erase, &["stripe", "vault"]), verified()])
            .when(PrivacyCommand::StartStep {
                step: "vault".into(),
                at: at(31),
            })
            .then_expect_error_message("step `vault` must wait for the steps before it");
    }

    #[test]
    fn a_failed_step_retries_from_itself_with_the_next_attempt_and_done_steps_stay_done() {
        let history = vec![
            opened(RequestKind::Erase, &["stripe", "posthog", "vault"]),
            verified(),
            started("stripe", 1),
            done("stripe"),
            started("posthog", 1),
            PrivacyEvent::StepFailed {
                step: "posthog".into(),
                reason: "PostHog answered 503".into(),
                at: at(31),
            },
        ];
        let mut request = PrivacyRequest::default();
        for event in history.clone() {
            request.apply(event);
        }
        assert_eq!(request.state(), RequestState::Failed);
        assert_eq!(request.next_step(), Some("posthog"));
        given::<PrivacyRequest>(history.clone())
            .when(PrivacyCommand::StartStep {
                step: "posthog".into(),
                at: at(31),
            })
            .then_expect_events(vec![started("posthog", 2)]);
        given::<PrivacyRequest>(history)
            .when(PrivacyCommand::StartStep {
                step: "stripe".into(),
                at: at(31),
            })
            .then_expect_error_message("step `stripe` is done already");
    }

    #[test]
    fn a_step_completes_only_after_it_started_unless_done_by_hand() {
        let history = vec![opened(RequestKind::Erase, &["resend"]), verified()];
        given::<PrivacyRequest>(history.clone())
            .when(PrivacyCommand::CompleteStep {
                step: "resend".into(),
                outcome: StepOutcome::Done { evidence: "ok".into() },
                at: at(31),
            })
            .then_expect_error_message("step `resend` has not started");
        let manual = StepOutcome::Manual {
            evidence: "contact deleted in the Resend dashboard".into(),
            by: "support:s1".into(),
        };
        given::<PrivacyRequest>(history)
            .when(PrivacyCommand::CompleteStep {
                step: "resend".into(),
                outcome: manual.clone(),
                at: at(31),
            })
            .then_expect_events(vec![PrivacyEvent::StepCompleted {
                step: "resend".into(),
                outcome: manual,
                at: at(31),
            }]);
    }

    #[test]
    fn an_unknown_step_is_refused() {
        given::<PrivacyRequest>(vec![opened(RequestKind::Erase, &["vault"]), verified()])
            .when(PrivacyCommand::StartStep {
                step: "mailchimp".into(),
                at: at(31),
            })
            .then_expect_error_message("`mailchimp` is not a step of this request");
    }

    #[test]
    fn an_erasure_completes_with_its_certificate_once_every_step_is_done() {
        let history = vec![opened(RequestKind::Erase, &["vault"]), verified(), started("vault", 1)];
        given::<PrivacyRequest>(history.clone())
            .when(PrivacyCommand::Complete {
                at: at(31),
                certificate: Some(certificate()),
            })
            .then_expect_error_message("some steps are not done yet");
        let mut all_done = history;
        all_done.push(done("vault"));
        given::<PrivacyRequest>(all_done.clone())
            .when(PrivacyCommand::Complete {
                at: at(31),
                certificate: None,
            })
            .then_expect_error_message(
                "an erase request completes with its erasure certificate, and only an erase request has one",
            );
        given::<PrivacyRequest>(all_done.clone())
            .when(PrivacyCommand::Complete {
                at: at(31),
                certificate: Some(certificate()),
            })
            .then_expect_events(vec![
                PrivacyEvent::ErasureCertificateIssued {
                    certificate: certificate(),
                },
                PrivacyEvent::RequestCompleted { at: at(31) },
            ]);
        all_done.push(PrivacyEvent::RequestCompleted { at: at(31) });
        given::<PrivacyRequest>(all_done)
            .when(PrivacyCommand::Pause {
                reason: "x".into(),
                at: at(31),
            })
            .then_expect_error_message("this request is completed: it can no longer change");
    }

    #[test]
    fn the_deadline_extends_once_and_at_most_three_months_after_opening() {
        let history = vec![opened(RequestKind::Access, &["event_log"])];
        given::<PrivacyRequest>(history.clone())
            .when(PrivacyCommand::Extend {
                reason: "complex request".into(),
                until: "2026-05-01T10:00:00Z".parse().unwrap(),
            })
            .then_expect_error_message(
                "an extension must move the deadline later, and at most three months after opening",
            );
        let extended = PrivacyEvent::DeadlineExtended {
            reason: "complex request".into(),
            deadline: "2026-04-30T10:00:00Z".parse().unwrap(),
        };
        given::<PrivacyRequest>(history.clone())
            .when(PrivacyCommand::Extend {
                reason: "complex request".into(),
                until: "2026-04-30T10:00:00Z".parse().unwrap(),
            })
            .then_expect_events(vec![extended.clone()]);
        let mut twice = history;
        twice.push(extended);
        given::<PrivacyRequest>(twice)
            .when(PrivacyCommand::Extend {
                reason: "again".into(),
                until: "2026-04-30T11:00:00Z".parse().unwrap(),
            })
            .then_expect_error_message("the deadline was extended once already");
    }

    #[test]
    fn a_request_is_denied_only_before_any_step_ran() {
        given::<PrivacyRequest>(vec![
            opened(RequestKind::Erase, &["vault"]),
            verified(),
            started("vault", 1),
        ])
        .when(PrivacyCommand::Deny {
            reason: "identity not confirmed".into(),
            at: at(31),
        })
        .then_expect_error_message("a request can be denied only before any step ran");
    }

    #[test]
    fn a_paused_request_runs_no_step_and_resumes_where_it_was() {
        let paused = vec![
            opened(RequestKind::Erase, &["stripe", "vault"]),
            verified(),
            started("stripe", 1),
            PrivacyEvent::RequestPaused {
                reason: "dispute open with the bank".into(),
                at: at(31),
            },
        ];
        given::<PrivacyRequest>(paused.clone())
            .when(PrivacyCommand::CompleteStep {
                step: "stripe".into(),
                outcome: StepOutcome::Done { evidence: "ok".into() },
                at: at(31),
            })
            .then_expect_error_message("this request is paused; resume it first");
        let mut resumed = paused;
        resumed.push(PrivacyEvent::RequestResumed { at: at(31) });
        let mut request = PrivacyRequest::default();
        for event in resumed {
            request.apply(event);
        }
        assert_eq!(request.state(), RequestState::InProgress);
    }

    #[test]
    fn a_restricted_person_is_refused_processing_until_the_restriction_is_lifted() {
        let restricted = SubjectEvent::ProcessingRestricted {
            request_id: "r1".into(),
        };
        given::<DataSubject>(vec![restricted.clone()])
            .when(SubjectCommand::CheckProcessing)
            .then_expect_error_message(
                "processing of this person's data is restricted at their request (privacy request r1); \
                 reading is still possible, changes are not until the restriction is lifted",
            );
        given::<DataSubject>(vec![
            restricted,
            SubjectEvent::RestrictionLifted {
                request_id: "r2".into(),
            },
        ])
        .when(SubjectCommand::CheckProcessing)
        .then_expect_events(vec![]);
        given::<DataSubject>(vec![])
            .when(SubjectCommand::Lift {
                request_id: "r2".into(),
            })
            .then_expect_error_message("processing is not restricted");
    }

    #[test]
    fn an_erased_person_is_refused_everything() {
        given::<DataSubject>(vec![SubjectEvent::PersonErased {
            request_id: "r9".into(),
        }])
        .when(SubjectCommand::Restrict {
            request_id: "r10".into(),
        })
        .then_expect_error_message(
            "this person's data was erased (privacy request r9); nothing more can be done with it",
        );
    }
}
