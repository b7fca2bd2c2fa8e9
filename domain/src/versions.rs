//! Versions of stored events, and the upcasters that bring an old stored payload to the shape
//! the code has today.
//!
//! Every row of the event log names its event type and the version of its payload's shape.
//! Each event enum keeps its own registry ([`DomainEvent::VERSIONS`]: every event type it stores
//! and that type's current version) and its upcasters ([`DomainEvent::upcast_step`]: version `n`
//! to `n + 1` of one type, a pure JSON → JSON function). [`decode`] (or [`decode_text`], for a
//! payload still in its stored text) is the one way a stored payload becomes a domain event: it checks the type and version against the registry, steps
//! an old payload through the upcasters v1 → v2 → … → current, deserialises, and checks that the
//! payload is the event its row names. A type the enum does not know, a version newer than the
//! code, or a payload of the wrong shape is a typed error, never a panic or a default.
//!
//! The rule this serves: a stored shape never changes in place. A new shape is a new version in
//! `VERSIONS`, an upcaster from the previous one, and a golden fixture of the new version
//! (`tests/fixtures/events/<aggregate_type>/<EventType>.v<N>.json`, checked by
//! `tests/tests/event_fixtures.rs`).

pub use crate::aggregate::{current_version, missing_upcaster, UpcastError};
use crate::DomainEvent;
use serde::de::{DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// Why a stored event could not be decoded. Messages never quote the payload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Its type or version is unknown, or no upcaster could bring it to the current shape.
    #[error(transparent)]
    Version(#[from] UpcastError),
    /// The (upcast) payload does not deserialise into the current shape. Only serde's category
    /// and position are kept: its message may quote a value, which may be personal.
    #[error("the {event_type} payload does not have the shape of version {version} ({category} error at line {line}, column {column})")]
    Shape {
        event_type: String,
        version: u32,
        category: String,
        line: usize,
        column: usize,
    },
    /// The payload is another event than the one its row names.
    #[error("the row names {event_type} but its payload is {found}")]
    TypeMismatch { event_type: String, found: String },
}

/// The event type and current version `event` is stored under. An error only when its type is
/// missing from `VERSIONS`, so such an event is refused rather than stored under no version.
pub fn stored_as<E: DomainEvent>(event: &E) -> Result<(String, u32), UpcastError> {
    let event_type = event.event_type();
    match current_version::<E>(&event_type) {
        Some(version) => Ok((event_type, version)),
        None => Err(UpcastError::UnknownEventType { event_type }),
    }
}

/// Parses a stored version: a whole number from 1, in plain decimal digits.
fn parse_version(event_type: &str, version: &str) -> Result<u32, UpcastError> {
    let invalid = || UpcastError::InvalidVersion {
        event_type: event_type.to_string(),
        version: version.chars().take(16).collect(),
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match version.parse::<u32>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(invalid()),
    }
}

/// Checks a stored (type, version) against `E`'s registry: the stored version as a number and
/// the type's current version.
fn check<E: DomainEvent>(event_type: &str, version: &str) -> Result<(u32, u32), UpcastError> {
    let current = current_version::<E>(event_type).ok_or_else(|| UpcastError::UnknownEventType {
        event_type: event_type.chars().take(128).collect(),
    })?;
    let stored = parse_version(event_type, version)?;
    if stored > current {
        return Err(UpcastError::NewerVersion {
            event_type: event_type.to_string(),
            version: stored,
            current,
        });
    }
    Ok((stored, current))
}

/// Brings a payload stored as `version` of `event_type` to the current version, one upcaster at
/// a time. A payload already current is returned as it is.
pub fn upcast<E: DomainEvent>(event_type: &str, version: &str, payload: Value) -> Result<Value, UpcastError> {
    let (stored, current) = check::<E>(event_type, version)?;
    (stored..current).try_fold(payload, |payload, from| E::upcast_step(event_type, from, payload))
}

/// Decodes a stored payload of `event_type` at `version` as an `E`: through the upcasters when
/// it is older than the code, then deserialised and checked to be the event its row names.
pub fn decode<E: DomainEvent>(event_type: &str, version: &str, payload: &Value) -> Result<E, DecodeError> {
    let (stored, current) = check::<E>(event_type, version)?;
    let event = if stored == current {
        // The common case borrows the payload: no copy on the projections' hot path.
        E::deserialize(payload).map_err(|e| shape_error(event_type, current, e))?
    } else {
        upcast_and_deserialize(event_type, stored, current, payload.clone())?
    };
    checked_type(event_type, event)
}

/// [`decode`] of a payload still in its stored text: a current payload is deserialised straight
/// from the text (no `Value` in between, what bulk loads read); an older one is parsed and goes
/// through the upcasters. Same checks, same errors.
pub fn decode_text<E: DomainEvent>(event_type: &str, version: &str, payload: &str) -> Result<E, DecodeError> {
    let (stored, current) = check::<E>(event_type, version)?;
    let event = if stored == current {
        serde_json::from_str(payload).map_err(|e| shape_error(event_type, current, e))?
    } else {
        let parsed: Value = serde_json::from_str(payload).map_err(|e| shape_error(event_type, stored, e))?;
        upcast_and_deserialize(event_type, stored, current, parsed)?
    };
    checked_type(event_type, event)
}

/// A payload that does not have the shape of `version`: serde's category and position only.
fn shape_error(event_type: &str, version: u32, error: serde_json::Error) -> DecodeError {
    DecodeError::Shape {
        event_type: event_type.to_string(),
        version,
        category: format!("{:?}", error.classify()),
        line: error.line(),
        column: error.column(),
    }
}

/// Steps a payload stored as `stored` through the upcasters to `current`, then deserialises it.
fn upcast_and_deserialize<E: DomainEvent>(
    event_type: &str,
    stored: u32,
    current: u32,
    payload: Value,
) -> Result<E, DecodeError> {
    let upcast = (stored..current).try_fold(payload, |payload, from| E::upcast_step(event_type, from, payload))?;
    serde_json::from_value(upcast).map_err(|e| shape_error(event_type, current, e))
}

/// The decoded event, if it is the event its row names.
fn checked_type<E: DomainEvent>(event_type: &str, event: E) -> Result<E, DecodeError> {
    let found = event.event_type();
    if found != event_type {
        return Err(DecodeError::TypeMismatch {
            event_type: event_type.to_string(),
            found,
        });
    }
    Ok(event)
}

/// The fields of an externally tagged struct variant, `{"<variant>": {…}}`, for an upcaster to
/// edit; `None` when the payload is not that shape.
pub fn variant_fields<'a>(payload: &'a mut Value, variant: &str) -> Option<&'a mut Map<String, Value>> {
    payload.get_mut(variant).and_then(Value::as_object_mut)
}

/// The names under which serde stores the variants of enum `E` (the keys of its externally
/// tagged JSON), read from its `Deserialize` impl: the completeness check of the golden
/// fixtures uses it to demand a fixture for every variant, with no hand-kept list to forget.
/// Empty for a type that is not an enum.
pub fn stored_variants<E: DeserializeOwned>() -> &'static [&'static str] {
    let mut found = None;
    let _ = E::deserialize(VariantProbe(&mut found));
    found.unwrap_or(&[])
}

/// A deserializer that answers nothing but records the variant names an enum asks for.
struct VariantProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for VariantProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not an enum"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(variants);
        Err(serde::de::Error::custom("variants recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    /// An event enum with one type at version 3, to test the chain without a real evolution.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Renamed { full_name: String, tags: Vec<String> },
        Plain,
    }

    impl DomainEvent for Sample {
        const VERSIONS: &'static [(&'static str, u32)] = &[("Renamed", 3), ("Plain", 1)];

        fn event_type(&self) -> String {
            match self {
                Sample::Renamed { .. } => "Renamed",
                Sample::Plain => "Plain",
            }
            .to_string()
        }

        fn upcast_step(event_type: &str, from: u32, mut payload: Value) -> Result<Value, UpcastError> {
            let shape = |expected| UpcastError::UnexpectedShape {
                event_type: event_type.to_string(),
                from,
                expected,
            };
            match (event_type, from) {
                // v1 → v2: `name` became `full_name`.
                ("Renamed", 1) => {
                    let fields = variant_fields(&mut payload, "Renamed").ok_or_else(|| shape("an object"))?;
                    let name = fields.remove("name").ok_or_else(|| shape("`name`"))?;
                    fields.insert("full_name".into(), name);
                    Ok(payload)
                }
                // v2 → v3: `tags` added, empty for what was stored before.
                ("Renamed", 2) => {
                    let fields = variant_fields(&mut payload, "Renamed").ok_or_else(|| shape("an object"))?;
                    fields.insert("tags".into(), json!([]));
                    Ok(payload)
                }
                _ => Err(missing_upcaster(event_type, from)),
            }
        }
    }

    #[test]
    fn an_old_payload_steps_through_every_upcaster_to_the_current_shape() {
        let v1 = json!({"Renamed": {"name": "x"}});
        assert_eq!(
            upcast::<Sample>("Renamed", "1", v1.clone()).unwrap(),
            json!({"Renamed": {"full_name": "x", "tags": []}})
        );
        assert_eq!(
            decode::<Sample>("Renamed", "1", &v1).unwrap(),
            Sample::Renamed {
                full_name: "x".into(),
                tags: vec![]
            }
        );
        assert_eq!(
            decode::<Sample>("Renamed", "2", &json!({"Renamed": {"full_name": "y"}})).unwrap(),
            Sample::Renamed {
                full_name: "y".into(),
                tags: vec![]
            }
        );
        let current = json!({"Renamed": {"full_name": "z", "tags": ["a"]}});
        assert_eq!(upcast::<Sample>("Renamed", "3", current.clone()).unwrap(), current);
        assert_eq!(decode::<Sample>("Plain", "1", &json!("Plain")).unwrap(), Sample::Plain);
    }

    #[test]
    fn unknown_types_newer_or_malformed_versions_and_wrong_shapes_are_typed_errors() {
        let v3 = json!({"Renamed": {"full_name": "z", "tags": []}});
        assert_eq!(
            decode::<Sample>("Renamed", "4", &v3),
            Err(DecodeError::Version(UpcastError::NewerVersion {
                event_type: "Renamed".into(),
                version: 4,
                current: 3
            }))
        );
        assert_eq!(
            decode::<Sample>("Gone", "1", &json!("Gone")),
            Err(DecodeError::Version(UpcastError::UnknownEventType {
                event_type: "Gone".into()
            }))
        );
        for bad in ["", "0", "v1", "+1", "1.0", "99999999999"] {
            assert!(
                matches!(
                    decode::<Sample>("Plain", bad, &json!("Plain")),
                    Err(DecodeError::Version(UpcastError::InvalidVersion { .. }))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode::<Sample>("Renamed", "1", &json!({"Renamed": {"full": "x"}})),
            Err(DecodeError::Version(UpcastError::UnexpectedShape {
                event_type: "Renamed".into(),
                from: 1,
                expected: "`name`"
            }))
        );
        assert!(matches!(
            decode::<Sample>("Renamed", "3", &json!({"Renamed": {"full_name": 7, "tags": []}})),
            Err(DecodeError::Shape { version: 3, .. })
        ));
        assert_eq!(
            decode::<Sample>("Renamed", "3", &json!("Plain")),
            Err(DecodeError::TypeMismatch {
                event_type: "Renamed".into(),
                found: "Plain".into()
            })
        );
    }

    #[test]
    fn decoding_the_stored_text_gives_what_decoding_the_parsed_payload_gives() {
        let cases = [
            ("Renamed", "1", json!({"Renamed": {"name": "x"}})),
            ("Renamed", "2", json!({"Renamed": {"full_name": "y"}})),
            ("Renamed", "3", json!({"Renamed": {"full_name": "z", "tags": ["a"]}})),
            ("Plain", "1", json!("Plain")),
            ("Renamed", "4", json!({"Renamed": {"full_name": "z", "tags": []}})),
            ("Gone", "1", json!("Gone")),
            ("Plain", "v1", json!("Plain")),
            ("Renamed", "1", json!({"Renamed": {"full": "x"}})),
            ("Renamed", "3", json!({"Renamed": {"full_name": 7, "tags": []}})),
            ("Renamed", "3", json!("Plain")),
        ];
        for (event_type, version, payload) in cases {
            let text = payload.to_string();
            let from_text = decode_text::<Sample>(event_type, version, &text);
            let from_value = decode::<Sample>(event_type, version, &payload);
            match (&from_text, &from_value) {
                // Positions differ between a text and a `Value`; the category and version do not.
                (
                    Err(DecodeError::Shape {
                        version: a,
                        category: c,
                        ..
                    }),
                    Err(DecodeError::Shape {
                        version: b,
                        category: d,
                        ..
                    }),
                ) => assert_eq!((a, c), (b, d), "{event_type} v{version}"),
                _ => assert_eq!(from_text, from_value, "{event_type} v{version}"),
            }
        }
        assert!(matches!(
            decode_text::<Sample>("Renamed", "1", "{not json"),
            Err(DecodeError::Shape { version: 1, .. })
        ));
    }

    #[test]
    fn a_shape_error_never_quotes_the_payload() {
        let secret = "alice@example.com";
        let error = decode::<Sample>(
            "Renamed",
            "3",
            &json!({"Renamed": {"full_name": {"x": secret}, "tags": []}}),
        )
        .unwrap_err();
        assert!(!error.to_string().contains(secret), "{error}");
    }

    #[test]
    fn events_are_stored_under_their_types_current_version() {
        let renamed = Sample::Renamed {
            full_name: "x".into(),
            tags: vec![],
        };
        assert_eq!(renamed.event_version(), "3");
        assert_eq!(Sample::Plain.event_version(), "1");
        assert_eq!(stored_as(&renamed), Ok(("Renamed".to_string(), 3)));
    }

    #[test]
    fn the_variants_of_an_enum_are_read_from_serde() {
        assert_eq!(stored_variants::<Sample>(), &["Renamed", "Plain"]);
        assert!(stored_variants::<String>().is_empty());
    }
}
