//! A counting proxy for PostgreSQL's wire protocol: sqlx connects to it, it connects to the
//! real server, copies every byte both ways unchanged, and reads the messages as they pass.
//!
//! Why a proxy: `pg_stat_statements` is not loaded on these servers, `pg_stat_database`
//! counts read-only implicit transactions as commits and flushes its numbers lazily, and a
//! wrapper inside our code would only count what our code chooses to report. The wire is
//! where a round trip and a commit actually happen, so this is what is counted:
//!
//! - **round trip**: one `ReadyForQuery` (`Z`) from the server after start-up. The client
//!   waits for it at the end of every exchange (a simple `Query`, or extended-protocol messages
//!   up to `Sync`), and sqlx never has two exchanges in flight on one connection; a pool's
//!   liveness ping (`Sync` alone) is a round trip too, as it costs one. sqlx 0.8 pings a
//!   connection when it is taken from the pool (unless told not to) and again, in a task of its
//!   own, when it is given back; [`Recording::waited_round_trips`] leaves out the latter, which
//!   no caller waits for;
//! - **statement**: each `Execute` of a bound prepared statement (its SQL known from the
//!   `Parse` that named it) and each simple `Query`;
//! - **commit** (a writing one): a transaction that reached `ReadyForQuery` with status idle
//!   after a write (`CommandComplete` tag `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `COPY`, or DDL),
//!   ended by its autocommit statement or by `COMMIT`; read-only implicit transactions (a
//!   `SELECT` alone) write nothing, flush nothing, and are reported apart.
//!
//! An `SSLRequest` is answered "no" by the proxy itself (it must read the stream).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One exchange between a client and the server, ended by `ReadyForQuery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    /// Which client connection (numbered from 1 in accept order).
    pub connection: u64,
    /// The SQL of each statement executed in it, in order.
    pub statements: Vec<String>,
    /// The `CommandComplete` tags the server sent, in order (`INSERT 0 1`, `COMMIT`, …).
    pub tags: Vec<String>,
    /// The transaction status after it: `b'I'` idle, `b'T'` in a transaction, `b'E'` failed.
    pub status: u8,
    /// Statements prepared in it (`Parse` messages).
    pub parses: usize,
}

impl RoundTrip {
    /// Nothing prepared, nothing executed: a `Sync` alone, which is how sqlx pings.
    pub fn is_ping(&self) -> bool {
        self.statements.is_empty() && self.parses == 0
    }
}

/// A transaction as the wire shows it: the round trips from the first after idle to the one
/// that returned to idle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub connection: u64,
    pub statements: Vec<String>,
    pub tags: Vec<String>,
    /// Some statement wrote (by its tag).
    pub wrote: bool,
    /// It ended in a commit (not `ROLLBACK`, not an error).
    pub committed: bool,
}

/// Everything the proxy saw since the last [`WireTap::reset`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// Client connections accepted.
    pub connections: u64,
    pub round_trips: Vec<RoundTrip>,
}

impl Recording {
    /// Round trips, all connections together.
    pub fn round_trip_count(&self) -> usize {
        self.round_trips.len()
    }

    /// Round trips that executed no statement: the pool's liveness pings (and statement
    /// preparations, which sqlx does once per statement and connection).
    pub fn empty_round_trips(&self) -> usize {
        self.round_trips.iter().filter(|r| r.statements.is_empty()).count()
    }

    /// The pings sqlx's pool sends when a connection is given back (sqlx 0.8 does it on every
    /// release, in a task of its own, after the caller has its answer): on one connection, a
    /// ping right after an exchange that left the connection idle. The caller waits for none
    /// of them; every other round trip (a ping on acquire, a preparation, a statement) it
    /// waits for.
    pub fn release_pings(&self) -> usize {
        let mut previous: HashMap<u64, &RoundTrip> = HashMap::new();
        let mut count = 0;
        for trip in &self.round_trips {
            if let Some(before) = previous.get(&trip.connection) {
                if trip.is_ping() && !before.is_ping() && before.status == b'I' {
                    count += 1;
                }
            }
            previous.insert(trip.connection, trip);
        }
        count
    }

    /// Round trips that prepared a statement and executed none: sqlx prepares each statement
    /// once per connection, the first time that connection runs it.
    pub fn preparations(&self) -> usize {
        self.round_trips
            .iter()
            .filter(|r| r.parses > 0 && r.statements.is_empty())
            .count()
    }

    /// Client connections that had at least one round trip.
    pub fn connections_used(&self) -> usize {
        let mut seen: Vec<u64> = self.round_trips.iter().map(|r| r.connection).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Round trips a caller waits for: all but the release pings.
    pub fn waited_round_trips(&self) -> usize {
        self.round_trip_count() - self.release_pings()
    }

    /// Statement executions whose SQL contains `needle`.
    pub fn executions_of(&self, needle: &str) -> usize {
        self.round_trips
            .iter()
            .flat_map(|r| &r.statements)
            .filter(|s| s.contains(needle))
            .count()
    }

    /// The transactions, per connection in order, ended by a return to idle. A transaction
    /// still open at the end is left out.
    pub fn transactions(&self) -> Vec<Transaction> {
        let mut open: HashMap<u64, Transaction> = HashMap::new();
        let mut done = Vec::new();
        for trip in &self.round_trips {
            let tx = open.entry(trip.connection).or_insert_with(|| Transaction {
                connection: trip.connection,
                statements: Vec::new(),
                tags: Vec::new(),
                wrote: false,
                committed: false,
            });
            tx.statements.extend(trip.statements.iter().cloned());
            tx.tags.extend(trip.tags.iter().cloned());
            tx.wrote |= trip.tags.iter().any(|t| is_write(t));
            if trip.status == b'I' {
                let mut tx = open.remove(&trip.connection).expect("inserted above");
                // An error in an implicit transaction leaves no tag of the failed statement; an
                // explicit one ends with the tag ROLLBACK (also for COMMIT of a failed one).
                tx.committed = tx.tags.last().map(|t| t != "ROLLBACK").unwrap_or(false);
                if !tx.statements.is_empty() || !tx.tags.is_empty() {
                    done.push(tx);
                }
            }
        }
        done
    }

    /// Transactions that wrote and committed: what costs a WAL flush.
    pub fn writing_commits(&self) -> usize {
        self.transactions().iter().filter(|t| t.wrote && t.committed).count()
    }

    /// Transactions that committed without writing (a `SELECT` in autocommit).
    pub fn read_only_transactions(&self) -> usize {
        self.transactions().iter().filter(|t| !t.wrote && t.committed).count()
    }
}

/// Whether a `CommandComplete` tag is a write.
pub fn is_write(tag: &str) -> bool {
    let verb = tag.split(' ').next().unwrap_or("");
    matches!(
        verb,
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "CREATE" | "DROP" | "ALTER" | "TRUNCATE"
    ) && tag != "COPY 0"
}

/// The proxy: listening on 127.0.0.1, forwarding to the real server.
#[derive(Debug)]
pub struct WireTap {
    address: SocketAddr,
    recording: Arc<Mutex<Recording>>,
    acceptor: JoinHandle<()>,
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl WireTap {
    /// Starts a proxy to `upstream` (`host:port`) on a free port of 127.0.0.1.
    pub async fn start(upstream: String) -> std::io::Result<WireTap> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let recording = Arc::new(Mutex::new(Recording::default()));
        let shared = recording.clone();
        let acceptor = tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                next += 1;
                let connection = next;
                shared.lock().expect("never poisoned").connections += 1;
                let shared = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        relay(client, server, connection, shared).await;
                    }
                });
            }
        });
        Ok(WireTap {
            address,
            recording,
            acceptor,
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What was seen since the last reset.
    pub fn recording(&self) -> Recording {
        self.recording.lock().expect("never poisoned").clone()
    }

    /// Waits, at most `bound`, until every connection's last round trip is a ping or an append
    /// of events: sqlx pings a connection on its way back to the pool after the caller has its
    /// answer, so a reset right after a command could otherwise count that command's release
    /// ping in the next recording. A one-statement append runs on a connection the event log
    /// keeps outside the pool and gives back without a ping (`eventlog::kept_connections`),
    /// unless all of those are in use: the harness runs its counted commands one at a time.
    /// Returns whether every connection settled.
    pub async fn settle(&self, bound: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let settled = {
                let recording = self.recording.lock().expect("never poisoned");
                let mut last: HashMap<u64, bool> = HashMap::new();
                for trip in &recording.round_trips {
                    let appended = !trip.statements.is_empty()
                        && trip.statements.iter().all(|s| s.starts_with("INSERT INTO events"));
                    last.insert(trip.connection, trip.is_ping() || appended);
                }
                last.values().all(|ping| *ping)
            };
            if settled {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Forgets what was seen (connections stay counted as open ones keep running).
    pub fn reset(&self) {
        let mut recording = self.recording.lock().expect("never poisoned");
        recording.round_trips.clear();
        recording.connections = 0;
    }
}

/// Statements sent by the client and not yet answered, shared by the two directions.
#[derive(Default)]
struct Pending {
    statements: Vec<String>,
    parses: usize,
}

async fn relay(mut client: TcpStream, mut server: TcpStream, connection: u64, recording: Arc<Mutex<Recording>>) {
    let pending = Arc::new(Mutex::new(Pending::default()));
    // Start-up: an SSLRequest (answered "no" here), then the StartupMessage; both untyped.
    loop {
        let mut length = [0u8; 4];
        if client.read_exact(&mut length).await.is_err() {
            return;
        }
        let length = u32::from_be_bytes(length) as usize;
        if !(8..=10_000).contains(&length) {
            return;
        }
        let mut body = vec![0u8; length - 4];
        if client.read_exact(&mut body).await.is_err() {
            return;
        }
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if code == 80_877_103 || code == 80_877_104 {
            // SSLRequest or GSSENCRequest: no.
            if client.write_all(b"N").await.is_err() {
                return;
            }
            continue;
        }
        let mut message = (length as u32).to_be_bytes().to_vec();
        message.extend_from_slice(&body);
        if server.write_all(&message).await.is_err() {
            return;
        }
        break;
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream_pending = pending.clone();
    let upward = async move {
        let mut reader = MessageReader::new(b"PBEQC");
        let mut statements: HashMap<String, String> = HashMap::new();
        let mut bound: Option<String> = None;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for (kind, body) in reader.feed(&buffer[..n]) {
                match kind {
                    b'P' => {
                        let (name, rest) = cstr(&body);
                        let (query, _) = cstr(rest);
                        statements.insert(name, query);
                        upstream_pending.lock().expect("never poisoned").parses += 1;
                    }
                    b'B' => {
                        let (_portal, rest) = cstr(&body);
                        let (statement, _) = cstr(rest);
                        bound = statements.get(&statement).cloned();
                    }
                    b'E' => {
                        if let Some(sql) = bound.clone() {
                            upstream_pending.lock().expect("never poisoned").statements.push(sql);
                        }
                    }
                    b'Q' => {
                        let (query, _) = cstr(&body);
                        upstream_pending.lock().expect("never poisoned").statements.push(query);
                    }
                    // Close of a statement ('S'; 'P' closes a portal).
                    b'C' if body.first() == Some(&b'S') => {
                        let (name, _) = cstr(&body[1..]);
                        statements.remove(&name);
                    }
                    _ => {}
                }
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downward = async move {
        let mut reader = MessageReader::new(b"CZ");
        let mut started = false;
        let mut tags = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Counted before the client can see the answer, so a caller that reads the
            // counters right after its query returns sees that query.
            for (kind, body) in reader.feed(&buffer[..n]) {
                match kind {
                    b'C' => tags.push(cstr(&body).0),
                    b'Z' => {
                        let status = body.first().copied().unwrap_or(b'I');
                        if !started {
                            started = true;
                            tags.clear();
                            continue;
                        }
                        let (statements, parses) = {
                            let mut pending = pending.lock().expect("never poisoned");
                            (
                                std::mem::take(&mut pending.statements),
                                std::mem::take(&mut pending.parses),
                            )
                        };
                        recording.lock().expect("never poisoned").round_trips.push(RoundTrip {
                            connection,
                            statements,
                            tags: std::mem::take(&mut tags),
                            status,
                            parses,
                        });
                    }
                    _ => {}
                }
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upward, downward);
}

/// A C string at the start of `bytes`, and what follows it.
fn cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let rest = if end < bytes.len() { &bytes[end + 1..] } else { &[][..] };
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), rest)
}

/// Splits a stream of typed messages (type byte, big-endian length including itself, body),
/// keeping the bodies of the wanted types and skipping the others without buffering them.
struct MessageReader {
    wanted: &'static [u8],
    header: Vec<u8>,
    body: Vec<u8>,
    kind: u8,
    /// Body bytes still to come of the current message.
    remaining: usize,
}

impl MessageReader {
    fn new(wanted: &'static [u8]) -> MessageReader {
        MessageReader {
            wanted,
            header: Vec::with_capacity(5),
            body: Vec::new(),
            kind: 0,
            remaining: 0,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if self.remaining == 0 && self.header.len() < 5 {
                let take = (5 - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() < 5 {
                    break;
                }
                self.kind = self.header[0];
                let length = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                self.remaining = (length as usize).saturating_sub(4);
                self.body.clear();
                if self.remaining == 0 {
                    if self.wanted.contains(&self.kind) {
                        out.push((self.kind, Vec::new()));
                    }
                    self.header.clear();
                }
                continue;
            }
            let take = self.remaining.min(bytes.len());
            if self.wanted.contains(&self.kind) {
                self.body.extend_from_slice(&bytes[..take]);
            }
            bytes = &bytes[take..];
            self.remaining -= take;
            if self.remaining == 0 {
                if self.wanted.contains(&self.kind) {
                    out.push((self.kind, std::mem::take(&mut self.body)));
                }
                self.header.clear();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn messages_split_across_reads_are_reassembled_and_others_skipped() {
        let mut stream = message(b'D', &[7; 100]);
        stream.extend(message(b'C', b"INSERT 0 1\0"));
        stream.extend(message(b'Z', b"I"));
        let mut reader = MessageReader::new(b"CZ");
        let mut seen = Vec::new();
        for chunk in stream.chunks(3) {
            seen.extend(reader.feed(chunk));
        }
        assert_eq!(seen, vec![(b'C', b"INSERT 0 1\0".to_vec()), (b'Z', b"I".to_vec())]);
    }

    #[test]
    fn transactions_are_grouped_by_the_status_of_ready_for_query() {
        let trip = |statements: &[&str], tags: &[&str], status: u8| RoundTrip {
            connection: 1,
            statements: statements.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            status,
            parses: 0,
        };
        let recording = Recording {
            connections: 1,
            round_trips: vec![
                trip(&["SELECT 1"], &["SELECT 1"], b'I'),
                trip(&[], &[], b'I'),
                trip(&["INSERT"], &["INSERT 0 1"], b'I'),
                trip(&["BEGIN"], &["BEGIN"], b'T'),
                trip(&["UPDATE"], &["UPDATE 1"], b'T'),
                trip(&["COMMIT"], &["COMMIT"], b'I'),
                trip(&["BEGIN"], &["BEGIN"], b'T'),
                trip(&["UPDATE"], &["UPDATE 1"], b'T'),
                trip(&["ROLLBACK"], &["ROLLBACK"], b'I'),
            ],
        };
        assert_eq!(recording.round_trip_count(), 9);
        assert_eq!(recording.empty_round_trips(), 1);
        assert_eq!(recording.writing_commits(), 2);
        assert_eq!(recording.read_only_transactions(), 1);
        assert_eq!(recording.executions_of("UPDATE"), 2);
        // The ping after the autocommit SELECT is a release ping; the caller waits for the rest.
        assert_eq!(recording.release_pings(), 1);
        assert_eq!(recording.waited_round_trips(), 8);
    }
}
