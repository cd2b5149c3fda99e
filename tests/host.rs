//! A host application with leanserve's serving surface mounted at its root, over real
//! sockets: the host's own routes answer, registered before or after
//! `configure_public`, even at paths leanserve answers itself (`/health`, `/metrics`)
//! or holds a static file for; leanserve's files and renders answer the rest; and the
//! admin paths' 404 is the host's choice (`reserve_admin_paths`), which still leaves
//! the host's own routes at those paths alone. The binary's serving listener, which
//! makes that choice, is checked in `tests/listeners.rs`.

mod util;

use actix_web::web;
use leanserve::{Runtime, Subsystems};
use util::{Server, serve_with, site, test_opts};

/// A runtime over a site that holds files at the paths the host routes and the admin
/// surface use, with public metrics on and one template, `hello.txt`.
async fn start() -> (Subsystems, tempfile::TempDir, tempfile::TempDir) {
    let site = site();
    for (path, text) in [
        ("health", "a site file"),
        ("metrics", "a site file"),
        ("about.html", "a site file"),
        ("admin/users", "a site file"),
        ("admin/config", "a site file"),
        ("dashboard/index.html", "a site file"),
    ] {
        let path = site.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("hello.txt"), "Hello {{ name }}!").unwrap();
    let opts = test_opts(
        site.path(),
        &[
            ("TEMPLATES_DIR", templates.path().to_str().unwrap()),
            ("LEANSERVE_MONITORING_PUBLIC_METRICS", "true"),
        ],
    );
    let subsystems = Runtime::new(opts).start().await.unwrap();
    (subsystems, site, templates)
}

/// A host route answering `host <name>`.
fn host(name: &'static str) -> actix_web::Route {
    web::get().to(move || async move { format!("host {name}") })
}

async fn send(server: &Server, method: &str, path: &str) -> (u16, String) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = awc::Client::default()
        .request(method, server.url(path))
        .send()
        .await
        .unwrap();
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn assert_answers(server: &Server, cases: &[(&str, &str, u16, &str)]) {
    for &(method, path, status, body) in cases {
        assert_eq!(
            send(server, method, path).await,
            (status, body.to_owned()),
            "{method} {path}"
        );
    }
}

#[actix_rt::test]
async fn host_routes_before_and_after_leanserve_at_the_root_all_answer() {
    let (subsystems, _site, _templates) = start().await;
    let app = subsystems.clone();
    let server = serve_with(move |cfg| {
        cfg.route("/admin", host("admin, before"))
            .route("/health", host("health, before"))
            .configure(leanserve::configure_public(&app))
            .route("/admin/users", host("users, after"))
            .route("/metrics", host("metrics, after"))
            .route("/about.html", host("about, after"));
    });

    assert_answers(
        &server,
        &[
            ("GET", "/admin", 200, "host admin, before"),
            ("GET", "/health", 200, "host health, before"),
            ("GET", "/admin/users", 200, "host users, after"),
            // leanserve would answer it (public metrics), and the site holds a file there.
            ("GET", "/metrics", 200, "host metrics, after"),
            // A static file at the same path.
            ("GET", "/about.html", 200, "host about, after"),
            // leanserve answers the rest: files, renders, readiness.
            ("GET", "/app.css", 200, "body { color: teal }"),
            ("GET", "/", 200, "<h1>fixture site</h1>"),
            ("GET", "/templates/hello.txt?name=ada", 200, "Hello ada!"),
        ],
    )
    .await;
    assert_eq!(send(&server, "POST", "/app.css").await.0, 405);
    let (status, ready) = send(&server, "GET", "/ready").await;
    assert_eq!(status, 200, "{ready}");
    // Without `reserve_admin_paths` an admin path no host route claims is a static file.
    assert_answers(&server, &[("GET", "/admin/config", 200, "a site file")]).await;

    drop(server);
    subsystems.shutdown().await;
}

#[actix_rt::test]
async fn host_reserving_admin_paths_keeps_its_own_admin_routes() {
    let (subsystems, _site, _templates) = start().await;
    let app = subsystems.clone();
    let server = serve_with(move |cfg| {
        cfg.configure(leanserve::configure_public(&app))
            .configure(leanserve::reserve_admin_paths)
            .route("/admin", host("admin, after"))
            .route("/admin/users", host("users, after"));
    });

    assert_answers(
        &server,
        &[
            ("GET", "/admin", 200, "host admin, after"),
            ("GET", "/admin/users", 200, "host users, after"),
            ("GET", "/app.css", 200, "body { color: teal }"),
            ("GET", "/templates/hello.txt?name=ada", 200, "Hello ada!"),
        ],
    )
    .await;
    // No site file stands in for an admin path, and every method gets the same 404.
    for (method, path) in [
        ("GET", "/admin/config"),
        ("POST", "/admin/config"),
        ("GET", "/dashboard/"),
        ("DELETE", "/debug/pprof/heap"),
        ("GET", "/monitoring"),
    ] {
        let (status, body) = send(&server, method, path).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert!(!body.contains("a site file"), "{method} {path}: {body}");
    }
    // Public metrics are leanserve's own route, not a reserved path.
    let (status, metrics) = send(&server, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("leanserve_"), "{metrics}");

    drop(server);
    subsystems.shutdown().await;
}

/// Reserved on the app, the admin paths answer 404 under a prefixed mount too, below the
/// prefix.
#[actix_rt::test]
async fn host_reservation_on_the_app_reaches_a_prefixed_mount() {
    let (subsystems, _site, _templates) = start().await;
    let app = subsystems.clone();
    let server = serve_with(move |cfg| {
        cfg.configure(leanserve::reserve_admin_paths)
            .service(web::scope("/lean").configure(leanserve::configure_public(&app)));
    });

    assert_eq!(send(&server, "GET", "/lean/admin/config").await.0, 404);
    assert_answers(
        &server,
        &[
            ("GET", "/lean/about.html", 200, "a site file"),
            (
                "GET",
                "/lean/templates/hello.txt?name=lin",
                200,
                "Hello lin!",
            ),
        ],
    )
    .await;

    drop(server);
    subsystems.shutdown().await;
}
