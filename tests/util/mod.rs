//! Shared fixtures for the integration tests, built through the production start-up
//! path: `Config::load` with the shipped `config/` folder and the test profile, then
//! `Runtime`, then a real `HttpServer` on 127.0.0.1 with an OS-chosen port.
//!
//! Start-up goes through one place: [`start`] (or [`Start::with_opts`] for options a test
//! edits) answers a [`Start`] builder; `.runtime()` starts the tree, `.serve()` also
//! serves it. The binary is started through [`leanserve`] / [`spawn_server`].

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use actix_web::{App, HttpServer};
use leanserve::Subsystems;
use leanserve::{Config, LoadOptions, Opts};

/// The repository's `config/` folder.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// Options of the test profile serving `root`, with extra environment variables.
pub fn test_opts(root: &Path, env: &[(&str, &str)]) -> Opts {
    Config::load(&load_options(root, env))
        .expect("test configuration loads")
        .opts
}

/// What [`test_opts`] loads: the test profile serving `root`, with extra environment
/// variables.
#[allow(dead_code)]
pub fn load_options(root: &Path, env: &[(&str, &str)]) -> LoadOptions {
    let mut vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.insert("STATIC_FILE_ROOT_DIR".into(), root.display().to_string());
    LoadOptions::default()
        .config_dir(config_dir())
        .profile("test")
        .env(vars)
}

/// A folder with a small site in it.
pub fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>fixture site</h1>").unwrap();
    std::fs::write(dir.path().join("app.css"), "body { color: teal }").unwrap();
    dir
}

/// Which of leanserve's surfaces a test server mounts, as the binary serves
/// `server.bind` and `admin.bind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Surface {
    /// `configure_public`: health, templates, static files.
    Public,
    /// `configure_admin`: admin, monitoring and dashboard, profiler.
    Admin,
    /// `configure`: both on one listener (the test profile's default).
    Both,
}

/// A runtime to start through the production path (`Runtime::new(opts)`, host children,
/// `.start()`), and how to serve it. Made by [`start`] or [`Start::with_opts`].
#[must_use = "nothing starts until .runtime() or .serve()"]
pub struct Start {
    opts: Opts,
    children: Vec<leanserve::ChildSpec>,
    surface: Surface,
    prefix: Option<&'static str>,
}

/// The test profile serving `root`, with extra environment variables (as [`test_opts`]).
pub fn start(root: &Path, env: &[(&str, &str)]) -> Start {
    Start::with_opts(test_opts(root, env))
}

impl Start {
    /// `opts` as they are: for a test that edits [`test_opts`] before starting.
    pub fn with_opts(opts: Opts) -> Start {
        Start {
            opts,
            children: Vec::new(),
            surface: Surface::Both,
            prefix: None,
        }
    }

    /// Adds a host child to the root supervisor (`Runtime::child`).
    pub fn child(mut self, spec: leanserve::ChildSpec) -> Start {
        self.children.push(spec);
        self
    }

    /// Serves only `surface`. Default is [`Surface::Both`].
    pub fn surface(mut self, surface: Surface) -> Start {
        self.surface = surface;
        self
    }

    /// Mounts the surface under `prefix` (`web::scope`), as a host application does.
    /// Default is the root.
    pub fn under(mut self, prefix: &'static str) -> Start {
        self.prefix = Some(prefix);
        self
    }

    /// Starts the tree; panics if it does not start.
    pub async fn runtime(self) -> Subsystems {
        self.children
            .into_iter()
            .fold(leanserve::Runtime::new(self.opts), |runtime, spec| {
                runtime.child(spec)
            })
            .start()
            .await
            .expect("leanserve starts")
    }

    /// Starts the tree and serves the chosen surface on a fresh loopback port.
    pub async fn serve(self) -> (Subsystems, Server) {
        let (surface, prefix) = (self.surface, self.prefix);
        let subsystems = self.runtime().await;
        let server = serve_surface(&subsystems, surface, prefix);
        (subsystems, server)
    }
}

/// A running HTTP server for `subsystems`; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server gracefully and waits until it has (dropping it only asks).
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

/// Serves leanserve's routes (both surfaces) for `subsystems` on a fresh loopback port.
pub fn serve(subsystems: &Subsystems) -> Server {
    serve_surface(subsystems, Surface::Both, None)
}

/// Serves one surface of `subsystems` on a fresh loopback port, under `prefix` if given.
pub fn serve_surface(
    subsystems: &Subsystems,
    surface: Surface,
    prefix: Option<&'static str>,
) -> Server {
    let subsystems = subsystems.clone();
    serve_with(move |cfg| {
        let mount = |cfg: &mut actix_web::web::ServiceConfig| match surface {
            Surface::Public => leanserve::configure_public(&subsystems)(cfg),
            Surface::Admin => leanserve::configure_admin(&subsystems)(cfg),
            Surface::Both => leanserve::configure(&subsystems)(cfg),
        };
        match prefix {
            Some(prefix) => {
                cfg.service(actix_web::web::scope(prefix).configure(mount));
            }
            None => mount(cfg),
        }
    })
}

/// Serves an app `configure` sets up (a host's routes, one of leanserve's surfaces) on a
/// fresh loopback port, with one worker.
pub fn serve_with(
    configure: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> Server {
    let server = HttpServer::new(move || App::new().configure(configure.clone()))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Server { addr, handle }
}

/// GET `url`, answering the status and the body as JSON (`Null` when not JSON).
pub async fn get_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = awc::Client::default().get(url);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = request.send().await.expect("request reaches the server");
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// POST to `url` with no body, answering the status and the body as JSON (`Null` when
/// not JSON).
pub async fn post_json(url: &str) -> (u16, serde_json::Value) {
    let mut response = awc::Client::default()
        .post(url)
        .send()
        .await
        .expect("request reaches the server");
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `cond` until it holds (at most 10 s): waits for asynchronous work to land; it
/// measures nothing.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    for _ in 0..1000 {
        if cond().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Now, in milliseconds since the epoch (the clock the monitor stamps samples with).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The server binary, built with the same features as the tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_leanserve");

/// A `leanserve` command with a clean environment (so the developer's own variables do
/// not leak in) and the repository's config folder.
pub fn leanserve(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(config_dir())
        .args(args)
        .envs(env.iter().copied());
    command
}

/// Starts the server binary (test profile: serving and admin listeners on free loopback
/// ports); answers the process, its serving and admin base URLs, and the site folder it
/// serves (keep it alive as long as the server).
pub fn spawn_server(
    env: &[(&str, &str)],
) -> (std::process::Child, String, String, tempfile::TempDir) {
    let site = site();
    let mut child = leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        env,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    let (url, admin) = listening(&mut child);
    (child, url, admin, site)
}

/// Waits up to 30 s for a signalled server to exit and answers its status; a server
/// still running then (one listener lingering, say) is killed and fails the test.
pub fn exit_status(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server was still running 30 s after it was told to stop");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Reads the serving and admin addresses a starting server prints on stdout:
/// `http://...` each, or `unix:PATH` for an admin socket.
pub fn listening(child: &mut std::process::Child) -> (String, String) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut next = |prefix: &str| {
        let line = lines.next().expect("a line on stdout").unwrap();
        line.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .to_owned()
    };
    let url = next("leanserve listening on ");
    let admin = next("leanserve admin listening on ");
    (url, admin)
}

/// A gzip GET once the cache has built the file's gzip representation (a miss is
/// answered uncompressed and the gzip bytes are built in the background); panics after
/// 2 s without one.
pub async fn gzipped(server: &Server, target: &str) -> RawResponse {
    for _ in 0..200 {
        let response = raw(server.addr, "GET", target, &[("Accept-Encoding", "gzip")]).await;
        if response.header("content-encoding") == Some("gzip") {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{target} was not served gzip within 2 s");
}

/// `target` as a client sending `accept` gets it once the cache holds its stored-level
/// bytes: read twice (the first read keeps quick-level bytes and queues the stored
/// level), then read again once the cache's background work is done (at most 2 s). The
/// queue is read through the cache actor, which handles the first read's offer before
/// that question, so an empty queue means the build ran.
pub async fn settled(
    server: &Server,
    subsystems: &leanserve::Subsystems,
    target: &str,
    accept: &str,
) -> RawResponse {
    for _ in 0..2 {
        raw(server.addr, "GET", target, &[("Accept-Encoding", accept)]).await;
    }
    for _ in 0..200 {
        if subsystems.cache_stats().await.unwrap().compression_queue == 0 {
            return raw(server.addr, "GET", target, &[("Accept-Encoding", accept)]).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{target}'s background compression for {accept:?} did not end within 2 s");
}

/// A response read off a raw socket: nothing between the test and the bytes on the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `method target` with `headers` over a fresh connection, exactly as written (no
/// normalisation of the target), and reads the whole response (`Connection: close`).
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    raw_with_body(addr, method, target, headers, b"").await
}

/// [`raw`] with a request body (sent with its Content-Length unless empty).
pub async fn raw_with_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let response = RawResponse {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    };
    if method != "HEAD"
        && let Some(length) = response.header("content-length")
    {
        assert_eq!(
            length.parse::<usize>().unwrap(),
            response.body.len(),
            "Content-Length matches the body"
        );
    }
    response
}

/// Inflates a gzip body.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// The alert named `name` in `GET /monitoring/alerts`.
pub async fn alert_named(server: &Server, name: &str) -> serde_json::Value {
    let (_, alerts) = get_json(&server.url("/monitoring/alerts"), None).await;
    alerts["alerts"]
        .as_array()
        .and_then(|alerts| alerts.iter().find(|alert| alert["name"] == name))
        .unwrap_or_else(|| panic!("no alert {name} in {alerts}"))
        .clone()
}

/// `GET /metrics`, checked for status and content type, as text.
pub async fn metrics_text(server: &Server) -> String {
    let mut response = awc::Client::default()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    String::from_utf8(response.body().limit(1 << 22).await.unwrap().to_vec()).unwrap()
}

/// A host actor that panics on request.
pub struct Fragile;

impl actix::Actor for Fragile {
    type Context = actix::Context<Self>;
}

/// Panics in the handler.
pub struct Crash;

impl actix::Message for Crash {
    type Result = ();
}

impl actix::Handler<Crash> for Fragile {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut actix::Context<Self>) {
        panic!("fragile host actor crashed");
    }
}

/// A runtime whose tree also holds a [`Fragile`] child, with `supervisor.max_restarts`
/// set to `max_restarts` (so one more crash than that makes the tree give up).
pub async fn start_with_fragile(
    root: &std::path::Path,
    max_restarts: &str,
) -> (Subsystems, leanserve::Handle<Fragile>) {
    let (spec, fragile) = leanserve::ChildSpec::worker("fragile", || Fragile);
    let subsystems = start(root, &[("LEANSERVE_SUPERVISOR_MAX_RESTARTS", max_restarts)])
        .child(spec)
        .runtime()
        .await;
    (subsystems, fragile)
}

/// nginx from Debian's package on a free loopback port, balancing over `upstreams`
/// (`http://host:port` each, round robin; a request that fails to reach one is retried
/// on the next, as nginx does by default, and `max_fails=0` keeps every replica in the
/// rotation, so one that comes back is used at once instead of after `fail_timeout`);
/// stopped when dropped.
pub struct Nginx {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(upstreams: &[&str]) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .expect("nginx is installed (scripts/test.sh installs Debian's nginx-light)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let servers: String = upstreams
            .iter()
            .map(|url| {
                format!(
                    "    server {} max_fails=0;\n",
                    url.trim_start_matches("http://")
                )
            })
            .collect();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             upstream site {{\n{servers}  }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://site; }}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(binary)
            .args(["-p", dir.path().to_str().unwrap(), "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free now (bound and released), for a listener that must keep its
/// port across restarts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TLS client configuration trusting `ca` alone and offering `alpn` over `versions`
/// (`rustls::DEFAULT_VERSIONS`: 1.3 and 1.2).
pub fn tls_client_config(
    ca: &rustls::pki_types::CertificateDer<'static>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// A TLS connection to `addr` for the name `localhost`, handshake done.
pub async fn tls_connect(
    addr: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}
