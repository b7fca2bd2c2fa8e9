//! Retention runs (P24, P25, P26): one aggregate per UTC day (id `YYYY-MM-DD`) recording what
//! the retention job did under each rule: how many records it looked at, and the ids (never
//! personal data) of those it acted on. A day is recorded once: a second run records nothing.

use crate::{Aggregate, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What one rule did in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// The rule's data-category code (e.g. `invitation_email`).
    pub rule: String,
    /// Records the rule looked at.
    pub examined: u64,
    /// Records it acted on: `ids.len()`.
    pub affected: u64,
    /// Records whose action failed (tried again at the next run).
    pub failed: u64,
    /// The ids acted on (invitation, connection, person or request ids): never personal data.
    pub ids: Vec<String>,
}

/// Commands of a retention run.
#[derive(Clone, Debug, PartialEq)]
pub enum RetentionCommand {
    /// Records the run that ended at `at`, one outcome per rule.
    Record { at: DateTime<Utc>, rules: Vec<RuleOutcome> },
}

/// Events of a retention run (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RetentionEvent {
    RetentionApplied { at: DateTime<Utc>, rules: Vec<RuleOutcome> },
}

impl DomainEvent for RetentionEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[("RetentionApplied", 1)];

    fn event_type(&self) -> String {
        match self {
            RetentionEvent::RetentionApplied { .. } => "RetentionApplied",
        }
        .to_string()
    }
}

/// Why a retention record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    #[error("every rule needs a code, and a rule may appear only once in a run")]
    InvalidRule,
    #[error("a rule's affected count must be the number of its ids")]
    CountMismatch,
}

/// The state of one day's retention run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RetentionRun {
    recorded: bool,
}

impl RetentionRun {
    /// Whether this day's run was recorded.
    pub fn is_recorded(&self) -> bool {
        self.recorded
    }
}

impl Aggregate for RetentionRun {
    const TYPE: &'static str = "retention_run";
    type Command = RetentionCommand;
    type Event = RetentionEvent;
    type Error = RetentionError;

    fn handle(&self, command: RetentionCommand) -> Result<Vec<RetentionEvent>, RetentionError> {
        match command {
            RetentionCommand::Record { at, rules } => {
                let mut seen = BTreeSet::new();
                for outcome in &rules {
                    if outcome.rule.trim().is_empty() || !seen.insert(outcome.rule.as_str()) {
                        return Err(RetentionError::InvalidRule);
                    }
                    if outcome.affected != outcome.ids.len() as u64 {
                        return Err(RetentionError::CountMismatch);
                    }
                }
                if self.recorded {
                    return Ok(vec![]);
                }
                Ok(vec![RetentionEvent::RetentionApplied { at, rules }])
            }
        }
    }

    fn apply(&mut self, event: RetentionEvent) {
        match event {
            RetentionEvent::RetentionApplied { .. } => self.recorded = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at() -> DateTime<Utc> {
        "2026-12-01T04:00:00Z".parse().unwrap()
    }

    fn outcome(rule: &str, ids: &[&str]) -> RuleOutcome {
        RuleOutcome {
            rule: rule.into(),
            examined: 5,
            affected: ids.len() as u64,
            failed: 0,
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_run_is_recorded_with_its_outcomes() {
        let rules = vec![outcome("invitation_email", &["inv1"]), outcome("billing_records", &[])];
        given::<RetentionRun>(vec![])
            .when(RetentionCommand::Record {
                at: at(),
                rules: rules.clone(),
            })
            .then_expect_events(vec![RetentionEvent::RetentionApplied { at: at(), rules }]);
    }

    #[test]
    fn a_day_already_recorded_records_nothing_more() {
        let rules = vec![outcome("invitation_email", &["inv1"])];
        given::<RetentionRun>(vec![RetentionEvent::RetentionApplied {
            at: at(),
            rules: rules.clone(),
        }])
        .when(RetentionCommand::Record { at: at(), rules })
        .then_expect_events(vec![]);
    }

    #[test]
    fn a_rule_twice_or_without_a_code_or_with_a_wrong_count_is_refused() {
        given::<RetentionRun>(vec![])
            .when(RetentionCommand::Record {
                at: at(),
                rules: vec![outcome("a", &[]), outcome("a", &[])],
            })
            .then_expect_error_message("every rule needs a code, and a rule may appear only once in a run");
        given::<RetentionRun>(vec![])
            .when(RetentionCommand::Record {
                at: at(),
                rules: vec![outcome(" ", &[])],
            })
            .then_expect_error_message("every rule needs a code, and a rule may appear only once in a run");
        let mut wrong = outcome("a", &["x"]);
        wrong.affected = 2;
        given::<RetentionRun>(vec![])
            .when(RetentionCommand::Record {
                at: at(),
                rules: vec![wrong],
            })
            .then_expect_error_message("a rule's affected count must be the number of its ids");
    }
}
