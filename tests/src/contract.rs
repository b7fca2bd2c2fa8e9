//! The OpenAPI document (`api/openapi.json`) as a contract: every answer an end-to-end test
//! receives from the service through [`TestApp::client`](crate::TestApp) is checked against it,
//! so a drift between the routes and the document fails the test that met it.
//!
//! For each answer: the path must match a path template of the document (else it must be the
//! router's 404 problem); the method must be one of that path's operations (else a 405 problem
//! with `Allow`); the status must be one the operation lists (there is no `default`); the
//! answer's media type must be one the status lists; and a JSON body must validate against the
//! status's schema (JSON Schema 2020-12, as OpenAPI 3.1 uses, by the `jsonschema` crate, with the
//! document's `#/components` in reach of every `$ref`).
//!
//! The document stays open for clients (an object without `additionalProperties` may grow new
//! fields), but the tests hold the service to exactly what it documents: every object schema
//! with `properties` is checked as closed, so a field the document does not name fails here.
//!
//! A violation panics the test with the request, the status and each schema error. With
//! `DYNAMOI_OPENAPI_VIOLATIONS=<file>` set, violations are appended to that file as JSON lines
//! instead (a survey of the whole suite, to fix the document in one pass).

use jsonschema::Validator;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

/// The variable that turns violations into lines of a file instead of panics.
pub const VIOLATIONS_FILE_VARIABLE: &str = "DYNAMOI_OPENAPI_VIOLATIONS";

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The parsed document and the validators compiled from it so far (one per schema location).
struct Contract {
    document: Value,
    /// `#/components` with every object schema closed ([`closed`]).
    closed_components: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| {
    let document: Value = serde_json::from_str(api::route_table::OPENAPI).expect("api/openapi.json is JSON");
    let mut closed_components = document["components"].clone();
    closed(&mut closed_components);
    Contract {
        document,
        closed_components,
        validators: Mutex::new(HashMap::new()),
    }
});

/// Marks every object schema in `value` that names its `properties` and says nothing about
/// others as `additionalProperties: false`.
fn closed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("properties").is_some_and(Value::is_object) && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(closed);
        }
        Value::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

/// One answer the service gave, as the contract sees it.
#[derive(Debug)]
pub struct Answer<'a> {
    pub method: &'a str,
    /// The request's path, percent-encoded as sent, without the query.
    pub path: &'a str,
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub allow: Option<&'a str>,
    pub body: &'a [u8],
}

/// What is wrong with `answer` by the document; empty when it keeps the contract.
pub fn violations(answer: &Answer<'_>) -> Vec<String> {
    let contract = &*CONTRACT;
    let Some(template) = matching_template(&contract.document, answer.path) else {
        return problem_violations(contract, answer, 404, "a path the document does not list");
    };
    let path_item = &contract.document["paths"][template.as_str()];
    let method = answer.method.to_ascii_lowercase();
    let Some(operation) = path_item
        .get(method.as_str())
        .filter(|_| METHODS.contains(&method.as_str()))
    else {
        let mut found = problem_violations(contract, answer, 405, "a method the path does not have");
        if answer.status == 405 {
            let documented: Vec<String> = METHODS
                .iter()
                .filter(|m| path_item.get(**m).is_some())
                .map(|m| m.to_ascii_uppercase())
                .collect();
            let allowed: Vec<String> = answer
                .allow
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .filter(|m| !m.is_empty())
                .collect();
            if documented.iter().any(|m| !allowed.contains(m)) {
                found.push(format!(
                    "405 with Allow {allowed:?}, but the document lists {documented:?}"
                ));
            }
        }
        return found;
    };
    let status = answer.status.to_string();
    let range = format!("{}XX", answer.status / 100);
    let (key, response) = match operation["responses"].get(&status) {
        Some(response) => (status.clone(), response),
        None => match operation["responses"].get(&range) {
            Some(response) => (range, response),
            None => {
                return vec![format!(
                    "{} {template} answered {status}, which the operation does not list",
                    answer.method
                )]
            }
        },
    };
    let location = match response.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference.trim_start_matches('#').to_string(),
        None => format!("/paths/{}/{method}/responses/{key}", escape(&template)),
    };
    check_content(contract, answer, &location, response)
}

/// Checks an answer that must be a problem with `status` (an unknown path's 404, another
/// method's 405) against `#/components/schemas/Problem`.
fn problem_violations(contract: &Contract, answer: &Answer<'_>, status: u16, what: &str) -> Vec<String> {
    if answer.status != status {
        return vec![format!(
            "{} {} is {what}: expected {status}, got {}",
            answer.method, answer.path, answer.status
        )];
    }
    let response =
        json!({"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    check_content(contract, answer, &format!("problem {status}"), &response)
}

/// Checks the media type and, for JSON, the body of `answer` against the response object
/// `response` (found at `location`, a `$ref` followed).
fn check_content(contract: &Contract, answer: &Answer<'_>, location: &str, response: &Value) -> Vec<String> {
    let response = resolve(&contract.document, response);
    let content = response.get("content").and_then(Value::as_object);
    let media = answer
        .content_type
        .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let Some(content) = content else {
        if answer.body.is_empty() {
            return Vec::new();
        }
        return vec![format!(
            "{} {} answered {} with a body ({media:?}) where the document lists none",
            answer.method, answer.path, answer.status
        )];
    };
    let Some(media) = media else {
        if answer.body.is_empty() && content.is_empty() {
            return Vec::new();
        }
        return vec![format!(
            "{} {} answered {} without a Content-Type",
            answer.method, answer.path, answer.status
        )];
    };
    let Some(media_object) = content.get(&media) else {
        return vec![format!(
            "{} {} answered {} as {media}; the document lists {:?}",
            answer.method,
            answer.path,
            answer.status,
            content.keys().collect::<Vec<_>>()
        )];
    };
    if !media.ends_with("json") {
        return Vec::new();
    }
    let body: Value = match serde_json::from_slice(answer.body) {
        Ok(body) => body,
        Err(error) => {
            return vec![format!(
                "{} {} answered {media} that is not JSON: {error}",
                answer.method, answer.path
            )]
        }
    };
    let Some(schema) = media_object.get("schema") else {
        return Vec::new();
    };
    let pointer = format!("{location}/content/{}/schema", escape(&media));
    record_sample(&pointer, &body);
    let validator = contract.validator(&pointer, schema);
    validator
        .iter_errors(&body)
        .map(|error| {
            format!(
                "{} {} {}: at `{}`: {error}",
                answer.method,
                answer.path,
                answer.status,
                error.instance_path()
            )
        })
        .collect()
}

impl Contract {
    /// The compiled validator of `schema` (found at `key`), with the document's components
    /// beside it so that every `#/components/…` reference resolves.
    fn validator(&self, key: &str, schema: &Value) -> Arc<Validator> {
        let mut validators = self.validators.lock().expect("the validator cache");
        validators
            .entry(key.to_string())
            .or_insert_with(|| {
                let mut root = schema.clone();
                closed(&mut root);
                let Value::Object(mut root) = root else {
                    panic!("the schema at {key} is not an object: {schema}")
                };
                root.insert("components".into(), self.closed_components.clone());
                let compiled = jsonschema::draft202012::new(&Value::Object(root))
                    .unwrap_or_else(|error| panic!("the schema at {key} does not compile: {error}"));
                Arc::new(compiled)
            })
            .clone()
    }
}

/// `value`, or what its local `$ref` points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("`{reference}` points at nothing in api/openapi.json")),
        None => value,
    }
}

/// A path template as one JSON-pointer token.
fn escape(template: &str) -> String {
    template.replace('~', "~0").replace('/', "~1")
}

/// The document's path template that `path` matches; of several, the one with the most literal
/// segments (`/v1/me/consents` over `/v1/me/{x}`).
fn matching_template(document: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    document["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let pattern: Vec<&str> = template.split('/').collect();
            if pattern.len() != segments.len() {
                return None;
            }
            let mut literals = 0;
            for (expected, actual) in pattern.iter().zip(&segments) {
                if expected.starts_with('{') && expected.ends_with('}') {
                    if actual.is_empty() {
                        return None;
                    }
                } else if expected == actual {
                    literals += 1;
                } else {
                    return None;
                }
            }
            Some((literals, template))
        })
        .max_by_key(|(literals, _)| *literals)
        .map(|(_, template)| template.clone())
}

/// The variable naming a file that every JSON body checked is appended to, with the JSON
/// pointer of its schema in the document: what `required` and `null` were read from.
pub const SAMPLES_FILE_VARIABLE: &str = "DYNAMOI_OPENAPI_SAMPLES";

/// Appends `body` (checked against the schema at `pointer`) to the samples file, when one is
/// named: at most 20 bodies per schema and process.
fn record_sample(pointer: &str, body: &Value) {
    static COUNTS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);
    let Ok(file) = std::env::var(SAMPLES_FILE_VARIABLE) else {
        return;
    };
    let mut counts = COUNTS.lock().expect("the sample counts");
    let count = counts.entry(pointer.to_string()).or_default();
    *count += 1;
    if *count > 20 {
        return;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .unwrap_or_else(|error| panic!("open {file}: {error}"));
    // One write per line, so that lines from parallel test processes never interleave.
    let line = format!("{}\n", json!({"schema": pointer, "body": body}));
    out.write_all(line.as_bytes()).expect("append a sample");
}

/// Reports `found` for `answer`: a panic, or lines appended to the file
/// [`VIOLATIONS_FILE_VARIABLE`] names.
pub fn report(answer: &Answer<'_>, found: &[String]) {
    if found.is_empty() {
        return;
    }
    if let Ok(file) = std::env::var(VIOLATIONS_FILE_VARIABLE) {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .unwrap_or_else(|error| panic!("open {file}: {error}"));
        for violation in found {
            let line = json!({
                "test": std::env::args().skip(1).collect::<Vec<_>>().join(" "),
                "method": answer.method, "path": answer.path, "status": answer.status,
                "violation": violation,
            });
            out.write_all(format!("{line}\n").as_bytes())
                .expect("append a violation");
        }
        return;
    }
    let body = String::from_utf8_lossy(&answer.body[..answer.body.len().min(2000)]);
    panic!(
        "the answer breaks api/openapi.json:\n  {}\nanswer body: {body}",
        found.join("\n  ")
    );
}

/// The client middleware that checks every answer from the service at `base_url` (requests to
/// other hosts, such as the platform stand-ins, pass unchecked).
#[derive(Debug)]
pub struct ContractCheck {
    pub base_url: String,
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for ContractCheck {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let checked = request.url().as_str().starts_with(&self.base_url);
        let method = request.method().to_string();
        let path = request.url().path().to_string();
        let response = next.run(request, extensions).await?;
        if !checked {
            return Ok(response);
        }
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        let header = |name: reqwest::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let answer = Answer {
            method: &method,
            path: &path,
            status: status.as_u16(),
            content_type: header(reqwest::header::CONTENT_TYPE),
            allow: header(reqwest::header::ALLOW),
            body: &body,
        };
        report(&answer, &violations(&answer));
        let mut rebuilt = http::Response::new(reqwest::Body::from(body));
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        Ok(reqwest::Response::from(rebuilt))
    }
}

/// A client whose every answer from the service at `base_url` is checked against the document.
pub fn checked_client(base_url: &str) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ContractCheck {
            base_url: base_url.to_string(),
        })
        .build()
}
