//! Tracing set-up, request ids, and the Prometheus metrics recorder.

use crate::settings::{LogFormat, Settings};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global tracing subscriber once; later calls do nothing. Logs go to stderr.
pub fn init_tracing(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("dynamoi_http_request_duration_seconds".into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .expect("the bucket list is not empty")
            .install_recorder()
            .unwrap_or_else(|_| {
                // Another recorder is installed (an embedding program's): render from our own.
                PrometheusBuilder::new().build_recorder().handle()
            })
    })
}

/// The request id to use: the caller's `X-Request-Id` when it is short and plain, else a new
/// UUIDv7. Never trust a caller's value into logs unchecked.
pub fn request_id(header: Option<&str>) -> String {
    match header {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// A route label for metrics: path segments that look like ids become `:id`, so the label
/// set stays small.
pub fn route_label(path: &str) -> String {
    match crate::route_table::routes().iter().find(|r| r.matches(path)) {
        Some(route) => route.template.clone(),
        None => "unmatched".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        assert_ne!(request_id(Some("evil\nlog line")), "evil\nlog line");
        assert_eq!(request_id(None).len(), 36);
    }

    #[test]
    fn route_labels_hide_ids() {
        assert_eq!(route_label("/v1/policies/current"), "/v1/policies/current");
        assert_eq!(
            route_label("/v1/artists/0193a1b2-7c3d/dashboard"),
            "/v1/artists/{artist_id}/dashboard"
        );
        assert_eq!(route_label("/wp-admin/x1/y2"), "unmatched");
    }
}
