//! The HTTP server: dynamoi's own accept loop over hyper's HTTP/1.1 connections, serving the
//! warp routes. warp's `serve` has no header or body read timeout, waits for every connection
//! forever on shutdown, and logs every malformed request at ERROR; here:
//! - a request's headers must arrive within `DYNAMOI_HTTP_HEADER_TIMEOUT_MS` (hyper's
//!   `header_read_timeout`; the connection is closed), and each piece of its body within
//!   `DYNAMOI_HTTP_BODY_TIMEOUT_MS` (tower-http's `TimeoutBody`; answered 408 problem+json);
//! - on shutdown, connections finish their request in flight and close; after
//!   `DYNAMOI_SHUTDOWN_GRACE_MS` the ones still open are closed, so a stalled client cannot keep
//!   the process alive;
//! - what hyper refuses before any route runs (a request line over 65,534 bytes: 414; headers
//!   over hyper's buffer: 431; an unparsable request: 400) is answered as problem+json, not
//!   hyper's empty response, and such client errors are logged at INFO, never ERROR;
//! - the client's address reaches the routes as a [`ClientAddr`] request extension.

use crate::problem::ApiError;
pub use crate::settings::Timeouts;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The peer address of the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The request body the routes read: hyper's, with the body read timeout.
pub type RequestBody = tower_http::timeout::TimeoutBody<hyper::body::Incoming>;

/// Serves `service` (`warp::service(routes)`) on `listener` until `shutdown` completes, then
/// lets connections finish within the grace and closes the rest.
pub async fn serve<S, B>(service: S, listener: TcpListener, shutdown: impl Future<Output = ()>, timeouts: Timeouts)
where
    S: tower_service::Service<
            http::Request<RequestBody>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment, as hyper's server did.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Finished connections' tasks are collected as we go.
        while connections.try_join_next().is_some() {}
        let service = service.clone();
        let body_read = timeouts.body_read;
        let handler = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let mut service = service.clone();
            let mut request = request.map(|body| tower_http::timeout::TimeoutBody::new(body_read, body));
            request.extensions_mut().insert(ClientAddr(remote));
            async move { service.call(request).await }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header_read)
            .serve_connection(TokioIo::new(ProblemOnRefusal::new(stream)), handler);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                log_connection_error(&error);
            }
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; waiting for requests in flight");
    if tokio::time::timeout(timeouts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        while connections.try_join_next().is_some() {}
        tracing::warn!(
            connections = connections.len(),
            grace_ms = timeouts.shutdown_grace.as_millis() as u64,
            "connections still open after the shutdown grace are closed"
        );
    }
    connections.shutdown().await;
}

/// A connection that ended in error: the client's doing (INFO) or ours (ERROR).
fn log_connection_error(error: &hyper::Error) {
    if error.is_parse() || error.is_parse_too_large() || error.is_timeout() || error.is_incomplete_message() {
        tracing::info!(%error, "a client's connection ended: malformed, too large or too slow");
    } else if error.is_closed() || error.is_canceled() || error.is_body_write_aborted() {
        tracing::debug!(%error, "a connection closed early");
    } else if error.source().and_then(|s| s.downcast_ref::<io::Error>()).is_some() {
        tracing::debug!(%error, "a connection's socket failed");
    } else {
        tracing::error!(%error, "a connection failed");
    }
}

use std::error::Error as _;

/// The problem+json answer for a request hyper refused before routing (`status` is 400, 414 or
/// 431), closing the connection.
fn refusal(status: u16) -> Vec<u8> {
    let error = match status {
        414 => ApiError::UriTooLong,
        431 => ApiError::HeadersTooLarge,
        _ => ApiError::InvalidRequest("the request is not valid HTTP/1.1".into()),
    };
    let body = error.problem_body(&crate::telemetry::request_id(None));
    let reason = match status {
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The status of a response hyper writes by itself for a request it could not parse: a 400,
/// 414 or 431 head with no content type (every response of the routes has one).
fn hyper_refusal(head: &[u8]) -> Option<u16> {
    let status = [
        (b"HTTP/1.1 400 ", 400),
        (b"HTTP/1.1 414 ", 414),
        (b"HTTP/1.1 431 ", 431),
    ]
    .into_iter()
    .find(|(prefix, _)| head.starts_with(*prefix))?
    .1;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    (!lower.windows(13).any(|w| w == b"content-type:")).then_some(status)
}

/// A socket whose writes pass through, except hyper's own empty answer to a request it could
/// not parse, which becomes a problem+json answer of the same status.
struct ProblemOnRefusal<IO> {
    io: IO,
    /// A replacement still being written, and how much of it is written.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<IO> ProblemOnRefusal<IO> {
    fn new(io: IO) -> Self {
        ProblemOnRefusal { io, replacing: None }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ProblemOnRefusal<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ProblemOnRefusal<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            if let Some(status) = hyper_refusal(buf) {
                self.replacing = Some((refusal(status), 0, buf.len()));
            }
        }
        let this = &mut *self;
        match &mut this.replacing {
            None => Pin::new(&mut this.io).poll_write(cx, buf),
            Some((bytes, written, claimed)) => {
                while *written < bytes.len() {
                    let n = ready!(Pin::new(&mut this.io).poll_write(cx, &bytes[*written..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    *written += n;
                }
                // What hyper asked to write counts as written; anything after it is dropped
                // (the connection closes after a refusal).
                let claimed = std::mem::take(claimed);
                Poll::Ready(Ok(if claimed > 0 { claimed } else { buf.len() }))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_own_empty_refusals_are_replaced() {
        assert_eq!(
            hyper_refusal(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n"),
            Some(414)
        );
        assert_eq!(
            hyper_refusal(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"),
            Some(431)
        );
        assert_eq!(
            hyper_refusal(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 9\r\n\r\n"
            ),
            None
        );
        assert_eq!(hyper_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
    }
}
