//! Auditors' verification of the hash chains (P18): one stream, or every stream in the log.

use crate::{App, AppError, Call, Role};
use eventlog::chain::StreamVerification;

/// Verifies one stream (`TYPE/ID`) or every stream in the log.
pub async fn verify(app: &App, stream: Option<&str>) -> Result<Vec<StreamVerification>, AppError> {
    let streams = match stream {
        Some(stream) => {
            let (aggregate_type, aggregate_id) = stream
                .split_once('/')
                .filter(|(t, i)| !t.is_empty() && !i.is_empty())
                .ok_or_else(|| AppError::InvalidInput("stream must be `aggregate_type/aggregate_id`".into()))?;
            vec![(aggregate_type.to_string(), aggregate_id.to_string())]
        }
        None => app.log.streams().await?,
    };
    let mut reports = Vec::with_capacity(streams.len());
    for (aggregate_type, aggregate_id) in streams {
        let report = app.log.verify_stream(&aggregate_type, &aggregate_id).await?;
        if stream.is_some() && report.events == 0 {
            return Err(AppError::NotFound("there is no such stream".into()));
        }
        reports.push(report);
    }
    Ok(reports)
}

/// An auditor verifies chains.
pub async fn verify_for(app: &App, call: &Call, stream: Option<&str>) -> Result<Vec<StreamVerification>, AppError> {
    call.caller.require(&[Role::Auditor])?;
    verify(app, stream).await
}
