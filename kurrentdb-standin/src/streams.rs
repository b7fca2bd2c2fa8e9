//! The `event_store.client.streams.Streams` service: append, read, subscribe.
//!
//! Answers follow `Streams.Append.cs`, `Streams.Read.cs` and the subscription enumerators of
//! the KurrentDB server (see the crate docs for what differs).

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::filter::Filter;
use crate::proto::event_store::client::streams::streams_server::Streams;
use crate::proto::event_store::client::streams::{
    append_req, append_resp, read_req, read_resp, AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq,
    DeleteResp, ReadReq, ReadResp, TombstoneReq, TombstoneResp,
};
use crate::proto::event_store::client::{uuid as wire_uuid, Empty, StreamIdentifier, Uuid as WireUuid};
use crate::store::{
    AppendOutcome, Event, Expected, Proposed, ReadError, Store, TfPos, MAX_APPEND_EVENT_SIZE, MAX_APPEND_SIZE,
};

/// The real server's page size for reads and subscriptions (`Enumerator.DefaultReadBatchSize`).
const READ_BATCH: usize = 32;
/// How many responses wait for a slow reader before the server side waits too.
const RESPONSE_BUFFER: usize = 32;

/// The streams service over a [`Store`].
#[derive(Debug, Clone)]
pub struct StreamsService {
    store: Store,
    shutdown: CancellationToken,
}

impl StreamsService {
    /// A service answering from `store`; its subscriptions end (with `UNAVAILABLE`, as a
    /// stopping server's do) when `shutdown` is cancelled.
    pub fn new(store: Store, shutdown: CancellationToken) -> Self {
        StreamsService { store, shutdown }
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ResponseStream<ReadResp>;
    type BatchAppendStream = ResponseStream<BatchAppendResp>;

    async fn append(&self, request: Request<Streaming<AppendReq>>) -> Result<Response<AppendResp>, Status> {
        let mut incoming = request.into_inner();
        let options = match incoming.message().await? {
            Some(AppendReq {
                content: Some(append_req::Content::Options(options)),
            }) => options,
            _ => return Err(Status::invalid_argument("the first append message must be its options")),
        };
        let stream = stream_name(options.stream_identifier.as_ref())?;
        let expected = match options.expected_stream_revision {
            Some(append_req::options::ExpectedStreamRevision::Revision(r)) => Expected::Exact(r),
            Some(append_req::options::ExpectedStreamRevision::NoStream(_)) => Expected::NoStream,
            Some(append_req::options::ExpectedStreamRevision::Any(_)) => Expected::Any,
            Some(append_req::options::ExpectedStreamRevision::StreamExists(_)) => Expected::StreamExists,
            None => {
                return Err(Status::invalid_argument(
                    "'None' is not a valid ExpectedStreamRevisionOneofCase",
                ))
            }
        };
        let mut events = Vec::new();
        let mut size = 0usize;
        while let Some(message) = incoming.message().await? {
            let Some(append_req::Content::ProposedMessage(proposed)) = message.content else {
                return Err(Status::invalid_argument(
                    "append messages after the first must be proposed events",
                ));
            };
            let id = parse_uuid(proposed.id.as_ref())?;
            let event_type = required_metadata(&proposed.metadata, "type")?;
            let is_json = required_metadata(&proposed.metadata, "content-type")? == "application/json";
            let event_size = proposed.data.len() + proposed.custom_metadata.len() + event_type.len();
            if event_size > MAX_APPEND_EVENT_SIZE {
                return Err(with_exception(
                    Status::invalid_argument(format!(
                        "Event with Id: {id}, Size: {event_size}, exceeds Maximum Append Event Size of {MAX_APPEND_EVENT_SIZE}."
                    )),
                    "maximum-append-event-size-exceeded",
                ));
            }
            size += event_size;
            if size > MAX_APPEND_SIZE {
                return Err(with_exception(
                    Status::invalid_argument(format!("Maximum Append Size of {MAX_APPEND_SIZE} Exceeded.")),
                    "maximum-append-size-exceeded",
                ));
            }
            events.push(Proposed {
                id,
                event_type,
                is_json,
                data: proposed.data,
                custom_metadata: proposed.custom_metadata,
            });
        }
        let result = match self.store.append(&stream, expected, events) {
            AppendOutcome::Success {
                current_revision,
                position,
            } => append_resp::Result::Success(append_success(current_revision, position)),
            AppendOutcome::WrongExpectedVersion { expected, current } => {
                append_resp::Result::WrongExpectedVersion(wrong_expected_version(expected, current))
            }
        };
        Ok(Response::new(AppendResp { result: Some(result) }))
    }

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("'options' is a required argument"))?;
        let uuid_as_string = match options.uuid_option.as_ref().and_then(|u| u.content.as_ref()) {
            Some(read_req::options::uuid_option::Content::String(_)) => true,
            Some(read_req::options::uuid_option::Content::Structured(_)) => false,
            None => return Err(Status::invalid_argument("'uuidOption' is a required argument")),
        };
        let backwards = options.read_direction == read_req::options::ReadDirection::Backwards as i32;
        let filter = match &options.filter_option {
            Some(read_req::options::FilterOption::Filter(f)) => Some((Filter::from_options(f)?, f.clone())),
            Some(read_req::options::FilterOption::NoFilter(_)) | None => None,
        };
        let compatibility = options.control_option.as_ref().map_or(0, |c| c.compatibility);
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        let store = self.store.clone();
        let convert = Converter { uuid_as_string };
        match (options.stream_option, options.count_option) {
            (Some(read_req::options::StreamOption::Stream(s)), Some(read_req::options::CountOption::Count(count))) => {
                if filter.is_some() {
                    return Err(Status::invalid_argument("filters apply to $all only"));
                }
                let stream = stream_name(s.stream_identifier.as_ref())?;
                let from = match s.revision_option {
                    Some(read_req::options::stream_options::RevisionOption::Revision(r)) => Some(r),
                    Some(read_req::options::stream_options::RevisionOption::Start(_)) => None,
                    Some(read_req::options::stream_options::RevisionOption::End(_)) if backwards => None,
                    Some(read_req::options::stream_options::RevisionOption::End(_)) => Some(u64::MAX),
                    None => {
                        return Err(Status::invalid_argument(
                            "'None' is not a valid RevisionOptionOneofCase",
                        ))
                    }
                };
                tokio::spawn(read_stream(
                    store,
                    convert,
                    tx,
                    stream,
                    from,
                    backwards,
                    count,
                    compatibility,
                ));
            }
            (Some(read_req::options::StreamOption::All(a)), Some(read_req::options::CountOption::Count(count))) => {
                let from = match a.all_option {
                    Some(read_req::options::all_options::AllOption::Position(p)) => Some(TfPos {
                        commit: p.commit_position,
                        prepare: p.prepare_position,
                    }),
                    Some(read_req::options::all_options::AllOption::Start(_)) if !backwards => None,
                    Some(read_req::options::all_options::AllOption::End(_)) if backwards => None,
                    // Forwards from the end or backwards from the start: nothing to read.
                    Some(_) => Some(TfPos {
                        commit: if backwards { 0 } else { u64::MAX },
                        prepare: 0,
                    }),
                    None => return Err(Status::invalid_argument("'None' is not a valid AllOptionOneofCase")),
                };
                let filter = filter.map_or(Filter::Default, |(f, _)| f);
                tokio::spawn(read_all(store, convert, tx, from, backwards, count, filter));
            }
            (
                Some(read_req::options::StreamOption::Stream(s)),
                Some(read_req::options::CountOption::Subscription(_)),
            ) => {
                if backwards || filter.is_some() {
                    return Err(Status::invalid_argument("stream subscriptions go forwards, unfiltered"));
                }
                let stream = stream_name(s.stream_identifier.as_ref())?;
                let start = match s.revision_option {
                    Some(read_req::options::stream_options::RevisionOption::Revision(r)) => StreamStart::After(r),
                    Some(read_req::options::stream_options::RevisionOption::Start(_)) => StreamStart::Beginning,
                    Some(read_req::options::stream_options::RevisionOption::End(_)) => StreamStart::End,
                    None => {
                        return Err(Status::invalid_argument(
                            "'None' is not a valid RevisionOptionOneofCase",
                        ))
                    }
                };
                tokio::spawn(until_shutdown(
                    self.shutdown.clone(),
                    tx.clone(),
                    subscribe_stream(store, convert, tx, stream, start),
                ));
            }
            (Some(read_req::options::StreamOption::All(a)), Some(read_req::options::CountOption::Subscription(_))) => {
                if backwards {
                    return Err(Status::invalid_argument("subscriptions go forwards"));
                }
                let start = match a.all_option {
                    Some(read_req::options::all_options::AllOption::Position(p)) => AllStart::After(TfPos {
                        commit: p.commit_position,
                        prepare: p.prepare_position,
                    }),
                    Some(read_req::options::all_options::AllOption::Start(_)) => AllStart::Beginning,
                    Some(read_req::options::all_options::AllOption::End(_)) => AllStart::End,
                    None => return Err(Status::invalid_argument("'None' is not a valid AllOptionOneofCase")),
                };
                let checkpoints = match &filter {
                    Some((_, options)) => {
                        let window = match options.window {
                            Some(read_req::options::filter_options::Window::Max(max)) if max > 0 => max,
                            _ => READ_BATCH as u32,
                        };
                        let multiplier = options.checkpoint_interval_multiplier;
                        if multiplier == 0 {
                            return Err(Status::invalid_argument("checkpointIntervalMultiplier must be above 0"));
                        }
                        Some(u64::from(window) * u64::from(multiplier))
                    }
                    None => None,
                };
                let filter = filter.map_or(Filter::Default, |(f, _)| f);
                tokio::spawn(until_shutdown(
                    self.shutdown.clone(),
                    tx.clone(),
                    subscribe_all(store, convert, tx, start, filter, checkpoints),
                ));
            }
            (stream_option, count_option) => {
                return Err(Status::invalid_argument(format!(
                    "The combination of ({}, {}) is invalid.",
                    if stream_option.is_some() {
                        "stream option"
                    } else {
                        "no stream option"
                    },
                    if count_option.is_some() {
                        "count option"
                    } else {
                        "no count option"
                    },
                )));
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete(&self, _request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        Err(Status::unimplemented("the KurrentDB stand-in does not delete streams"))
    }

    async fn tombstone(&self, _request: Request<TombstoneReq>) -> Result<Response<TombstoneResp>, Status> {
        Err(Status::unimplemented(
            "the KurrentDB stand-in does not tombstone streams",
        ))
    }

    async fn batch_append(
        &self,
        _request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        Err(Status::unimplemented(
            "the KurrentDB stand-in does not serve BatchAppend",
        ))
    }
}

/// Success as `Streams.Append.cs` answers it: revision or no stream, commit == prepare.
fn append_success(current_revision: Option<u64>, position: TfPos) -> append_resp::Success {
    append_resp::Success {
        current_revision_option: Some(match current_revision {
            Some(r) => append_resp::success::CurrentRevisionOption::CurrentRevision(r),
            None => append_resp::success::CurrentRevisionOption::NoStream(Empty {}),
        }),
        position_option: Some(append_resp::success::PositionOption::Position(append_resp::Position {
            commit_position: position.commit,
            prepare_position: position.prepare,
        })),
    }
}

/// `WrongExpectedVersion` exactly as `Streams.Append.cs` fills it: the current fields and the
/// legacy `_20_6_0` ones (an expected `no_stream` is `u64::MAX` there).
fn wrong_expected_version(expected: Expected, current: Option<u64>) -> append_resp::WrongExpectedVersion {
    use append_resp::wrong_expected_version::{
        CurrentRevisionOption, CurrentRevisionOption2060, ExpectedRevisionOption, ExpectedRevisionOption2060,
    };
    let (expected_revision_option, expected_revision_option_20_6_0) = match expected {
        Expected::Any => (
            ExpectedRevisionOption::ExpectedAny(Empty {}),
            ExpectedRevisionOption2060::Any2060(Empty {}),
        ),
        Expected::StreamExists => (
            ExpectedRevisionOption::ExpectedStreamExists(Empty {}),
            ExpectedRevisionOption2060::StreamExists2060(Empty {}),
        ),
        Expected::NoStream => (
            ExpectedRevisionOption::ExpectedNoStream(Empty {}),
            ExpectedRevisionOption2060::ExpectedRevision2060(u64::MAX),
        ),
        Expected::Exact(r) => (
            ExpectedRevisionOption::ExpectedRevision(r),
            ExpectedRevisionOption2060::ExpectedRevision2060(r),
        ),
    };
    let (current_revision_option, current_revision_option_20_6_0) = match current {
        Some(r) => (
            CurrentRevisionOption::CurrentRevision(r),
            CurrentRevisionOption2060::CurrentRevision2060(r),
        ),
        None => (
            CurrentRevisionOption::CurrentNoStream(Empty {}),
            CurrentRevisionOption2060::NoStream2060(Empty {}),
        ),
    };
    append_resp::WrongExpectedVersion {
        current_revision_option_20_6_0: Some(current_revision_option_20_6_0),
        expected_revision_option_20_6_0: Some(expected_revision_option_20_6_0),
        current_revision_option: Some(current_revision_option),
        expected_revision_option: Some(expected_revision_option),
    }
}

fn stream_name(identifier: Option<&StreamIdentifier>) -> Result<String, Status> {
    let identifier = identifier.ok_or_else(|| Status::invalid_argument("'streamIdentifier' is a required argument"))?;
    let name =
        std::str::from_utf8(&identifier.stream_name).map_err(|_| Status::invalid_argument("stream names are UTF-8"))?;
    if name.is_empty() {
        return Err(Status::invalid_argument("stream names are not empty"));
    }
    Ok(name.to_owned())
}

fn parse_uuid(id: Option<&WireUuid>) -> Result<Uuid, Status> {
    match id.and_then(|u| u.value.as_ref()) {
        Some(wire_uuid::Value::Structured(s)) => {
            let high = u128::from(s.most_significant_bits as u64);
            let low = u128::from(s.least_significant_bits as u64);
            Ok(Uuid::from_u128((high << 64) | low))
        }
        Some(wire_uuid::Value::String(s)) => {
            Uuid::parse_str(s).map_err(|_| Status::invalid_argument(format!("'{s}' is not a valid event id")))
        }
        None => Err(Status::invalid_argument("every proposed event needs an id")),
    }
}

fn required_metadata(metadata: &std::collections::HashMap<String, String>, key: &str) -> Result<String, Status> {
    metadata.get(key).cloned().ok_or_else(|| {
        let mut status = with_exception(
            Status::invalid_argument(format!("Required Metadata Property '{key}' is missing")),
            "missing-required-metadata-property",
        );
        status.metadata_mut().insert(
            "required-metadata-properties",
            MetadataValue::from_static("type,content-type"),
        );
        status
    })
}

fn with_exception(mut status: Status, exception: &'static str) -> Status {
    status
        .metadata_mut()
        .insert("exception", MetadataValue::from_static(exception));
    status
}

/// Turns stored events into `ReadResp`s the way `ResponseConverter` does.
#[derive(Clone, Copy)]
struct Converter {
    uuid_as_string: bool,
}

impl Converter {
    fn event(self, event: &Event) -> ReadResp {
        use read_resp::read_event::{Position, RecordedEvent};
        let id = if self.uuid_as_string {
            wire_uuid::Value::String(event.id.to_string())
        } else {
            let value = event.id.as_u128();
            wire_uuid::Value::Structured(wire_uuid::Structured {
                most_significant_bits: (value >> 64) as u64 as i64,
                least_significant_bits: value as u64 as i64,
            })
        };
        let metadata = [
            ("type".to_owned(), event.event_type.clone()),
            ("created".to_owned(), event.created_ticks.to_string()),
            (
                "content-type".to_owned(),
                if event.is_json {
                    "application/json"
                } else {
                    "application/octet-stream"
                }
                .to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        let recorded = RecordedEvent {
            id: Some(WireUuid { value: Some(id) }),
            stream_identifier: Some(StreamIdentifier {
                stream_name: Bytes::from(event.stream.clone()),
            }),
            stream_revision: event.revision,
            prepare_position: event.position,
            commit_position: event.position,
            metadata,
            custom_metadata: event.custom_metadata.clone(),
            data: event.data.clone(),
        };
        ReadResp {
            content: Some(read_resp::Content::Event(read_resp::ReadEvent {
                event: Some(recorded),
                link: None,
                position: Some(Position::CommitPosition(event.position)),
            })),
        }
    }
}

type Responses = mpsc::Sender<Result<ReadResp, Status>>;

fn content(content: read_resp::Content) -> Result<ReadResp, Status> {
    Ok(ReadResp { content: Some(content) })
}

fn timestamp() -> prost_types::Timestamp {
    let now = clock::Clock::now(&clock::SystemClock);
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_stream(
    store: Store,
    convert: Converter,
    tx: Responses,
    stream: String,
    from: Option<u64>,
    backwards: bool,
    count: u64,
    compatibility: u32,
) {
    let mut remaining = count;
    let mut next = from;
    loop {
        let batch = remaining.min(READ_BATCH as u64) as usize;
        let events = match store.read_stream(&stream, next, backwards, batch) {
            Ok(events) => events,
            Err(ReadError::NotFound) => {
                let not_found = read_resp::StreamNotFound {
                    stream_identifier: Some(StreamIdentifier {
                        stream_name: Bytes::from(stream),
                    }),
                };
                let _ = tx.send(content(read_resp::Content::StreamNotFound(not_found))).await;
                return;
            }
        };
        let last = events.last().map(|e| e.revision);
        for event in &events {
            if tx.send(Ok(convert.event(event))).await.is_err() {
                return;
            }
        }
        remaining -= events.len() as u64;
        let more = match last {
            Some(r) if backwards => r.checked_sub(1),
            Some(r) => r.checked_add(1),
            None => None,
        };
        if events.len() < batch || remaining == 0 || more.is_none() {
            break;
        }
        next = more;
    }
    if compatibility >= 1 {
        if let Some(last) = store.last_revision(&stream) {
            let _ = tx.send(content(read_resp::Content::LastStreamPosition(last))).await;
        }
    }
}

async fn read_all(
    store: Store,
    convert: Converter,
    tx: Responses,
    from: Option<TfPos>,
    backwards: bool,
    count: u64,
    filter: Filter,
) {
    let mut remaining = count;
    let mut next = from;
    while remaining > 0 {
        let batch = remaining.min(READ_BATCH as u64) as usize;
        let events = store.read_all(next, backwards, batch, &|e| filter.allows(e));
        let Some(last) = events.last() else { return };
        next = Some(if backwards {
            TfPos {
                commit: last.position,
                prepare: last.position,
            }
        } else {
            TfPos {
                commit: last.post_position,
                prepare: last.post_position,
            }
        });
        for event in &events {
            if tx.send(Ok(convert.event(event))).await.is_err() {
                return;
            }
        }
        remaining -= events.len() as u64;
        if events.len() < batch {
            return;
        }
    }
}

#[derive(Clone, Copy)]
enum StreamStart {
    Beginning,
    After(u64),
    End,
}

#[derive(Clone, Copy)]
enum AllStart {
    Beginning,
    After(TfPos),
    End,
}

async fn confirm(tx: &Responses) -> bool {
    let confirmation = read_resp::SubscriptionConfirmation {
        subscription_id: Uuid::new_v4().to_string(),
    };
    tx.send(content(read_resp::Content::Confirmation(confirmation)))
        .await
        .is_ok()
}

/// Waits until the log changed since `watch` was last marked seen, or the client went away
/// (then `false`).
async fn wait_for_change(watch: &mut tokio::sync::watch::Receiver<u64>, tx: &Responses) -> bool {
    tokio::select! {
        changed = watch.changed() => changed.is_ok(),
        () = tx.closed() => false,
    }
}

async fn subscribe_stream(store: Store, convert: Converter, tx: Responses, stream: String, start: StreamStart) {
    let mut watch = store.watch();
    watch.mark_unchanged();
    if !confirm(&tx).await {
        return;
    }
    // The last revision sent on (or skipped by the start); the next event is the one after it.
    let mut checkpoint = match start {
        StreamStart::Beginning => None,
        StreamStart::After(r) => Some(r),
        StreamStart::End => store.last_revision(&stream),
    };
    let mut caught_up = false;
    loop {
        watch.mark_unchanged();
        let events = store.stream_after(&stream, checkpoint, READ_BATCH);
        for event in &events {
            if tx.send(Ok(convert.event(event))).await.is_err() {
                return;
            }
            checkpoint = Some(event.revision);
        }
        if events.len() == READ_BATCH {
            continue;
        }
        if !caught_up {
            caught_up = true;
            let message = read_resp::CaughtUp {
                timestamp: Some(timestamp()),
                stream_revision: checkpoint.and_then(|r| i64::try_from(r).ok()),
                position: None,
            };
            if tx.send(content(read_resp::Content::CaughtUp(message))).await.is_err() {
                return;
            }
        }
        if !wait_for_change(&mut watch, &tx).await {
            return;
        }
    }
}

async fn subscribe_all(
    store: Store,
    convert: Converter,
    tx: Responses,
    start: AllStart,
    filter: Filter,
    checkpoint_interval: Option<u64>,
) {
    let mut watch = store.watch();
    watch.mark_unchanged();
    if !confirm(&tx).await {
        return;
    }
    // The position of the last event looked at (sent on or filtered out); the next event is
    // strictly after it.
    let mut cursor = match start {
        AllStart::Beginning => None,
        AllStart::After(p) => Some(p),
        AllStart::End => store.last_position(),
    };
    // Where the log ended when the subscription was confirmed: starting there or later, the
    // real server goes live at once, without the catch-up that ends with a checkpoint.
    let live_at = store.last_position();
    let starts_live = match (cursor, live_at) {
        (_, None) => true,
        (Some(c), Some(l)) => c >= l,
        (None, Some(_)) => false,
    };
    let mut considered = 0u64;
    let mut last_checkpoint: Option<TfPos> = None;
    let mut caught_up = false;
    loop {
        watch.mark_unchanged();
        let events: Vec<Arc<Event>> = store.all_after(cursor, READ_BATCH);
        for event in &events {
            cursor = Some(event.tf_pos());
            if filter.allows(event) && tx.send(Ok(convert.event(event))).await.is_err() {
                return;
            }
            considered += 1;
            if let Some(interval) = checkpoint_interval {
                if considered >= interval {
                    considered = 0;
                    if !send_checkpoint(&tx, event.tf_pos(), &mut last_checkpoint).await {
                        return;
                    }
                }
            }
        }
        if events.len() == READ_BATCH {
            continue;
        }
        if !caught_up {
            caught_up = true;
            if checkpoint_interval.is_some() && !starts_live {
                // The real server issues a checkpoint when a catch-up ends.
                if let Some(position) = cursor {
                    if !send_checkpoint(&tx, position, &mut last_checkpoint).await {
                        return;
                    }
                }
            }
            let message = read_resp::CaughtUp {
                timestamp: Some(timestamp()),
                stream_revision: None,
                position: cursor.map(|p| read_resp::Position {
                    commit_position: p.commit,
                    prepare_position: p.prepare,
                }),
            };
            if tx.send(content(read_resp::Content::CaughtUp(message))).await.is_err() {
                return;
            }
        }
        if !wait_for_change(&mut watch, &tx).await {
            return;
        }
    }
}

async fn send_checkpoint(tx: &Responses, position: TfPos, last: &mut Option<TfPos>) -> bool {
    if last.is_some_and(|l| position <= l) {
        return true;
    }
    *last = Some(position);
    let checkpoint = read_resp::Checkpoint {
        commit_position: position.commit,
        prepare_position: position.prepare,
        timestamp: Some(timestamp()),
    };
    tx.send(content(read_resp::Content::Checkpoint(checkpoint)))
        .await
        .is_ok()
}

/// Runs a subscription until it ends by itself or the server shuts down; then the client
/// gets `UNAVAILABLE`, which its subscription treats as a dropped connection.
async fn until_shutdown(
    shutdown: CancellationToken,
    tx: Responses,
    subscription: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        () = subscription => {}
        () = shutdown.cancelled() => {
            let _ = tx.send(Err(Status::unavailable("Server Is Shutting Down"))).await;
        }
    }
}
