//! `examples/embed.rs` exercised over a real socket: the host's routes and leanserve's
//! routes under `/lean` live side by side, and the host's actor is supervised by
//! leanserve's tree.

mod util;

#[path = "../examples/embed.rs"]
mod embed;

use actix_web::{App, HttpServer};
use util::{get_json, site, test_opts};

#[actix_rt::test]
async fn embed_host_routes_and_leanserve_under_a_prefix() {
    let site = site();
    let (subsystems, visits) = embed::start(test_opts(site.path(), &[])).await;
    let (app_subsystems, app_visits) = (subsystems.clone(), visits.clone());
    let server = HttpServer::new(move || {
        App::new().configure(embed::host_routes(&app_subsystems, &app_visits))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);

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
    let (status, tree) = get_json(&format!("{base}/lean/admin/supervisor"), None).await;
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
    // leanserve's routes do not leak to the host's root.
    assert_eq!(get_json(&format!("{base}/health"), None).await.0, 404);

    handle.stop(false).await;
    subsystems.shutdown().await;
}
