//! A small WebDriver client (the W3C protocol, JSON over HTTP with the `reqwest` the tests
//! already use) driving headless Chromium through chromedriver, for the console's browser
//! tests: open a page, run a script, click, type, read the browser's console log, take a
//! screenshot.
//!
//! Chromium and chromedriver come from Debian's packages (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them): `/usr/bin/chromium` and `/usr/bin/chromedriver`,
//! or the paths in `DYNAMOI_TEST_CHROMIUM` and `DYNAMOI_TEST_CHROMEDRIVER`.

use crate::TempDir;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Keys as WebDriver spells them in `send_keys`.
pub mod keys {
    pub const ENTER: &str = "\u{E007}";
    pub const TAB: &str = "\u{E004}";
    pub const HOME: &str = "\u{E011}";
    pub const END: &str = "\u{E010}";
    pub const LEFT: &str = "\u{E012}";
    pub const RIGHT: &str = "\u{E014}";
}

/// One entry of the browser's console log.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub level: String,
    pub source: String,
    pub message: String,
}

/// A headless Chromium session; ended (and chromedriver stopped) when dropped.
pub struct Browser {
    client: reqwest::Client,
    session_url: String,
    port: u16,
    session: String,
    driver: Child,
    _profile: TempDir,
}

fn program(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|_| default.into());
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium and chromium-driver (`apt-get install -y chromium chromium-driver`, as .ci/run does) or set {variable}",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium with a fresh profile, its
    /// viewport `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromedriver = program("DYNAMOI_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("DYNAMOI_TEST_CHROMIUM", "/usr/bin/chromium");
        let profile = TempDir::new();
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let ready = crate::wait_until(Duration::from_secs(30), || async {
            match client.get(format!("{base}/status")).send().await {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .map(|v| v["value"]["ready"] == json!(true))
                    .unwrap_or(false),
                Err(_) => false,
            }
        })
        .await;
        let mut browser = Browser {
            client,
            session_url: String::new(),
            port,
            session: String::new(),
            driver,
            _profile: profile,
        };
        assert!(ready, "chromedriver did not become ready within 30 s");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-extensions".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", browser._profile.0.join("profile").display()),
            format!("--window-size={width},{height}"),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let response: Value = browser
            .client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {response}"))
            .to_string();
        browser.session_url = format!("{base}/session/{session}");
        browser.session = session;
        browser.resize(width, height).await;
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.session_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path} answered {status}: {}",
            value["value"]["message"]
        );
        value["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.command(reqwest::Method::POST, "/refresh", Some(json!({}))).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and answers what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Polls `script` until it returns something other than `null`, `false` or `""`, for at
    /// most `timeout`; answers that value, or panics naming `what`.
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script, vec![]).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value != json!("");
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let alert = self
                    .execute("return document.getElementById('alert')?.textContent || ''", vec![])
                    .await;
                panic!("waited {timeout:?} for {what}; the page's alert says: {alert}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects (the first one), or a panic.
    pub async fn find(&self, css: &str) -> String {
        let value = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {value}"))
            .to_string()
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Types `text` (which may hold [`keys`]) into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Presses and releases `key` (one of [`keys`] or a character) wherever the focus is.
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
        ]}]});
        self.command(reqwest::Method::POST, "/actions", Some(actions)).await;
    }

    /// Empties the input `css` selects.
    pub async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({})))
            .await;
    }

    /// Sets the viewport to `width` × `height` CSS pixels (the window is made larger by
    /// whatever the browser keeps for itself).
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
        let inner = self
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await;
        let (w, h) = (inner[0].as_u64().unwrap_or(0), inner[1].as_u64().unwrap_or(0));
        let (dw, dh) = (u64::from(width).saturating_sub(w), u64::from(height).saturating_sub(h));
        if dw > 0 || dh > 0 {
            self.command(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({ "width": u64::from(width) + dw, "height": u64::from(height) + dh })),
            )
            .await;
        }
    }

    /// The viewport's width in CSS pixels.
    pub async fn viewport_width(&self) -> u64 {
        self.execute("return window.innerWidth", vec![])
            .await
            .as_u64()
            .unwrap_or(0)
    }

    /// Saves a PNG of the whole page (the viewport is made as tall as the page first, then
    /// put back) to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let size = self
            .execute(
                "return [window.innerWidth, window.innerHeight, document.documentElement.scrollHeight]",
                vec![],
            )
            .await;
        let (width, height, full) = (
            size[0].as_u64().unwrap_or(1280) as u32,
            size[1].as_u64().unwrap_or(800) as u32,
            size[2].as_u64().unwrap_or(800).min(6000) as u32,
        );
        if full > height {
            self.resize(width, full).await;
        }
        let encoded = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            encoded.as_str().expect("a base64 screenshot"),
        )
        .expect("the screenshot is base64");
        if full > height {
            self.resize(width, height).await;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the screenshot folder");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// The browser's console log since the last call (each entry is returned once).
    pub async fn logs(&self) -> Vec<LogEntry> {
        let value = self
            .command(reqwest::Method::POST, "/se/log", Some(json!({ "type": "browser" })))
            .await;
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_string(),
                source: e["source"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (which closes Chromium) with a plain HTTP request, since drop cannot
        // await; then stops chromedriver.
        if !self.session.is_empty() {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session, self.port
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer);
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
