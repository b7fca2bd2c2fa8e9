//! README.md's walkthrough, run as written: every ```sh block marked `<!-- walkthrough -->`
//! is run in order, in one bash session, against the `dynamoi` binary and
//! `tools/platform_standins.py`, and the test fails when a command fails or an HTTP answer is
//! not the one the README shows.
//!
//! What the runner adds around the README's text (and nothing else):
//! - `cargo run --release [-q] -- ARGS` runs the binary under test (this build's `dynamoi`, or
//!   `DYNAMOI_WALKTHROUGH_BIN`, e.g. `target/release/dynamoi`); `… -- serve` starts it in the
//!   background (stopping the one started before, as the reader would with Ctrl-C) and waits
//!   until `/readyz` answers, and the stand-ins too when `$S` names them.
//! - `curl` gets the HTTP status: a command must answer 2xx, or exactly the status a
//!   `# → NNN` comment right after it (or at its end) shows.
//! - Ports 8080 and 8099 become free ports; the data folder is a fresh temporary one; the
//!   clock starts at `DYNAMOI_NOW` = 2026-12-01T10:00:00Z, the instant the README's figures
//!   are shown at, so the walkthrough means the same on any date; each process it starts gets
//!   `DYNAMOI_NOW` moved on by the time the walkthrough has run, so all share one timeline.
//!
//! The script it ran and the session's output are left in `target/tmp/readme-walkthrough/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The instant the walkthrough runs at (see the module documentation).
const WALKTHROUGH_NOW: &str = "2026-12-01T10:00:00Z";

/// A line that marks the next ```sh block as part of the walkthrough.
const MARK: &str = "<!-- walkthrough -->";

/// The bash run before the README's blocks: the `cargo` and `curl` wrappers.
const PRELUDE: &str = r#"set -euo pipefail
# One timeline for every process: each starts its clock where the walkthrough's clock is now.
WALKTHROUGH_START=$(date +%s)
WALKTHROUGH_BASE=$(date -u -d "$DYNAMOI_NOW" +%s)
walkthrough_now() {
  date -u -d "@$((WALKTHROUGH_BASE + $(date +%s) - WALKTHROUGH_START))" +%Y-%m-%dT%H:%M:%SZ
}
stop_all() {
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  [ -n "${DYNAMOI_SERVER_PID:-}" ] && kill "$DYNAMOI_SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop_all EXIT

cargo() {
  # `cargo run --release [-q] -- ARGS…` as the reader types it.
  [ "${1:-}" = run ] || { echo "walkthrough: only 'cargo run' is supported, got: cargo $*" >&2; return 2; }
  shift
  while [ "${1:-}" != "--" ]; do
    [ $# -gt 0 ] || { echo "walkthrough: 'cargo run' without '--'" >&2; return 2; }
    shift
  done
  shift
  if [ "${1:-}" = serve ]; then
    if [ -n "${DYNAMOI_SERVER_PID:-}" ]; then
      kill -INT "$DYNAMOI_SERVER_PID" 2>/dev/null || true
      wait "$DYNAMOI_SERVER_PID" 2>/dev/null || true
    fi
    DYNAMOI_NOW=$(walkthrough_now) "$DYNAMOI_BIN" "$@" >>"$WALKTHROUGH_DIR/serve.log" 2>&1 &
    DYNAMOI_SERVER_PID=$!
    local i
    for i in $(seq 1 600); do
      if command curl -sf -o /dev/null "http://127.0.0.1:$DYNAMOI_PORT/readyz" \
        && { [ -z "${S:-}" ] || command curl -sf -o /dev/null "$S/standins/calls"; }; then
        echo "walkthrough: serve is ready" >&2
        return 0
      fi
      kill -0 "$DYNAMOI_SERVER_PID" 2>/dev/null || { echo "walkthrough: serve exited; see serve.log" >&2; return 1; }
      sleep 0.1
    done
    echo "walkthrough: serve was not ready within 60 s" >&2
    return 1
  fi
  DYNAMOI_NOW=$(walkthrough_now) "$DYNAMOI_BIN" "$@"
}

redacted() { printf '%s' "$*" | sed -E 's/Bearer [A-Za-z0-9._-]+/Bearer …/g'; }

curl() {
  local body status
  body=$(mktemp)
  status=$(command curl -sS -o "$body" -w '%{http_code}' "$@") || { cat "$body"; rm -f "$body"; return 1; }
  cat "$body"
  if [ -n "${EXPECT_STATUS:-}" ]; then
    if [ "$status" != "$EXPECT_STATUS" ]; then
      echo "walkthrough: expected HTTP $EXPECT_STATUS, got $status: curl $(redacted "$@")" >&2
      cat "$body" >&2
      rm -f "$body"
      return 1
    fi
  elif [ "${status:0:1}" != 2 ]; then
    echo "walkthrough: HTTP $status: curl $(redacted "$@")" >&2
    cat "$body" >&2
    rm -f "$body"
    return 1
  fi
  rm -f "$body"
  echo
}
"#;

/// One command of a block: its lines (continuations and heredoc bodies included) and the
/// HTTP status the README shows for it, if any.
#[derive(Debug)]
struct Step {
    lines: Vec<String>,
    expect: Option<String>,
}

/// The ```sh blocks marked as the walkthrough, in order.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARK {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(fence.trim(), "```sh", "{MARK} must be followed by a ```sh block");
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

/// `→ NNN` in a comment: the HTTP status the README shows.
fn shown_status(comment: &str) -> Option<String> {
    let after = comment.split('→').nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() == 3).then_some(digits)
}

/// Splits a block into commands, each with the status its comment shows.
fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            // A comment right after a command (before the next one) may show its status.
            if let (Some(last), Some(status)) = (steps.last_mut(), shown_status(trimmed)) {
                last.expect.get_or_insert(status);
            }
            continue;
        }
        let mut command = vec![line.to_string()];
        let mut open = Open::default();
        open.scan(line);
        loop {
            if let Some(tag) = heredoc_tag(command.last().map(String::as_str).unwrap_or_default()) {
                for body in lines.by_ref() {
                    command.push(body.to_string());
                    if body.trim() == tag {
                        break;
                    }
                }
            }
            if open.is_complete() {
                break;
            }
            let Some(next) = lines.next() else { break };
            command.push(next.to_string());
            open.scan(next);
        }
        let expect = command
            .iter()
            .filter_map(|l| l.find(" #").map(|at| &l[at..]))
            .find_map(shown_status);
        steps.push(Step { lines: command, expect });
    }
    steps
}

/// What a command still has open at the end of a line: a quote, `$(`…`)`, a `for`/`while`
/// loop or an `if`, or a trailing backslash. A command ends at the first line that closes all.
#[derive(Debug, Default)]
struct Open {
    single: bool,
    double: bool,
    parens: i32,
    blocks: i32,
    backslash: bool,
}

impl Open {
    fn scan(&mut self, line: &str) {
        let mut word = String::new();
        let mut chars = line.chars().peekable();
        let end_word = |word: &mut String, blocks: &mut i32| {
            match word.as_str() {
                "do" | "then" => *blocks += 1,
                "done" | "fi" => *blocks -= 1,
                _ => {}
            }
            word.clear();
        };
        self.backslash = false;
        while let Some(c) = chars.next() {
            if self.single {
                self.single = c != '\'';
                continue;
            }
            match c {
                '\\' => self.backslash = chars.next().is_none(),
                '\'' if !self.double => self.single = true,
                '"' => self.double = !self.double,
                '#' if !self.double && word.is_empty() => break,
                '(' if !self.double => self.parens += 1,
                ')' if !self.double => self.parens -= 1,
                c if !self.double && (c.is_whitespace() || ";|&".contains(c)) => end_word(&mut word, &mut self.blocks),
                c if !self.double => word.push(c),
                _ => {}
            }
        }
        end_word(&mut word, &mut self.blocks);
    }

    fn is_complete(&self) -> bool {
        !self.single && !self.double && self.parens <= 0 && self.blocks <= 0 && !self.backslash
    }
}

/// The tag of a quoted heredoc (`<<'TAG'`) that `line` opens.
fn heredoc_tag(line: &str) -> Option<String> {
    let at = line.find("<<'")?;
    let rest = &line[at + 3..];
    Some(rest[..rest.find('\'')?].to_string())
}

/// The whole script: the prelude, then each step, with its expected status around it.
fn script(blocks: &[String], dynamoi_port: u16, standin_port: u16) -> String {
    let mut out = String::from(PRELUDE);
    for (n, block) in blocks.iter().enumerate() {
        out.push_str(&format!("\necho '=== walkthrough block {}' >&2\n", n + 1));
        for step in steps(block) {
            let text = step
                .lines
                .join("\n")
                .replace("localhost:8080", &format!("localhost:{dynamoi_port}"))
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{dynamoi_port}"))
                .replace("8099", &standin_port.to_string());
            match step.expect {
                Some(status) => out.push_str(&format!("EXPECT_STATUS={status}\n{text}\nunset EXPECT_STATUS\n")),
                None => out.push_str(&format!("{text}\n")),
            }
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

#[test]
fn the_readme_walkthrough_runs_top_to_bottom_as_written() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = walkthrough_blocks(&readme);
    assert!(
        blocks.len() >= 8,
        "README.md marks {} blocks with {MARK}; the walkthrough has at least 8",
        blocks.len()
    );
    let dynamoi_port = free_port();
    let standin_port = free_port();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-walkthrough");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("the output folder");
    // The reader's folder: the repository's tools, and a data folder of its own.
    let work = std::env::temp_dir().join(format!("dynamoi-walkthrough-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&work).expect("a working folder");
    std::os::unix::fs::symlink(root.join("tools"), work.join("tools")).expect("tools link");
    let script_path = out_dir.join("walkthrough.sh");
    std::fs::write(&script_path, script(&blocks, dynamoi_port, standin_port)).expect("the script");
    let bin = std::env::var("DYNAMOI_WALKTHROUGH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dynamoi").to_string());
    let output = Command::new("bash")
        .arg(&script_path)
        .current_dir(&work)
        .env_remove("DYNAMOI_DATABASE_URL")
        .env_remove("DYNAMOI_EVENT_STORE_URL")
        .env_remove("DYNAMOI_CONFIG_FILE")
        .env("DYNAMOI_BIN", &bin)
        .env("DYNAMOI_PORT", dynamoi_port.to_string())
        .env("DYNAMOI_LISTEN", format!("127.0.0.1:{dynamoi_port}"))
        .env("DYNAMOI_DATA_DIR", work.join("data"))
        .env("DYNAMOI_NOW", WALKTHROUGH_NOW)
        .env("DYNAMOI_LOG", "warn")
        .env("WALKTHROUGH_DIR", &out_dir)
        .output()
        .expect("bash runs");
    std::fs::write(out_dir.join("stdout.txt"), &output.stdout).expect("stdout saved");
    std::fs::write(out_dir.join("stderr.txt"), &output.stderr).expect("stderr saved");
    let _ = std::fs::remove_dir_all(&work);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    assert!(
        output.status.success(),
        "the walkthrough stopped ({}); the last lines it wrote to stderr:\n{}\n(all in {})",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        out_dir.display()
    );
}

#[test]
fn a_status_shown_after_a_command_is_the_status_expected_of_it() {
    let block = "curl -s -X POST localhost:8080/a \\\n  -d '{}'\n# → 409 {\"code\":\"x\"}\ncurl -s localhost:8080/b   # → 404: gone\ncurl -s localhost:8080/c\n# → per reading: recorded";
    let parsed = steps(block);
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[0].lines.len(), 2);
    assert_eq!(parsed[0].expect.as_deref(), Some("409"));
    assert_eq!(parsed[1].expect.as_deref(), Some("404"));
    assert_eq!(parsed[2].expect, None);
}

#[test]
fn quotes_substitutions_and_loops_keep_a_command_whole() {
    let block = "P=$(curl -s -X POST localhost:8080/a \\\n  -d '{\"a\":1,\n       \"b\":2}')\n# → 201\nfor i in 1 2; do\n  echo \"$i # not a comment\"\ndone\necho last";
    let parsed = steps(block);
    assert_eq!(parsed.len(), 3, "{parsed:?}");
    assert_eq!(parsed[0].lines.len(), 3);
    assert_eq!(parsed[0].expect.as_deref(), Some("201"));
    assert_eq!(parsed[1].lines.len(), 3);
}

#[test]
fn a_heredoc_belongs_to_its_command() {
    let block = "curl -s --data-binary @- <<'NDJSON'\n{\"a\":1}\n# not a comment\nNDJSON\necho done";
    let parsed = steps(block);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].lines.len(), 4);
}
