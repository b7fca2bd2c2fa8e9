//! HTTP load from a second process: a keep-alive HTTP/1.1 load generator (what `bench load`
//! runs, pinned to its own core), the warp hello-world server (`bench hello`), and resident
//! memory from `/proc`.
//!
//! The generator is closed-loop: `connections` connections each send a GET, read the whole
//! answer (Content-Length or chunked), and send the next, until the time is up. It is a few
//! dozen lines over tokio sockets on one thread, so it costs the load core little per request
//! and needs nothing installed (wrk is not on these machines).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One load run's settings.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub address: SocketAddr,
    pub path: String,
    /// Extra request header lines, `Name: value`.
    pub headers: Vec<String>,
    pub connections: usize,
    pub duration: Duration,
}

/// What one load run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with another status.
    pub non_2xx: u64,
    /// Connection or protocol failures (the connection is opened again).
    pub errors: u64,
    pub seconds: f64,
    /// 2xx answers per second.
    pub requests_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The first status other than 2xx seen, to explain a failed run.
    pub first_bad_status: Option<u16>,
}

/// Runs the load; latencies of 2xx answers only.
pub async fn run_load(config: &LoadConfig) -> LoadResult {
    let mut request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", config.path, config.address);
    for header in &config.headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request = request.into_bytes();
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> = (0..config.connections)
        .map(|_| {
            let request = request.clone();
            let address = config.address;
            tokio::spawn(async move { connection_loop(address, request, deadline).await })
        })
        .collect();
    let mut result = LoadResult::default();
    let mut latencies = Vec::new();
    for task in tasks {
        if let Ok(c) = task.await {
            result.ok += c.ok;
            result.non_2xx += c.non_2xx;
            result.errors += c.errors;
            result.first_bad_status = result.first_bad_status.or(c.first_bad_status);
            latencies.extend(c.latencies);
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    result.requests_per_second = result.ok as f64 / config.duration.as_secs_f64();
    result.p50_us = crate::report::quantile_us(&mut latencies, 0.5);
    result.p99_us = crate::report::quantile_us(&mut latencies, 0.99);
    result
}

#[derive(Default)]
struct ConnectionResult {
    ok: u64,
    non_2xx: u64,
    errors: u64,
    first_bad_status: Option<u16>,
    latencies: Vec<Duration>,
}

async fn connection_loop(address: SocketAddr, request: Vec<u8>, deadline: Instant) -> ConnectionResult {
    let mut result = ConnectionResult::default();
    let mut buffer = Vec::with_capacity(16 * 1024);
    'connect: while Instant::now() < deadline {
        let mut stream = match TcpStream::connect(address).await {
            Ok(s) => s,
            Err(_) => {
                result.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        buffer.clear();
        while Instant::now() < deadline {
            let sent = Instant::now();
            if stream.write_all(&request).await.is_err() {
                result.errors += 1;
                continue 'connect;
            }
            match read_response(&mut stream, &mut buffer).await {
                Ok((status, keep_alive)) => {
                    if (200..300).contains(&status) {
                        result.ok += 1;
                        result.latencies.push(sent.elapsed());
                    } else {
                        result.non_2xx += 1;
                        result.first_bad_status.get_or_insert(status);
                    }
                    if !keep_alive {
                        continue 'connect;
                    }
                }
                Err(_) => {
                    result.errors += 1;
                    continue 'connect;
                }
            }
        }
    }
    result
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Reads one whole response from `buffer` and the stream; leaves what follows it in `buffer`.
/// Returns the status and whether the connection stays open.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP/1.1 response");
    let head_end = loop {
        if let Some(i) = find(buffer, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buffer).await?;
    };
    let head = std::str::from_utf8(&buffer[..head_end])
        .map_err(|_| bad())?
        .to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let keep_alive = !head.contains("\r\nconnection: close");
    let content_length = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("\r\ntransfer-encoding: chunked");
    buffer.drain(..head_end);
    if let Some(length) = content_length {
        while buffer.len() < length {
            fill(stream, buffer).await?;
        }
        buffer.drain(..length);
    } else if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buffer, b"\r\n") {
                    break i;
                }
                fill(stream, buffer).await?;
            };
            let size_text = std::str::from_utf8(&buffer[..line_end]).map_err(|_| bad())?;
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
            let needed = line_end + 2 + size + 2;
            while buffer.len() < needed {
                fill(stream, buffer).await?;
            }
            buffer.drain(..needed);
            if size == 0 {
                break;
            }
        }
    } else if status >= 200 && status != 204 && status != 304 {
        // No length and not chunked: the body ends with the connection.
        return Ok((status, false));
    }
    Ok((status, keep_alive))
}

/// One GET on a fresh connection; its status.
pub async fn get_status(address: SocketAddr, path: &str, headers: &[String]) -> std::io::Result<u16> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = Vec::new();
    Ok(read_response(&mut stream, &mut buffer).await?.0)
}

/// Serves `GET /hello` → `Hello, World!` with warp on a multi-thread runtime, like the
/// service's; runs until the process is killed.
pub fn serve_hello(address: SocketAddr) -> anyhow::Result<()> {
    use warp::Filter;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let hello = warp::path!("hello").map(|| "Hello, World!");
        let listener = tokio::net::TcpListener::bind(address).await?;
        warp::serve(hello).incoming(listener).run().await;
        Ok(())
    })
}

/// The resident set size and its peak (`VmRSS`, `VmHWM`) of a process, in MiB.
pub fn resident_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_generator_reads_keep_alive_answers_of_both_framings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut answered = 0;
            loop {
                let mut chunk = [0u8; 1024];
                let Ok(n) = socket.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(i) = find(&buffer, b"\r\n\r\n") {
                    buffer.drain(..i + 4);
                    let answer: &[u8] = if answered % 2 == 0 {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
                    } else {
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    };
                    answered += 1;
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            }
        });
        let result = run_load(&LoadConfig {
            address,
            path: "/".into(),
            headers: vec![],
            connections: 1,
            duration: Duration::from_millis(200),
        })
        .await;
        assert!(result.ok > 10, "{result:?}");
        assert_eq!(result.errors, 0, "{result:?}");
        assert_eq!(result.non_2xx, 0);
    }

    #[test]
    fn resident_memory_of_this_process_is_read() {
        let (rss, hwm) = resident_mib(std::process::id()).unwrap();
        assert!(rss > 0.0 && hwm >= rss);
    }
}
