//! HTTPS on the listeners, over real sockets against the `leanserve` binary, with
//! certificates made in the test (rcgen: a CA and a leaf for localhost and 127.0.0.1):
//! HTTP/1.1 and HTTP/2 chosen by ALPN, TLS 1.2 and 1.3, a cleartext request to the TLS
//! port answered with no HTTP, the admin listener's own certificate with its token, and
//! every bad certificate or key stopping start-up with exit code 2 naming its key.

mod util;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use actix_web::http::Version;
use rustls::pki_types::CertificateDer;

/// A CA and a leaf it signed, as PEM files in a folder of their own.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    /// The leaf in cert.pem.
    leaf: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        // A key of another certificate, for the mismatch.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("other-key.pem"), other.serialize_pem()).unwrap();
        let mut pki = Pki {
            ca: ca_cert.der().clone(),
            ca_cert,
            ca_key,
            leaf: CertificateDer::from(Vec::new()),
            dir,
        };
        pki.renew();
        pki
    }

    /// Issues a new leaf for localhost and 127.0.0.1 into cert.pem and key.pem (each
    /// replaced by a rename, as a renewal tool does).
    fn renew(&mut self) {
        self.issue(None);
    }

    /// [`Pki::renew`], the leaf valid until `not_after` (rcgen's default without).
    fn issue(&mut self, not_after: Option<std::time::SystemTime>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        if let Some(not_after) = not_after {
            params.not_after = not_after.into();
        }
        let leaf = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        self.replace("key.pem", &key.serialize_pem());
        self.replace("cert.pem", &leaf.pem());
        self.leaf = leaf.der().clone();
    }

    fn replace(&self, name: &str, contents: &str) {
        let temporary = self.dir.path().join(format!(".{name}.new"));
        std::fs::write(&temporary, contents).unwrap();
        std::fs::rename(&temporary, self.dir.path().join(name)).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A client trusting `ca`, offering `alpn` and the TLS `versions`.
fn client(
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(util::tls_client_config(ca, alpn, versions)))
        .finish()
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Starts the binary with TLS from `pki` on the serving listener (and `env`); answers
/// the process, its URLs and the site.
fn start(pki: &Pki, env: &[(&str, &str)]) -> (Running, String, String, tempfile::TempDir) {
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let mut vars = vec![
        ("LEANSERVE_TLS_CERT", cert.as_str()),
        ("LEANSERVE_TLS_KEY", key.as_str()),
    ];
    vars.extend_from_slice(env);
    spawn(&vars)
}

/// [`util::spawn_server`], the process in a [`Running`].
fn spawn(env: &[(&str, &str)]) -> (Running, String, String, tempfile::TempDir) {
    let (child, url, admin, site) = util::spawn_server(env);
    (Running(child), url, admin, site)
}

/// A running server, killed when dropped (also when a test fails halfway, so no server
/// outlives its test holding the test harness's output open).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stop(child: Running) {
    drop(child);
}

#[actix_rt::test]
async fn tls_serves_http1_and_h2_as_alpn_chooses() {
    let pki = Pki::new();
    let (child, url, _admin, _site) = start(&pki, &[]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let url = url.replace("127.0.0.1", "localhost");
    for (alpn, versions, version) in [
        (&[&b"h2"[..], b"http/1.1"][..], BOTH, Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], BOTH, Version::HTTP_11),
        (&[][..], BOTH, Version::HTTP_11),
        (
            &[&b"h2"[..]][..],
            &[&rustls::version::TLS12][..],
            Version::HTTP_2,
        ),
        (
            &[&b"h2"[..]][..],
            &[&rustls::version::TLS13][..],
            Version::HTTP_2,
        ),
    ] {
        let client = client(&pki.ca, alpn, versions);
        let mut response = client
            .get(format!("{url}/app.css"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{alpn:?}: {e}"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version, "{alpn:?} {versions:?}");
        assert_eq!(response.body().await.unwrap(), "body { color: teal }");
        // Ranges and validators as over cleartext HTTP/1.1.
        let etag = response.headers().get("etag").unwrap().clone();
        let range = client
            .get(format!("{url}/app.css"))
            .insert_header(("Range", "bytes=0-3"))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
        assert_eq!(range, "body");
        let revalidated = client
            .get(format!("{url}/app.css"))
            .insert_header(("If-None-Match", etag))
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304);
        assert_eq!(revalidated.version(), version);
    }
    stop(child);
}

#[test]
fn tls_a_cleartext_request_to_the_tls_port_gets_no_http_answer() {
    let pki = Pki::new();
    let (child, url, _admin, _site) = start(&pki, &[]);
    let addr = url.trim_start_matches("https://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /app.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1")
            && !answer.windows(4).any(|w| w == b"body"),
        "a plaintext answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    stop(child);
}

#[actix_rt::test]
async fn tls_the_admin_listener_takes_its_own_certificate_and_its_token() {
    let pki = Pki::new();
    let admin_pki = Pki::new();
    let (cert, key) = (admin_pki.path("cert.pem"), admin_pki.path("key.pem"));
    let (child, _url, admin, _site) = start(
        &pki,
        &[
            ("LEANSERVE_ADMIN_TLS_CERT", &cert),
            ("LEANSERVE_ADMIN_TLS_KEY", &key),
            ("LEANSERVE_ADMIN_TOKEN", "s3cret-token"),
        ],
    );
    assert!(admin.starts_with("https://127.0.0.1:"), "{admin}");
    let admin = admin.replace("127.0.0.1", "localhost");
    let trusting = client(&admin_pki.ca, &[b"h2", b"http/1.1"], BOTH);
    let refused = trusting
        .get(format!("{admin}/admin/cache"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = trusting
        .get(format!("{admin}/admin/cache"))
        .insert_header(("Authorization", "Bearer s3cret-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.version(), Version::HTTP_2);
    // The serving listener's CA does not vouch for the admin listener's certificate.
    let other = client(&pki.ca, &[b"http/1.1"], BOTH);
    assert!(
        other
            .get(format!("{admin}/admin/cache"))
            .send()
            .await
            .is_err()
    );
    stop(child);
}

/// Runs the binary with `env` (the test profile) and answers its exit code and stderr.
fn refused(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let site = util::site();
    let output = util::leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        env,
    )
    .output()
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tls_bad_certificates_and_keys_stop_start_up_naming_the_key() {
    let pki = Pki::new();
    std::fs::write(
        pki.dir.path().join("garbage.pem"),
        "not a pem file at all\n",
    )
    .unwrap();
    let missing = Path::new("/nonexistent/cert.pem").display().to_string();
    let (cert, key, other, garbage) = (
        pki.path("cert.pem"),
        pki.path("key.pem"),
        pki.path("other-key.pem"),
        pki.path("garbage.pem"),
    );
    for (label, env, named, says) in [
        (
            "missing certificate",
            vec![
                ("LEANSERVE_TLS_CERT", missing.as_str()),
                ("LEANSERVE_TLS_KEY", key.as_str()),
            ],
            "server.tls_cert",
            "cannot read it",
        ),
        (
            "not a certificate",
            vec![
                ("LEANSERVE_TLS_CERT", garbage.as_str()),
                ("LEANSERVE_TLS_KEY", key.as_str()),
            ],
            "server.tls_cert",
            "no PEM certificate",
        ),
        (
            "not a key",
            vec![
                ("LEANSERVE_TLS_CERT", cert.as_str()),
                ("LEANSERVE_TLS_KEY", garbage.as_str()),
            ],
            "server.tls_key",
            "no PEM private key",
        ),
        (
            "another certificate's key",
            vec![
                ("LEANSERVE_TLS_CERT", cert.as_str()),
                ("LEANSERVE_TLS_KEY", other.as_str()),
            ],
            "server.tls_key",
            "does not belong",
        ),
        (
            "a certificate without its key",
            vec![("LEANSERVE_TLS_CERT", cert.as_str())],
            "server.tls_key",
            "since server.tls_cert is set",
        ),
        (
            "a key without its certificate",
            vec![("LEANSERVE_ADMIN_TLS_KEY", key.as_str())],
            "admin.tls_cert",
            "since admin.tls_key is set",
        ),
        (
            "TLS on an admin Unix socket",
            vec![
                ("LEANSERVE_ADMIN_BIND", "unix:/tmp/leanserve-tls-test.sock"),
                ("LEANSERVE_ADMIN_TLS_CERT", cert.as_str()),
                ("LEANSERVE_ADMIN_TLS_KEY", key.as_str()),
            ],
            "admin.tls_cert",
            "a Unix socket has no TLS",
        ),
    ] {
        let (code, stderr) = refused(&env);
        assert_eq!(code, Some(2), "{label}: {stderr}");
        assert!(stderr.contains(named), "{label}: {stderr}");
        assert!(stderr.contains(says), "{label}: {stderr}");
    }
}

/// Starts the binary with `env`, reading the serving, admin and redirect lines it prints.
fn start_with_redirect(env: &[(&str, &str)]) -> (Running, String, String, tempfile::TempDir) {
    use std::io::BufRead;
    let site = util::site();
    let mut child = util::leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        env,
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Running(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut next = |prefix: &str| {
        let line = lines.next().expect("a line on stdout").unwrap();
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned()
    };
    let url = next("leanserve listening on ");
    next("leanserve admin listening on ");
    let redirect = next("leanserve redirecting to https on ");
    (child, url, redirect, site)
}

#[actix_rt::test]
async fn tls_hsts_and_the_redirect_to_https() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let (child, url, redirect, _site) = start_with_redirect(&[
        ("LEANSERVE_TLS_CERT", &cert),
        ("LEANSERVE_TLS_KEY", &key),
        ("LEANSERVE_HSTS_MAX_AGE_S", "31536000"),
        ("LEANSERVE_REDIRECT_BIND", "127.0.0.1:0"),
    ]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let url = url.replace("127.0.0.1", "localhost");
    let https = client(&pki.ca, &[b"h2", b"http/1.1"], BOTH);
    let response = https.get(format!("{url}/app.css")).send().await.unwrap();
    assert_eq!(
        response.headers().get("strict-transport-security").unwrap(),
        "max-age=31536000"
    );
    // Every path, with its query, to the same host on the HTTPS port.
    let addr: std::net::SocketAddr = redirect.trim_start_matches("http://").parse().unwrap();
    for (target, host, location) in [
        (
            "/app.css?v=2",
            "localhost",
            format!("https://localhost:{port}/app.css?v=2"),
        ),
        (
            "/a/b/",
            &format!("localhost:{}", addr.port()),
            format!("https://localhost:{port}/a/b/"),
        ),
        ("/", "[::1]:80", format!("https://[::1]:{port}/")),
    ] {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 308"), "{target}: {head}");
        let expected = format!("location: {}", location.to_ascii_lowercase());
        assert!(
            head.lines().any(|line| line == expected),
            "{target}: {head}"
        );
        assert!(
            !head.contains("strict-transport-security"),
            "not over cleartext: {head}"
        );
    }
    stop(child);

    // Off by default.
    let (child, url, _admin, _site) = start(&pki, &[]);
    let url = url.replace("127.0.0.1", "localhost");
    let response = https.get(format!("{url}/app.css")).send().await.unwrap();
    assert_eq!(response.headers().get("strict-transport-security"), None);
    stop(child);
}

#[actix_rt::test]
async fn tls_h2c_serves_http2_with_prior_knowledge_beside_http1() {
    let (child, url, admin, _site) = spawn(&[
        ("LEANSERVE_H2C", "true"),
        ("LEANSERVE_MONITORING_INTERVAL_MS", "100"),
    ]);
    let addr = url.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::builder()
        .uri(format!("http://{addr}/app.css"))
        .body(())
        .unwrap();
    let (response, _) = h2.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, b"body { color: teal }");
    // HTTP/1.1 on the same port still.
    let http1 = util::raw(addr.parse().unwrap(), "GET", "/app.css", &[]).await;
    assert_eq!(http1.status, 200);
    // Each connection counted under the protocol its first request spoke.
    within_15_s("the h2c and HTTP/1 connections counted", async || {
        let metrics = &monitoring(&admin).await["metrics"];
        metrics["connections_open_tcp_h2"] == 1.0
            && metrics["connections_tcp_http1"].as_f64() >= Some(1.0)
            && metrics["connections_tcp_unknown"] == 0.0
    })
    .await;
    drop(h2);
    stop(child);

    // Without server.h2c, no HTTP/2 over cleartext.
    let (child, url, _admin, _site) = spawn(&[]);
    let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let refused = match h2::client::handshake(tcp).await {
        Err(_) => true,
        Ok((mut h2, connection)) => {
            actix_rt::spawn(async move {
                let _ = connection.await;
            });
            let request = http::Request::builder()
                .uri(format!("{url}/app.css"))
                .body(())
                .unwrap();
            match h2.send_request(request, true) {
                Err(_) => true,
                Ok((response, _)) => response.await.is_err(),
            }
        }
    };
    assert!(
        refused,
        "HTTP/2 prior knowledge was answered without server.h2c"
    );
    stop(child);
}

#[test]
fn tls_h2c_with_tls_and_a_redirect_without_tls_are_refused() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let (code, stderr) = refused(&[
        ("LEANSERVE_TLS_CERT", &cert),
        ("LEANSERVE_TLS_KEY", &key),
        ("LEANSERVE_H2C", "true"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("server.h2c"), "{stderr}");
    let (code, stderr) = refused(&[("LEANSERVE_REDIRECT_BIND", "127.0.0.1:0")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("server.redirect_bind"), "{stderr}");
}

/// A TLS connection to `addr` trusting `ca`, offering HTTP/1.1.
async fn connect(
    addr: &str,
    ca: &CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    util::tls_connect(addr, util::tls_client_config(ca, &[], BOTH)).await
}

/// The leaf certificate a connection's server presented.
fn presented(
    stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One keep-alive GET of /app.css on `stream`; answers the status line.
async fn get_css(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /app.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // The head, then the 20-byte body.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.ends_with(b"teal }") {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

/// Starts the binary with TLS from `pki` and `env`, collecting its stderr.
fn start_logging(
    pki: &Pki,
    env: &[(&str, &str)],
) -> (
    Running,
    String,
    Arc<std::sync::Mutex<String>>,
    tempfile::TempDir,
    String,
) {
    use std::io::BufRead;
    let site = util::site();
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let mut vars = vec![
        ("LEANSERVE_TLS_CERT", cert.as_str()),
        ("LEANSERVE_TLS_KEY", key.as_str()),
        ("RUST_LOG", "info"),
    ];
    vars.extend_from_slice(env);
    let mut child = util::leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        &vars,
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let (url, admin) = util::listening(&mut child);
    (
        Running(child),
        url.trim_start_matches("https://").to_owned(),
        log,
        site,
        admin,
    )
}

/// Waits (at most 15 s) until `check` holds.
async fn within_15_s(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} within 15 s");
}

#[actix_rt::test]
async fn tls_renewed_certificates_reach_new_handshakes_and_unusable_ones_are_refused() {
    let mut pki = Pki::new();
    let first = pki.leaf.clone();
    let (_child, addr, log, _site, admin) = start_logging(
        &pki,
        &[
            ("LEANSERVE_TLS_RELOAD_INTERVAL_S", "1"),
            ("LEANSERVE_MONITORING_INTERVAL_MS", "100"),
        ],
    );
    let mut open = connect(&addr, &pki.ca).await;
    assert_eq!(presented(&open), first);
    assert_eq!(get_css(&mut open).await, "HTTP/1.1 200 OK");

    pki.renew();
    let renewed = pki.leaf.clone();
    assert_ne!(renewed, first);
    within_15_s(
        "a new handshake presenting the renewed certificate",
        async || presented(&connect(&addr, &pki.ca).await) == renewed,
    )
    .await;
    // The connection opened before goes on, with what it negotiated.
    assert_eq!(get_css(&mut open).await, "HTTP/1.1 200 OK");
    assert_eq!(presented(&open), first);

    // A renewal gone wrong: the old pair stays, and the error says why.
    pki.replace("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    within_15_s("the unusable certificate logged", async || {
        log.lock().unwrap().contains("server.tls_cert")
            && log.lock().unwrap().contains("the certificate in use stays")
    })
    .await;
    let after = connect(&addr, &pki.ca).await;
    assert_eq!(presented(&after), renewed);
    // Counted, and raised as an alert.
    within_15_s("the failed reload counted and alerted", async || {
        let now = monitoring(&admin).await;
        now["metrics"]["tls_reload_failures_server_total"].as_f64() >= Some(1.0)
            && alert_state(&now, "tls_reload_failed") == "firing"
    })
    .await;
    let quiet = monitoring(&admin).await;
    assert_eq!(alert_state(&quiet, "tls_cert_expiring"), "inactive");
}

/// The admin listener's `GET /monitoring`.
async fn monitoring(admin: &str) -> serde_json::Value {
    util::get_json(&format!("{admin}/monitoring"), None).await.1
}

/// The state of alert rule `name` in a `/monitoring` answer.
fn alert_state(monitoring: &serde_json::Value, name: &str) -> String {
    let rule = monitoring["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["name"] == name)
        .unwrap_or_else(|| panic!("no rule {name}"));
    rule["state"].as_str().unwrap().to_owned()
}

#[actix_rt::test]
async fn tls_expiry_alert_and_connections_by_protocol_in_the_metrics() {
    let mut pki = Pki::new();
    let in_five_days = std::time::SystemTime::now() + std::time::Duration::from_secs(5 * 86_400);
    pki.issue(Some(in_five_days));
    let (child, url, admin, _site) = start(&pki, &[("LEANSERVE_MONITORING_INTERVAL_MS", "100")]);
    let url = url.replace("127.0.0.1", "localhost");
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let response = client(&pki.ca, &[alpn], BOTH)
            .get(format!("{url}/app.css"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    within_15_s("the expiry alert and both protocols counted", async || {
        let now = monitoring(&admin).await;
        let metrics = &now["metrics"];
        alert_state(&now, "tls_cert_expiring") == "firing"
            && metrics["connections_tls_h2"].as_f64() >= Some(1.0)
            && metrics["connections_tls_http1"].as_f64() >= Some(1.0)
    })
    .await;
    let now = monitoring(&admin).await;
    assert_eq!(now["metrics"]["connections_tcp_http1"], 0.0);
    assert_eq!(alert_state(&now, "tls_reload_failed"), "inactive");
    let metrics = awc::Client::new()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    let left: f64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("leanserve_tls_cert_expiry_seconds{listener=\"server\"} ")
        })
        .unwrap_or_else(|| panic!("no expiry in {metrics}"))
        .parse()
        .unwrap();
    assert!((4.9 * 86_400.0..=5.0 * 86_400.0).contains(&left), "{left}");
    assert!(
        metrics.contains("leanserve_connections_total{transport=\"tls\",protocol=\"h2\"} 1"),
        "{metrics}"
    );
    stop(child);
}

#[actix_rt::test]
async fn tls_sighup_reloads_the_certificate_at_once() {
    let mut pki = Pki::new();
    // Never on a timer: only the signal reloads.
    let (child, addr, _log, _site, _admin) =
        start_logging(&pki, &[("LEANSERVE_TLS_RELOAD_INTERVAL_S", "0")]);
    let first = pki.leaf.clone();
    assert_eq!(presented(&connect(&addr, &pki.ca).await), first);
    pki.renew();
    let renewed = pki.leaf.clone();
    assert_eq!(presented(&connect(&addr, &pki.ca).await), first, "no timer");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    within_15_s("the renewed certificate after SIGHUP", async || {
        presented(&connect(&addr, &pki.ca).await) == renewed
    })
    .await;
}

/// An HTTP/2 connection over TLS (ALPN `h2`) to `addr`, trusting `ca`.
async fn h2_over_tls(
    addr: &str,
    ca: &CertificateDer<'static>,
) -> h2::client::SendRequest<bytes::Bytes> {
    let tls = util::tls_connect(addr, util::tls_client_config(ca, &[b"h2"], BOTH)).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (h2, connection) = h2::client::handshake(tls).await.unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    h2
}

/// Sends a GET of `path` on a new stream and answers its response.
async fn h2_get(
    h2: &mut h2::client::SendRequest<bytes::Bytes>,
    addr: &str,
    path: &str,
) -> http::Response<h2::RecvStream> {
    let request = http::Request::builder()
        .uri(format!("https://{addr}{path}"))
        .body(())
        .unwrap();
    let (response, _) = h2.send_request(request, true).unwrap();
    response.await.unwrap()
}

#[actix_rt::test]
async fn tls_h2_takes_a_limiter_permit_per_stream_and_renders() {
    let pki = Pki::new();
    let (child, url, _admin, site) = start(
        &pki,
        &[
            ("LEANSERVE_LIMITER_ENABLED", "true"),
            ("LEANSERVE_LIMITER_MIN_LIMIT", "1"),
            ("LEANSERVE_LIMITER_MAX_LIMIT", "1"),
            ("LEANSERVE_LIMITER_QUEUE_SIZE", "0"),
            ("STATIC_FILE_MAX_FILE_SIZE", "65536"),
        ],
    );
    std::fs::write(site.path().join("big.bin"), vec![7u8; 8 << 20]).unwrap();
    let addr = url.trim_start_matches("https://").to_owned();
    let mut h2 = h2_over_tls(&addr, &pki.ca).await;
    // A stream whose 8 MiB body the client does not read: HTTP/2 flow control stops the
    // server at the stream's window, with the file limiter's one permit held.
    let big = h2_get(&mut h2, &addr, "/big.bin").await;
    assert_eq!(big.status(), 200);
    // Another stream on the same connection is refused, as another connection would be.
    let refused = h2_get(&mut h2, &addr, "/index.html").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    // Renders have their own limiter.
    let page = h2_get(&mut h2, &addr, "/templates/pages/index.html").await;
    assert_eq!(page.status(), 200);
    // Reading the body to its end gives the permit back.
    let mut body = big.into_body();
    let mut total = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        total += chunk.len();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    assert_eq!(total, 8 << 20);
    within_15_s("the permit back after the stream ended", async || {
        h2_get(&mut h2, &addr, "/index.html").await.status() == 200
    })
    .await;
    stop(child);
}

#[actix_rt::test]
async fn tls_a_silent_h2_connection_is_closed_after_the_request_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new();
    let (child, url, _admin, _site) =
        start(&pki, &[("LEANSERVE_CLIENT_REQUEST_TIMEOUT_MS", "500")]);
    let addr = url.trim_start_matches("https://").to_owned();
    // The TLS handshake done with ALPN h2, then no preface and no request.
    let mut tls = util::tls_connect(&addr, util::tls_client_config(&pki.ca, &[b"h2"], BOTH)).await;
    let (mut buffer, opened) = ([0u8; 1024], std::time::Instant::now());
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match tls.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a silent h2 connection was kept open for 20 s"
    );
    assert!(
        opened.elapsed() >= std::time::Duration::from_millis(400),
        "closed before the timeout, so not by it"
    );
    stop(child);
}
