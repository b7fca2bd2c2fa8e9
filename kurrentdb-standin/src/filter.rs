//! Server-side `$all` filters: stream-name or event-type prefixes or regex, as the real
//! server's `EventFilter` applies them, on top of its default `$all` exclusions.

use regex::Regex;
use tonic::Status;

use crate::proto::event_store::client::streams::read_req::options::{filter_options, FilterOptions};
use crate::store::Event;

/// What a `$all` read or subscription lets through.
#[derive(Debug, Clone)]
pub enum Filter {
    /// No filter requested: only the default `$all` exclusions.
    Default,
    /// Stream name starts with one of these.
    StreamPrefixes(Vec<String>),
    /// Stream name matches (anywhere, unanchored, as .NET's `Regex.Match`).
    StreamRegex(Regex),
    /// Event type starts with one of these.
    TypePrefixes(Vec<String>),
    /// Event type matches.
    TypeRegex(Regex),
}

impl Filter {
    /// The filter a request's `FilterOptions` ask for. As on the real server a non-empty regex
    /// wins over the prefixes.
    pub fn from_options(options: &FilterOptions) -> Result<Self, Status> {
        let (expression, on_stream) = match &options.filter {
            Some(filter_options::Filter::StreamIdentifier(e)) => (e, true),
            Some(filter_options::Filter::EventType(e)) => (e, false),
            None => return Err(Status::invalid_argument("'None' is not a valid filter")),
        };
        if expression.regex.is_empty() {
            let prefixes = expression.prefix.clone();
            return Ok(if on_stream {
                Filter::StreamPrefixes(prefixes)
            } else {
                Filter::TypePrefixes(prefixes)
            });
        }
        let regex = Regex::new(&expression.regex)
            .map_err(|e| Status::invalid_argument(format!("invalid filter regex: {e}")))?;
        Ok(if on_stream {
            Filter::StreamRegex(regex)
        } else {
            Filter::TypeRegex(regex)
        })
    }

    /// Whether `event` passes.
    pub fn allows(&self, event: &Event) -> bool {
        if !default_all_allows(&event.stream) {
            return false;
        }
        match self {
            Filter::Default => true,
            Filter::StreamPrefixes(prefixes) => prefixes.iter().any(|p| event.stream.starts_with(p.as_str())),
            Filter::StreamRegex(regex) => regex.is_match(&event.stream),
            Filter::TypePrefixes(prefixes) => prefixes.iter().any(|p| event.event_type.starts_with(p.as_str())),
            Filter::TypeRegex(regex) => regex.is_match(&event.event_type),
        }
    }
}

/// `EventFilter.DefaultAllFilterStrategy`: every `$all` read hides the epoch stream and the
/// checkpoint and parked streams of persistent subscriptions to `$all`.
fn default_all_allows(stream: &str) -> bool {
    if !stream.starts_with('$') {
        return true;
    }
    if stream == "$epoch-information" {
        return false;
    }
    const PS_ALL: &str = "$persistentsubscription-$all::";
    !(stream.starts_with(PS_ALL) && (stream.ends_with("-checkpoint") || stream.ends_with("-parked")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::event_store::client::streams::read_req::options::filter_options::Expression;

    fn event(stream: &str, event_type: &str) -> Event {
        Event {
            id: uuid::Uuid::nil(),
            stream: stream.into(),
            revision: 0,
            position: 1,
            post_position: 2,
            event_type: event_type.into(),
            is_json: true,
            created_ticks: 0,
            data: bytes::Bytes::new(),
            custom_metadata: bytes::Bytes::new(),
        }
    }

    fn options(on_stream: bool, regex: &str, prefixes: &[&str]) -> FilterOptions {
        let expression = Expression {
            regex: regex.into(),
            prefix: prefixes.iter().map(|p| (*p).into()).collect(),
        };
        FilterOptions {
            filter: Some(if on_stream {
                filter_options::Filter::StreamIdentifier(expression)
            } else {
                filter_options::Filter::EventType(expression)
            }),
            window: None,
            checkpoint_interval_multiplier: 1,
        }
    }

    #[test]
    fn the_clients_exclude_system_events_regex_hides_dollar_names() -> Result<(), Status> {
        let on_stream = Filter::from_options(&options(true, "^[^\\$].*", &[]))?;
        assert!(on_stream.allows(&event("orders-1", "$metadata")));
        assert!(!on_stream.allows(&event("$settings", "Settings")));
        let on_type = Filter::from_options(&options(false, "^[^\\$].*", &[]))?;
        assert!(!on_type.allows(&event("orders-1", "$metadata")));
        assert!(on_type.allows(&event("orders-1", "Placed")));
        Ok(())
    }

    #[test]
    fn prefixes_and_defaults() -> Result<(), Status> {
        let prefixes = Filter::from_options(&options(true, "", &["a-", "b-"]))?;
        assert!(prefixes.allows(&event("b-1", "T")));
        assert!(!prefixes.allows(&event("c-1", "T")));
        assert!(!Filter::Default.allows(&event("$epoch-information", "T")));
        assert!(Filter::Default.allows(&event("$stats", "T")));
        assert!(Filter::from_options(&options(true, "(", &[])).is_err());
        Ok(())
    }
}
