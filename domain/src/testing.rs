//! Given/when/then harness for aggregate rules: given past events, when a command, then
//! exactly these events (or this error). Pure and synchronous, like the domain itself.

use crate::Aggregate;
use std::fmt::Debug;

/// Starts a scenario from the aggregate's past events.
pub fn given<A: Aggregate>(events: Vec<A::Event>) -> Given<A> {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    Given { aggregate }
}

/// An aggregate rebuilt from the scenario's past events.
pub struct Given<A: Aggregate> {
    aggregate: A,
}

impl<A: Aggregate> Given<A> {
    /// Runs the command against the rebuilt aggregate.
    pub fn when(self, command: A::Command) -> Then<A> {
        Then {
            result: self.aggregate.handle(command),
        }
    }
}

/// The outcome of a command, to be checked.
pub struct Then<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Error: Debug,
{
    /// Asserts that the command produced exactly these events, in this order.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) {
        match self.result {
            Ok(events) => assert_eq!(events, expected, "the command produced other events"),
            Err(error) => panic!("expected events {expected:?}, but the command was refused: {error:?}"),
        }
    }

    /// Asserts that the command was refused with exactly this message.
    #[track_caller]
    pub fn then_expect_error_message(self, expected: &str) {
        match self.result {
            Ok(events) => panic!("expected the error {expected:?}, but the command produced {events:?}"),
            Err(error) => assert_eq!(error.to_string(), expected),
        }
    }

    /// Gives the raw outcome for assertions the helpers above do not cover.
    pub fn inspect_result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
