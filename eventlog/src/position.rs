//! A place in the global feed, and the consistency token commands return.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A place in the global feed. Ordered as the feed is: by commit, then by position.
///
/// On PostgreSQL `commit` is the writing transaction's id (`xid8`) and `global` the identity
/// position; on SQLite `commit` is always 0 and `global` alone orders the feed. Rendered as
/// `commit.global` (e.g. `0.42`), which is the consistency token clients pass back as
/// `min_position`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub commit: i64,
    pub global: i64,
}

impl Position {
    /// Before the first event.
    pub const START: Position = Position { commit: 0, global: 0 };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.commit, self.global)
    }
}

/// A consistency token that is not of the form `commit.global`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a position is two non-negative whole numbers joined by a dot, such as `0.42`")]
pub struct InvalidPosition;

impl FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (commit, global) = s.split_once('.').ok_or(InvalidPosition)?;
        let parse = |part: &str| -> Result<i64, InvalidPosition> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidPosition);
            }
            part.parse().map_err(|_| InvalidPosition)
        };
        Ok(Position {
            commit: parse(commit)?,
            global: parse(global)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_round_trips_through_its_token() {
        let p = Position {
            commit: 7_512,
            global: 42,
        };
        assert_eq!(p.to_string(), "7512.42");
        assert_eq!("7512.42".parse::<Position>(), Ok(p));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "42", "1.", ".1", "-1.2", "1.2.3", "a.b", "1.99999999999999999999"] {
            assert_eq!(bad.parse::<Position>(), Err(InvalidPosition), "{bad:?}");
        }
    }

    #[test]
    fn positions_order_by_commit_then_global() {
        let a = Position { commit: 1, global: 9 };
        let b = Position { commit: 2, global: 3 };
        assert!(a < b);
    }
}
