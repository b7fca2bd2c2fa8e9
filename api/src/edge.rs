//! The one check of text at the HTTP edge: no control characters (NUL and the like) in any
//! JSON text (values and keys, at any depth), query parameter or path segment. PostgreSQL
//! cannot store NUL in text, a terminal or log viewer can be steered by escape sequences, and
//! no field of dynamoi needs them: such a request is refused with 422 before anything runs.
//!
//! JSON text may hold tab, line feed and carriage return (free text such as a policy's text or
//! summary has lines); every other C0 control (U+0000–U+001F), DEL (U+007F) and every C1
//! control (U+0080–U+009F) is refused. The path and the query, percent-decoded, may hold no
//! control character at all.

use crate::ApiError;
use serde_json::Value;
use warp::{Filter, Rejection};

/// Whether `c` is refused in JSON text.
fn refused_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Refuses a JSON value holding a refused control character in any string or key, naming where
/// (a JSON pointer of at most 128 characters, never the value).
pub fn check_json(value: &Value) -> Result<(), ApiError> {
    fn walk(value: &Value, pointer: &mut String) -> Result<(), ApiError> {
        let refuse = |pointer: &str| {
            let at: String = if pointer.is_empty() { "/" } else { pointer }
                .chars()
                .take(128)
                .collect();
            Err(ApiError::Validation(format!(
                "a text field holds a control character (at {at}); only tab, line feed and carriage return are allowed"
            )))
        };
        match value {
            Value::String(text) if text.chars().any(refused_in_text) => refuse(pointer),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{index}"));
                    walk(item, pointer)?;
                    pointer.truncate(len);
                }
                Ok(())
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    let len = pointer.len();
                    if key.chars().any(char::is_control) {
                        return refuse(pointer);
                    }
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    walk(item, pointer)?;
                    pointer.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(value, &mut String::new())
}

/// Refuses a JSON body (already known to be JSON) holding a refused control character. A body
/// that is not JSON passes: the typed decoding reports that.
pub fn check_json_body(body: &[u8]) -> Result<(), ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => check_json(&value),
        Err(_) => Ok(()),
    }
}

/// Why a request's path or query was refused at the edge.
#[derive(Debug)]
pub struct ControlInUri(pub &'static str);

impl warp::reject::Reject for ControlInUri {}

impl ControlInUri {
    /// The problem the rejection is answered with.
    pub fn error(&self) -> ApiError {
        ApiError::Validation(format!("the {} holds a control character", self.0))
    }
}

fn has_control(raw: &str) -> bool {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .chars()
        .any(char::is_control)
        // `+` is a space in a query: not a control. A raw control byte cannot reach here
        // (HTTP refuses it), but is checked all the same.
        || raw.chars().any(char::is_control)
}

/// A filter refusing every request whose path or query, percent-decoded, holds a control
/// character; it runs before any route.
pub fn clean_uri() -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(|path: warp::path::FullPath, query: String| async move {
            if has_control(path.as_str()) {
                Err(warp::reject::custom(ControlInUri("path")))
            } else if has_control(&query) {
                Err(warp::reject::custom(ControlInUri("query")))
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_and_escapes_are_refused_lines_and_tabs_are_not() {
        assert!(check_json(&json!({"text": "line one\nline two\tand\r\n"})).is_ok());
        for bad in ["a\u{0}b", "\u{1b}[31m", "\u{7f}", "\u{85}"] {
            let error = check_json(&json!({"outer": [{"summary_of_changes": bad}]})).unwrap_err();
            assert_eq!(
                error.to_string(),
                "a text field holds a control character (at /outer/0/summary_of_changes); only tab, line feed and carriage return are allowed"
            );
        }
        assert!(check_json(&json!({"a\u{0}": 1})).is_err());
    }

    #[test]
    fn percent_encoded_controls_are_found_in_a_path_or_query() {
        assert!(has_control("/v1/artists/a%00b"));
        assert!(has_control("from=2026-01-01%0A"));
        assert!(!has_control("/v1/artists/a%20b"));
        assert!(!has_control("name=a+b&x=%C3%A9"));
    }
}
