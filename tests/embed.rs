//! `examples/embed.rs` exercised over real sockets: the host's routes and leanserve's
//! serving surface under `/lean` live side by side on the host's listener, the admin
//! surface answers only on its own listener, the host's actor is supervised by
//! leanserve's tree, and the host's backend connections live in a pool under its pool
//! manager.

mod util;

#[path = "../examples/embed.rs"]
mod embed;

use actix_web::{App, HttpServer};
use util::{get_json, site, test_opts};

#[actix_rt::test]
async fn embed_host_routes_and_leanserve_under_a_prefix() {
    let site = site();
    let host = embed::start(test_opts(site.path(), &[])).await;
    let subsystems = host.subsystems.clone();
    let app_host = host.clone();
    let server = HttpServer::new(move || App::new().configure(embed::host_routes(&app_host)))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    let admin_host = host.clone();
    let admin_server =
        HttpServer::new(move || App::new().configure(embed::admin_routes(&admin_host)))
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
    let admin = format!("http://{}", admin_server.addrs()[0]);
    let admin_server = admin_server.run();
    let admin_handle = admin_server.handle();
    actix_rt::spawn(admin_server);

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
    assert_eq!(
        names,
        [
            "process",
            "pool_manager",
            "file_cache",
            "profiler",
            "templates",
            "monitor",
            "tuner",
            "visits"
        ]
    );
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

    handle.stop(false).await;
    admin_handle.stop(false).await;
    subsystems.shutdown().await;
}
