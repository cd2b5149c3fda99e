//! `examples/embed.rs` exercised over real sockets: the host's routes and leanserve's
//! serving surface under `/lean` live side by side on the host's listener, the admin
//! surface answers only on its own listener, the host's actor is supervised by
//! leanserve's tree, and the host's backend connections live in a pool under its pool
//! manager.

// Reads figures only leanserve's internals show (the `cli` feature, on by default).
#![cfg(feature = "cli")]

mod util;

#[path = "../examples/embed.rs"]
mod embed;

use actix_web::{App, HttpServer};
use leanserve::internals::child_order;
use util::{
    Crash, Surface, eventually, get_json, serve_with, site, start, start_with_fragile, test_opts,
};

#[actix_rt::test]
async fn embed_host_routes_and_leanserve_under_a_prefix() {
    let site = site();
    // The example's own start-up (`embed::start`, with its host child) is under test.
    let host = embed::start(test_opts(site.path(), &[])).await;
    let subsystems = host.subsystems.clone();
    let app_host = host.clone();
    let server = serve_with(move |cfg| embed::host_routes(&app_host)(cfg));
    let base = format!("http://{}", server.addr);
    let admin_host = host.clone();
    let admin_server = serve_with(move |cfg| embed::admin_routes(&admin_host)(cfg));
    let admin = format!("http://{}", admin_server.addr);

    let client = awc::Client::default();
    let mut root = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(
        root.body().await.unwrap(),
        "host app; leanserve is under /lean/"
    );
    let (status, hello) = get_json(&format!("{base}/api/hello"), None).await;
    assert_eq!((status, hello["visits"].as_u64()), (200, Some(1)));

    assert_eq!(get_json(&format!("{base}/lean/health"), None).await.0, 200);
    let (status, ready) = get_json(&format!("{base}/lean/ready"), None).await;
    assert_eq!((status, ready["ready"].as_bool()), (200, Some(true)));
    let (status, tree) = get_json(&format!("{admin}/admin/supervisor"), None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = child_order(subsystems.opts());
    expected.push("visits");
    assert_eq!(names, expected);
    let mut page = client
        .get(format!("{base}/lean/index.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.body().await.unwrap(), "<h1>fixture site</h1>");
    // The host's backend connections live in a pool under leanserve's pool manager.
    for word in ["hello", "pools", "again"] {
        let (status, reply) = get_json(&format!("{base}/api/shout/{word}"), None).await;
        assert_eq!(
            (status, reply["reply"].as_str()),
            (200, Some(word.to_uppercase().as_str()))
        );
    }
    let (status, pools) = get_json(&format!("{admin}/admin/pools"), None).await;
    assert_eq!(status, 200);
    let backend = pools["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "backend")
        .expect("the host's pool is listed beside leanserve's");
    assert_eq!(backend["acquires"], 3);
    assert_eq!(backend["created"], 1, "one connection, reused: {backend}");
    assert_eq!(backend["in_use"], 0);
    subsystems.collect_now().await.unwrap();
    let mut metrics = client.get(format!("{admin}/metrics")).send().await.unwrap();
    let text = String::from_utf8(metrics.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("leanserve_pool_acquires_total{pool=\"backend\"} 3"),
        "{text}"
    );
    // A broken connection is discarded, and the next call gets a fresh one.
    host.backend.try_acquire().unwrap().discard();
    let (status, reply) = get_json(&format!("{base}/api/shout/fresh"), None).await;
    assert_eq!((status, reply["reply"].as_str()), (200, Some("FRESH")));

    // leanserve's routes do not leak to the host's root, and the host's public listener
    // has none of the admin surface, not even under the prefix.
    assert_eq!(get_json(&format!("{base}/health"), None).await.0, 404);
    for path in [
        "admin/supervisor",
        "admin/pools",
        "metrics",
        "monitoring",
        "dashboard",
    ] {
        assert_eq!(
            get_json(&format!("{base}/lean/{path}"), None).await.0,
            404,
            "/lean/{path} on the host's listener"
        );
    }

    server.stop().await;
    admin_server.stop().await;
    subsystems.shutdown().await;
}

/// Mounted at the root, leanserve's static files shadow none of the host's routes,
/// registered before or after it: a `POST` to a host route reaches the host (the static
/// files would answer 405), a `GET` to one gets the host's answer (not a file of the same
/// name), and every other path is still a file.
#[actix_rt::test]
async fn embed_at_the_root_shadows_no_host_route() {
    let site = site();
    std::fs::create_dir(site.path().join("api")).unwrap();
    std::fs::write(site.path().join("api/before"), "a file").unwrap();
    std::fs::write(site.path().join("api/after"), "a file").unwrap();
    let subsystems = start(site.path(), &[]).runtime().await;
    let app = subsystems.clone();
    let server = serve_with(move |cfg| {
        let host = |name: &'static str| move || async move { format!("host {name}") };
        cfg.route(
            "/api/before",
            actix_web::web::post().to(host("before, POST")),
        )
        .route(
            "/api/get-before",
            actix_web::web::get().to(host("before, GET")),
        )
        .configure(leanserve::configure_public(&app))
        .route("/api/after", actix_web::web::post().to(host("after, POST")))
        .route(
            "/api/get-after",
            actix_web::web::get().to(host("after, GET")),
        );
    });
    let base = format!("http://{}", server.addr);

    let client = awc::Client::default();
    for (method, path, want) in [
        ("POST", "/api/before", "host before, POST"),
        ("POST", "/api/after", "host after, POST"),
        ("GET", "/api/get-before", "host before, GET"),
        ("GET", "/api/get-after", "host after, GET"),
        ("GET", "/app.css", "body { color: teal }"),
        ("GET", "/", "<h1>fixture site</h1>"),
    ] {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut response = client
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        assert_eq!(response.body().await.unwrap(), want, "{method} {path}");
    }
    // A path no route claims is a static file, with a static file's answers.
    let response = client.post(format!("{base}/app.css")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let response = client
        .get(format!("{base}/missing.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(get_json(&format!("{base}/health"), None).await.0, 200);

    drop(server);
    subsystems.shutdown().await;
}

/// Under a prefix, the prefix itself is the site's root directory without its slash:
/// redirected (308) to the prefix with one, as any directory is.
#[actix_rt::test]
async fn embed_prefix_without_slash_redirects_to_the_site_root() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[])
        .surface(Surface::Public)
        .under("/lean")
        .serve()
        .await;
    let base = format!("http://{}", server.addr);

    let client = awc::Client::builder().disable_redirects().finish();
    let response = client.get(format!("{base}/lean?x=1")).send().await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers().get("location").unwrap(), "/lean/?x=1");
    let mut index = client.get(format!("{base}/lean/")).send().await.unwrap();
    assert_eq!(index.body().await.unwrap(), "<h1>fixture site</h1>");
    let mut css = client
        .get(format!("{base}/lean/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.body().await.unwrap(), "body { color: teal }");
    // Outside the prefix nothing of leanserve answers.
    let response = client.get(format!("{base}/app.css")).send().await.unwrap();
    assert_eq!(response.status(), 404);

    drop(server);
    subsystems.shutdown().await;
}

/// Escalation reaches the host: when leanserve's tree gives up, the example's `serve`
/// drains the host's listener and answers `Escalated`, and the port closes.
#[actix_rt::test]
async fn embed_escalation_stops_the_host() {
    let site = site();
    let (subsystems, fragile) = start_with_fragile(site.path(), "1").await;
    let app = subsystems.clone();
    // Bound here rather than through `util`: the example's `serve` takes the server
    // before it runs, which is what this test exercises.
    let server = HttpServer::new(move || App::new().configure(leanserve::configure_public(&app)))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.addrs()[0];
    let serving = actix_rt::spawn({
        let subsystems = subsystems.clone();
        let server = server.run();
        async move { embed::serve(&subsystems, vec![server]).await }
    });
    assert_eq!(
        get_json(&format!("http://{addr}/health"), None).await.0,
        200
    );

    assert!(fragile.send(Crash).await.is_err());
    eventually("the first restart", || async { fragile.is_alive() }).await;
    assert_eq!(
        get_json(&format!("http://{addr}/health"), None).await.0,
        200
    );
    assert!(!serving.is_finished(), "one restart is within intensity");
    assert!(fragile.send(Crash).await.is_err());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), serving)
        .await
        .expect("the host stops once the tree gives up")
        .unwrap()
        .unwrap();
    assert_eq!(ended, embed::Ended::Escalated);
    eventually("the host's port closes", || async {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
}
