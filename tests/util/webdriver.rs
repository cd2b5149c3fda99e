//! A small W3C WebDriver client for the browser tests: starts ChromeDriver on a port it
//! chooses itself, opens one headless Chromium session with a fresh profile, and talks
//! JSON over HTTP with awc. Only the endpoints the tests use are here (navigate, execute
//! a script, window size, screenshot) and ChromeDriver's console log.
//!
//! Nothing outlives a [`Browser`]: dropping it ends the session (ChromeDriver then quits
//! Chromium), kills the browser by its process id if that failed, then kills ChromeDriver.
//! Chromium and ChromeDriver come from the Debian packages `chromium` and
//! `chromium-driver`, which `scripts/test.sh` installs; without them [`Browser::start`]
//! panics saying so, so a missing browser fails the tests instead of skipping them.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// Where the Debian packages put the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long one WebDriver command may take (starting Chromium is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Screenshots of a tall page run to a few MB of base64.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// ChromeDriver plus one Chromium session.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>`, ChromeDriver's base URL.
    driver_url: String,
    /// `/session/<id>`; empty once the session has ended.
    session_path: String,
    /// Chromium's process id as ChromeDriver reports it (`goog:processID`), for the
    /// last-resort kill in `Drop`.
    browser_pid: Option<u64>,
    client: awc::Client,
    /// ChromeDriver's and Chromium's stderr, kept for failure messages.
    log: Arc<Mutex<String>>,
    /// The fresh profile folder (`--user-data-dir`), removed on drop.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session with a 1280×1000 window.
    pub async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Chromium and ChromeDriver \
                 (Debian packages chromium and chromium-driver); run scripts/test.sh, \
                 which installs them"
            );
        }
        // --port=0: ChromeDriver picks a free port and prints it, so there is no race
        // between choosing a port and binding it.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        drain(driver.stderr.take().unwrap(), Arc::clone(&log));
        let mut stdout = BufReader::new(driver.stdout.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while port.is_none() && stdout.read_line(&mut line).unwrap_or(0) > 0 {
            // "ChromeDriver was started successfully on port 34057."
            port = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim().trim_end_matches('.').parse::<u16>().ok());
            line.clear();
        }
        drain(stdout.into_inner(), Arc::clone(&log));
        let Some(port) = port else {
            let _ = driver.kill();
            panic!(
                "chromedriver did not report its port: {}",
                log.lock().unwrap()
            );
        };

        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            driver_url: format!("http://127.0.0.1:{port}"),
            session_path: String::new(),
            browser_pid: None,
            client: awc::Client::builder().timeout(COMMAND_TIMEOUT).finish(),
            log,
            _profile: profile,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Keeps the page's console for `console_errors`.
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                    "--window-size=1280,1000",
                ],
            },
        }}});
        let session = browser
            .command("POST", "/session", Some(capabilities))
            .await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"));
        browser.session_path = format!("/session/{id}");
        browser.browser_pid = session["capabilities"]["goog:processID"].as_u64();
        browser
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        self.session_command("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and answers
    /// what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Resizes the window (outer size, which headless Chromium uses as the viewport).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.session_command(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&self) -> Vec<u8> {
        let encoded = self.session_command("GET", "/screenshot", None).await;
        base64_decode(encoded.as_str().expect("the screenshot is a base64 string"))
    }

    /// The page's console messages of level SEVERE (errors, failed loads) since the
    /// last call, through ChromeDriver's log endpoint (not part of W3C WebDriver).
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .session_command("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await;
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Everything ChromeDriver and Chromium wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn session_command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        assert!(!self.session_path.is_empty(), "no session");
        let path = format!("{}{path}", self.session_path);
        self.command(method, &path, body).await
    }

    /// Sends one WebDriver command and answers its `value`; a WebDriver error panics with
    /// the driver's message.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.driver_url);
        let request = match method {
            "GET" => self.client.get(&url),
            "POST" => self.client.post(&url),
            "DELETE" => self.client.delete(&url),
            other => panic!("unsupported method {other}"),
        };
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e}"));
        let bytes = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: reading the answer: {e}"));
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "WebDriver {method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let value = answer["value"].clone();
        if !response.status().is_success() || value.get("error").is_some_and(Value::is_string) {
            panic!(
                "WebDriver {method} {path} answered {}: {} ({})",
                response.status(),
                value["error"],
                value["message"]
            );
        }
        value
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await, so the session ends over a plain blocking socket:
        // ChromeDriver answers DELETE /session/<id> once Chromium has quit.
        if !self.session_path.is_empty() {
            let ended = blocking_delete(&self.driver_url, &self.session_path);
            if !ended && let Some(pid) = self.browser_pid {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Copies everything `from` writes into `log` on a background thread, so the pipe never
/// fills up and blocks the writer.
fn drain(mut from: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
}

/// `DELETE <path>` on `base` (`http://host:port`) over a fresh blocking connection;
/// answers whether a 2xx came back.
fn blocking_delete(base: &str, path: &str) -> bool {
    let host = base.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status_line = String::new();
    let _ = BufReader::new(stream).read_line(&mut status_line);
    status_line
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.starts_with('2'))
}

/// Decodes standard base64 (RFC 4648, with or without padding); panics on anything else.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: byte {byte:#04x}"),
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn webdriver_base64_decodes_the_rfc_4648_vectors() {
    for (encoded, decoded) in [
        ("", ""),
        ("Zg==", "f"),
        ("Zm8=", "fo"),
        ("Zm9v", "foo"),
        ("Zm9vYg==", "foob"),
        ("Zm9vYmE=", "fooba"),
        ("Zm9vYmFy", "foobar"),
    ] {
        assert_eq!(base64_decode(encoded), decoded.as_bytes(), "{encoded}");
    }
    assert_eq!(base64_decode("+/8="), [0xfb, 0xff]);
}
