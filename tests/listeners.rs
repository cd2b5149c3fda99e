//! The two listeners over real sockets: the serving listener carries no admin, debug or
//! monitoring path (directly and through nginx as a reverse proxy on loopback, the case
//! where every request comes from 127.0.0.1), the admin listener's token rules on TCP and
//! on a Unix socket, the start-up refusals, public metrics, and the audit log.

mod util;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use util::{Nginx, eventually, leanserve, listening};

/// Every path of the admin surface, with the method that reaches it.
const ADMIN_PATHS: &[(&str, &str)] = &[
    ("GET", "/admin/config"),
    ("GET", "/admin/supervisor"),
    ("GET", "/admin/process"),
    ("GET", "/admin/cache"),
    ("POST", "/admin/cache/clear"),
    ("GET", "/admin/templates"),
    ("POST", "/admin/templates/reload"),
    ("POST", "/admin/templates/optimize"),
    ("GET", "/admin/tuner"),
    ("POST", "/admin/tuner/apply"),
    ("GET", "/admin/pools"),
    ("GET", "/admin/profiler/stats"),
    ("POST", "/admin/profiler/capture"),
    ("POST", "/admin/chaos/panic/process"),
    ("GET", "/admin"),
    ("GET", "/debug/pprof/heap"),
    ("GET", "/metrics"),
    ("GET", "/monitoring"),
    ("GET", "/monitoring/history"),
    ("GET", "/monitoring/alerts"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/dashboard.js"),
];

/// A spawned server (test profile unless `args` say otherwise), killed when dropped.
struct Running {
    child: Child,
    url: String,
    admin: String,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let dir = site_with_admin_lookalikes();
        let stderr = dir.path().join("server.log");
        let root = dir.path().join("site");
        let mut all = vec!["--env", "test", "--root", root.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut child = leanserve(&all, env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let (url, admin) = listening(&mut child);
        Running {
            child,
            url,
            admin,
            stderr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site that holds files named like admin paths: they must not be served either.
fn site_with_admin_lookalikes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("admin")).unwrap();
    std::fs::create_dir_all(site.join("dashboard")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>fixture site</h1>").unwrap();
    std::fs::write(site.join("admin/config"), "a site file").unwrap();
    std::fs::write(site.join("dashboard/dashboard.js"), "a site file").unwrap();
    std::fs::write(site.join("metrics"), "a site file").unwrap();
    dir
}

async fn send(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .request(method, url);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = request.send().await.expect("request reaches the server");
    let body = response.body().limit(64 << 20).await.unwrap();
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// One request over a Unix socket, as raw HTTP/1.1.
fn unix_get(socket: &Path, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let authorization =
        token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{authorization}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[actix_rt::test]
async fn listeners_serving_port_has_no_admin_debug_or_monitoring_path() {
    let server = Running::start(&[], &[]);
    assert_ne!(server.url, server.admin);
    assert_eq!(send("GET", &format!("{}/", server.url), None).await.0, 200);
    assert_eq!(
        send("GET", &format!("{}/health", server.url), None).await.0,
        200
    );
    for (method, path) in ADMIN_PATHS {
        let (status, body) = send(method, &format!("{}{path}", server.url), None).await;
        assert_eq!(status, 404, "{method} {path} on the serving port: {body}");
        assert!(!body.contains("a site file"), "{path}: {body}");
    }
    // The admin listener has them (loopback, no token in the test profile).
    for path in [
        "/admin/config",
        "/metrics",
        "/monitoring",
        "/dashboard",
        "/health",
    ] {
        let (status, body) = send("GET", &format!("{}{path}", server.admin), None).await;
        assert_eq!(status, 200, "{path} on the admin port: {body}");
    }
    let (_, metrics) = send("GET", &format!("{}/metrics", server.admin), None).await;
    assert!(metrics.contains("leanserve_"), "{metrics}");
    // ...and no site.
    assert_eq!(
        send("GET", &format!("{}/", server.admin), None).await.0,
        404
    );
}

#[actix_rt::test]
async fn listeners_through_a_loopback_reverse_proxy_every_admin_path_is_404() {
    // The prod profile's serving side (every interface is not needed: loopback behind
    // nginx), no token: the admin surface is on a Unix socket, so nothing is open.
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("admin.sock");
    let bind = format!("unix:{}", socket.display());
    let server = Running::start(
        &["--env", "prod", "--bind", "127.0.0.1:0"],
        &[("LEANSERVE_ADMIN_BIND", &bind)],
    );
    let proxy = Nginx::start(&[&server.url]);
    eventually("nginx proxies the site", || async {
        awc::Client::default()
            .get(format!("{}/", proxy.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    for (method, path) in ADMIN_PATHS {
        let (status, body) = send(method, &format!("{}{path}", proxy.url), None).await;
        assert_eq!(status, 404, "{method} {path} through the proxy: {body}");
    }
    // The proxy itself works, and the admin surface is on its socket.
    let (status, body) = send("GET", &format!("{}/", proxy.url), None).await;
    assert_eq!((status, body.as_str()), (200, "<h1>fixture site</h1>"));
    assert_eq!(unix_get(&socket, "/admin/config", None).0, 200);
}

#[actix_rt::test]
async fn listeners_admin_token_is_required_and_checked_on_the_admin_listener() {
    let token = "s3cret-token-0123456789";
    let server = Running::start(&[], &[("LEANSERVE_ADMIN_TOKEN", token)]);
    let url = format!("{}/admin/config", server.admin);
    assert_eq!(send("GET", &url, None).await.0, 401, "no token");
    // Same length, one byte off, and a prefix: all refused.
    assert_eq!(
        send("GET", &url, Some("s3cret-token-0123456788")).await.0,
        401
    );
    assert_eq!(send("GET", &url, Some("s3cret")).await.0, 401);
    let (status, body) = send("GET", &url, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<redacted>") && !body.contains(token),
        "{body}"
    );
    // Metrics take the token as a bearer token, as Prometheus sends it.
    let metrics = format!("{}/metrics", server.admin);
    assert_eq!(send("GET", &metrics, None).await.0, 401);
    assert_eq!(send("GET", &metrics, Some(token)).await.0, 200);
    // The dashboard's page holds no data and is open; its data is not.
    assert_eq!(
        send("GET", &format!("{}/dashboard", server.admin), None)
            .await
            .0,
        200
    );
    assert_eq!(
        send("GET", &format!("{}/monitoring", server.admin), None)
            .await
            .0,
        401
    );
}

#[actix_rt::test]
async fn listeners_unix_socket_is_owner_only_and_admits_its_peers() {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("admin.sock");
    // A stale socket from an earlier run that did not stop cleanly is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let bind = format!("unix:{}", socket.display());
    let server = Running::start(&[], &[("LEANSERVE_ADMIN_BIND", &bind)]);
    assert_eq!(server.admin, bind);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only socket, mode {mode:o}");
    let (status, body) = unix_get(&socket, "/admin/supervisor", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("children"), "{body}");
    // The CLI finds it from the configuration.
    let output = leanserve(&["status"], &[("LEANSERVE_ADMIN_BIND", &bind)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with(&format!("leanserve at {bind}")),
        "{stdout}"
    );
    // A second server refuses the socket the first one listens on.
    let site = util::site();
    let second = leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        &[("LEANSERVE_ADMIN_BIND", &bind)],
    )
    .output()
    .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another server listens"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // Stopped cleanly, the server removes its socket.
    let mut server = server;
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(util::exit_status(&mut server.child).code(), Some(0));
    assert!(!socket.exists(), "socket removed on exit");
}

fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let site = util::site();
    let mut all = vec!["--root", site.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let output = leanserve(&all, env).output().unwrap();
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{message}");
    message
}

#[test]
fn listeners_refuse_to_start_with_an_admin_surface_open_beyond_loopback() {
    for (args, env) in [
        (
            vec!["--env", "test"],
            vec![("LEANSERVE_ADMIN_BIND", "0.0.0.0:0")],
        ),
        (
            vec!["--env", "test", "--bind", "0.0.0.0:0"],
            vec![("LEANSERVE_ADMIN_BIND", "serving")],
        ),
        (
            vec!["--env", "test", "--set", "admin.bind=[::]:9999"],
            vec![],
        ),
    ] {
        let message = refused(&args, &env);
        for part in [
            "refusing to start",
            "admin.bind",
            "admin.token",
            "beyond loopback",
        ] {
            assert!(message.contains(part), "{args:?} {env:?}: {message}");
        }
    }
    // prod: a token even on loopback TCP.
    let message = refused(&["--env", "prod", "--bind", "127.0.0.1:0"], &[]);
    for part in [
        "prod profile",
        "admin.token",
        "admin.bind = 127.0.0.1:8081",
        "unix:PATH",
    ] {
        assert!(message.contains(part), "{message}");
    }
    // An unparsable bind names the key.
    let message = refused(&["--env", "test"], &[("LEANSERVE_ADMIN_BIND", "unix:")]);
    assert!(message.contains("admin.bind"), "{message}");
}

#[actix_rt::test]
async fn listeners_prod_starts_with_a_token_or_a_unix_socket() {
    let with_token = Running::start(
        &["--env", "prod", "--bind", "127.0.0.1:0"],
        &[
            ("LEANSERVE_ADMIN_BIND", "127.0.0.1:0"),
            ("LEANSERVE_ADMIN_TOKEN", "t0ken"),
        ],
    );
    let url = format!("{}/admin/config", with_token.admin);
    assert_eq!(send("GET", &url, None).await.0, 401);
    assert_eq!(send("GET", &url, Some("t0ken")).await.0, 200);
}

#[actix_rt::test]
async fn listeners_public_metrics_opens_only_metrics_on_the_serving_port() {
    let server = Running::start(&[], &[("LEANSERVE_MONITORING_PUBLIC_METRICS", "true")]);
    let (status, body) = send("GET", &format!("{}/metrics", server.url), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("leanserve_"), "{body}");
    for path in ["/monitoring", "/admin/config", "/dashboard"] {
        assert_eq!(
            send("GET", &format!("{}{path}", server.url), None).await.0,
            404,
            "{path}"
        );
    }
}

#[actix_rt::test]
async fn listeners_state_changing_admin_requests_are_audited() {
    let server = Running::start(
        &[],
        &[
            ("LEANSERVE_ADMIN_TOKEN", "audit-token"),
            ("RUST_LOG", "warn,leanserve::audit=info"),
        ],
    );
    let clear = format!("{}/admin/cache/clear", server.admin);
    assert_eq!(send("POST", &clear, Some("audit-token")).await.0, 200);
    assert_eq!(send("POST", &clear, None).await.0, 401);
    assert_eq!(send("POST", &clear, Some("wrong")).await.0, 401);
    // Reads are not audited.
    assert_eq!(
        send(
            "GET",
            &format!("{}/admin/cache", server.admin),
            Some("audit-token")
        )
        .await
        .0,
        200
    );
    eventually("three audit lines", || async {
        server.log().matches("leanserve::audit").count() >= 3
    })
    .await;
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("leanserve::audit"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("POST /admin/cache/clear from 127.0.0.1:")
            && lines[0].contains("with a token")
            && lines[0].ends_with(" 200"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("without a token") && lines[1].ends_with("refused 401"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("with a token") && lines[2].ends_with("refused 401"),
        "{lines:?}"
    );
    assert!(!log.contains("audit-token"), "the token is never logged");
}
