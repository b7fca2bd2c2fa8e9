//! Platform connections (P5, P9, P23, P25): one per person and platform, id
//! `<person>.<platform>`. Tokens arrive sealed (AES-256-GCM under the connection's own key);
//! disconnecting or an invalid token ends the connection, and the service then destroys that
//! key at once. Reconnecting starts again under a new key.

use crate::sealed::Sealed;
use crate::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A platform a person can connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Spotify,
    Meta,
    Youtube,
    GoogleAds,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Spotify,
        Platform::Meta,
        Platform::Youtube,
        Platform::GoogleAds,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Platform::Spotify => "spotify",
            Platform::Meta => "meta",
            Platform::Youtube => "youtube",
            Platform::GoogleAds => "google_ads",
        }
    }

    /// The connection id of `person` on this platform.
    pub fn connection_id(&self, person: &str) -> String {
        format!("{person}.{}", self.as_str())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| "platform must be spotify, meta, youtube or google_ads".to_string())
    }
}

/// What a connection holds, per platform. Tokens are sealed; ids are not personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum ConnectionDetails {
    Spotify {
        artist_id: String,
    },
    Meta {
        page_id: String,
        instagram_actor_id: Option<String>,
        access_token: Sealed,
    },
    Youtube {
        channel_id: String,
        channel_name: String,
        refresh_token: Sealed,
    },
    GoogleAds {
        customer_id: String,
        refresh_token: Sealed,
    },
}

impl ConnectionDetails {
    pub fn platform(&self) -> Platform {
        match self {
            ConnectionDetails::Spotify { .. } => Platform::Spotify,
            ConnectionDetails::Meta { .. } => Platform::Meta,
            ConnectionDetails::Youtube { .. } => Platform::Youtube,
            ConnectionDetails::GoogleAds { .. } => Platform::GoogleAds,
        }
    }
}

/// Why a connection ended by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationReason {
    /// The platform answered that the token is invalid, expired or revoked.
    TokenRejected,
}

/// Commands of a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectionCommand {
    Connect {
        person_id: String,
        details: ConnectionDetails,
    },
    Disconnect,
    Invalidate {
        reason: InvalidationReason,
    },
}

/// Events of a connection (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConnectionEvent {
    Connected {
        person_id: String,
        details: ConnectionDetails,
    },
    Disconnected {
        person_id: String,
        platform: Platform,
    },
    ConnectionInvalidated {
        person_id: String,
        platform: Platform,
        reason: InvalidationReason,
    },
}

impl DomainEvent for ConnectionEvent {
    const VERSIONS: &'static [(&'static str, u32)] =
        &[("Connected", 1), ("Disconnected", 1), ("ConnectionInvalidated", 1)];

    fn event_type(&self) -> String {
        match self {
            ConnectionEvent::Connected { .. } => "Connected",
            ConnectionEvent::Disconnected { .. } => "Disconnected",
            ConnectionEvent::ConnectionInvalidated { .. } => "ConnectionInvalidated",
        }
        .to_string()
    }
}

/// Why a connection command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionError {
    #[error("this platform is already connected; disconnect it first")]
    AlreadyConnected,
    #[error("this platform is not connected")]
    NotConnected,
    #[error("{0} must be 1 to 128 letters, digits, `_`, `.`, `:`, `|` or `-`")]
    InvalidId(&'static str),
    #[error("channel_name must be 1 to 200 characters")]
    InvalidChannelName,
}

fn check_id(field: &'static str, id: &str) -> Result<(), ConnectionError> {
    let ok =
        !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:|-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConnectionError::InvalidId(field))
    }
}

/// The state of one connection.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Connection {
    live: Option<(String, Platform)>,
}

impl Connection {
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }
}

impl Aggregate for Connection {
    const TYPE: &'static str = "connection";
    type Command = ConnectionCommand;
    type Event = ConnectionEvent;
    type Error = ConnectionError;

    fn handle(&self, command: ConnectionCommand) -> Result<Vec<ConnectionEvent>, ConnectionError> {
        match command {
            ConnectionCommand::Connect { person_id, details } => {
                if self.live.is_some() {
                    return Err(ConnectionError::AlreadyConnected);
                }
                match &details {
                    ConnectionDetails::Spotify { artist_id } => check_id("artist_id", artist_id)?,
                    ConnectionDetails::Meta {
                        page_id,
                        instagram_actor_id,
                        ..
                    } => {
                        check_id("page_id", page_id)?;
                        if let Some(actor) = instagram_actor_id {
                            check_id("instagram_actor_id", actor)?;
                        }
                    }
                    ConnectionDetails::Youtube {
                        channel_id,
                        channel_name,
                        ..
                    } => {
                        check_id("channel_id", channel_id)?;
                        let n = channel_name.chars().count();
                        if n == 0 || n > 200 || channel_name.chars().any(char::is_control) {
                            return Err(ConnectionError::InvalidChannelName);
                        }
                    }
                    ConnectionDetails::GoogleAds { customer_id, .. } => check_id("customer_id", customer_id)?,
                }
                Ok(vec![ConnectionEvent::Connected { person_id, details }])
            }
            ConnectionCommand::Disconnect => {
                let (person_id, platform) = self.live.clone().ok_or(ConnectionError::NotConnected)?;
                Ok(vec![ConnectionEvent::Disconnected { person_id, platform }])
            }
            ConnectionCommand::Invalidate { reason } => match self.live.clone() {
                // Already ended: nothing more to record, the key is already gone.
                None => Ok(vec![]),
                Some((person_id, platform)) => Ok(vec![ConnectionEvent::ConnectionInvalidated {
                    person_id,
                    platform,
                    reason,
                }]),
            },
        }
    }

    fn apply(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Connected { person_id, details } => self.live = Some((person_id, details.platform())),
            ConnectionEvent::Disconnected { .. } | ConnectionEvent::ConnectionInvalidated { .. } => self.live = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn youtube() -> ConnectionDetails {
        ConnectionDetails::Youtube {
            channel_id: "UC123".into(),
            channel_name: "Ayesha Music".into(),
            refresh_token: Sealed(serde_json::json!({"ct": "x"})),
        }
    }

    fn connected() -> ConnectionEvent {
        ConnectionEvent::Connected {
            person_id: "p1".into(),
            details: youtube(),
        }
    }

    #[test]
    fn a_platform_connects_once_and_reconnects_after_a_disconnect() {
        let connect = ConnectionCommand::Connect {
            person_id: "p1".into(),
            details: youtube(),
        };
        given::<Connection>(vec![])
            .when(connect.clone())
            .then_expect_events(vec![connected()]);
        given::<Connection>(vec![connected()])
            .when(connect.clone())
            .then_expect_error_message("this platform is already connected; disconnect it first");
        let disconnected = ConnectionEvent::Disconnected {
            person_id: "p1".into(),
            platform: Platform::Youtube,
        };
        given::<Connection>(vec![connected(), disconnected])
            .when(connect)
            .then_expect_events(vec![connected()]);
    }

    #[test]
    fn disconnecting_needs_a_live_connection() {
        given::<Connection>(vec![connected()])
            .when(ConnectionCommand::Disconnect)
            .then_expect_events(vec![ConnectionEvent::Disconnected {
                person_id: "p1".into(),
                platform: Platform::Youtube,
            }]);
        given::<Connection>(vec![])
            .when(ConnectionCommand::Disconnect)
            .then_expect_error_message("this platform is not connected");
    }

    #[test]
    fn a_rejected_token_invalidates_once() {
        let invalidated = ConnectionEvent::ConnectionInvalidated {
            person_id: "p1".into(),
            platform: Platform::Youtube,
            reason: InvalidationReason::TokenRejected,
        };
        given::<Connection>(vec![connected()])
            .when(ConnectionCommand::Invalidate {
                reason: InvalidationReason::TokenRejected,
            })
            .then_expect_events(vec![invalidated.clone()]);
        given::<Connection>(vec![connected(), invalidated])
            .when(ConnectionCommand::Invalidate {
                reason: InvalidationReason::TokenRejected,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn ids_and_names_are_validated() {
        given::<Connection>(vec![])
            .when(ConnectionCommand::Connect {
                person_id: "p1".into(),
                details: ConnectionDetails::Spotify {
                    artist_id: "bad id with spaces".into(),
                },
            })
            .then_expect_error_message("artist_id must be 1 to 128 letters, digits, `_`, `.`, `:`, `|` or `-`");
    }
}
