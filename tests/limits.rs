//! Slow and abusive clients against the server binary, over real sockets on loopback:
//! `server.client_request_timeout_ms` closes connections that trickle their headers,
//! while a well-behaved client is served as usual; `server.max_header_bytes` answers an
//! oversized head 431 (and a render's body over `templates.max_context_bytes` gets 413).

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::spawn_server;

/// Killed when dropped, whatever the test's outcome.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Sends `request` on a fresh connection and answers the status line's code.
fn status_of(addr: &str, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[test]
fn limits_slow_headers_do_not_starve_a_good_client_and_time_out() {
    let (child, url, _admin, _site) = spawn_server(&[
        ("LEANSERVE_CLIENT_REQUEST_TIMEOUT_MS", "2000"),
        ("LEANSERVE_WORKERS", "2"),
    ]);
    let _server = Killed(child);
    let addr = host_port(&url);
    // 500 connections sending their headers one byte a second.
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let stream = TcpStream::connect(&addr).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        })
        .collect();
    let head = b"GET /app.css HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n";
    let started = Instant::now();
    let mut sent = 0;
    // A well-behaved client meanwhile: each of its requests is answered (within its
    // 10 s read timeout: a bound on starvation, not a latency figure, which a loaded CI
    // machine could not keep). Its p99 is printed.
    let client = std::thread::spawn({
        let addr = addr.clone();
        move || {
            (0..50)
                .map(|_| {
                    let begun = Instant::now();
                    assert_eq!(
                        status_of(
                            &addr,
                            b"GET /app.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        ),
                        200
                    );
                    std::thread::sleep(Duration::from_millis(10));
                    begun.elapsed()
                })
                .collect::<Vec<_>>()
        }
    });
    while started.elapsed() < Duration::from_millis(3500) {
        for stream in &mut slow {
            let _ = stream.write_all(&head[sent..sent + 1]);
        }
        sent += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut latencies = client.join().unwrap();
    latencies.sort();
    println!(
        "{} good requests beside 500 slow connections: p99 {:?}",
        latencies.len(),
        latencies[latencies.len() * 99 / 100]
    );
    // Past the 2 s request timeout (4 bytes of head in) every slow connection was
    // answered 408 or closed: reading gives EOF (after any answer), not a wait.
    let mut closed = 0;
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut answer = Vec::new();
        if stream.read_to_end(&mut answer).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, 500, "slow connections still open after the timeout");
}

#[test]
fn limits_oversized_head_gets_431_and_oversized_render_body_413() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("t.txt"), "x = {{ x }}").unwrap();
    let (child, url, _admin, site) = spawn_server(&[
        ("LEANSERVE_MAX_HEADER_BYTES", "4096"),
        ("LEANSERVE_TEMPLATES_MAX_CONTEXT_BYTES", "1024"),
        ("TEMPLATES_DIR", templates.path().to_str().unwrap()),
    ]);
    let _server = Killed(child);
    let _site = site;
    let addr = host_port(&url);
    let big = "a".repeat(5000);
    let request =
        format!("GET /app.css HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&addr, request.as_bytes()), 431);
    // Under the limit, served.
    let request = format!(
        "GET /app.css HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(3000)
    );
    assert_eq!(status_of(&addr, request.as_bytes()), 200);
    // A render's JSON body over templates.max_context_bytes.
    let body = format!("{{\"x\": \"{}\"}}", "b".repeat(2000));
    let request = format!(
        "POST /templates/t.txt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status_of(&addr, request.as_bytes()), 413);
    let body = "{\"x\": 1}";
    let request = format!(
        "POST /templates/t.txt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status_of(&addr, request.as_bytes()), 200);
}
