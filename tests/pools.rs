//! Resource pools over real HTTP: the file cache and template renders take their
//! compressors, inflaters and buffers from the pools, `/admin/pools` shows them and
//! resizes them with clear errors, and with the pool manager off every response is the
//! same. Bad `[pools]` configuration stops start-up naming the key.

mod util;

use leanserve::{Config, ConfigError, LoadOptions};
use leanserve::{PoolError, PoolSpec};
use util::{Start, config_dir, get_json, raw, site, start, test_opts};

/// A site with compressible files.
fn text_site() -> tempfile::TempDir {
    let dir = site();
    for n in 0..6 {
        let css: String = (0..400)
            .map(|i| format!(".rule-{n}-{i} {{ color: teal; margin: {i}px }}\n"))
            .collect();
        std::fs::write(dir.path().join(format!("s{n}.css")), css).unwrap();
    }
    dir
}

fn pool<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pool {name} in {body}"))
}

#[actix_rt::test]
async fn pools_serve_gzip_inserts_identity_inflates_and_renders_from_pooled_objects() {
    let site = text_site();
    let opts = test_opts(site.path(), &[("STATIC_FILE_STORE", "compressed-only")]);
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    for n in 0..6 {
        // Compressed in the background with a pooled compressor.
        let gzip = util::gzipped(&server, &format!("/s{n}.css")).await;
        assert_eq!(gzip.status, 200);
        let expected = std::fs::read(site.path().join(format!("s{n}.css"))).unwrap();
        assert_eq!(util::gunzip(&gzip.body), expected);
        // Identity from the compressed-only store: inflated with a pooled inflater.
        let identity = raw(server.addr, "GET", &format!("/s{n}.css"), &[]).await;
        assert_eq!(identity.status, 200);
        assert_eq!(identity.body, expected);
    }
    let page = raw(
        server.addr,
        "GET",
        "/templates/pages/index.html",
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(page.status, 200);

    // The background builds at the stored level finish.
    util::eventually("the background builds", || async {
        let (_, body) = get_json(&server.url("/admin/pools"), None).await;
        let stats = subsystems.cache_stats().await.unwrap();
        pool(&body, "gzip")["in_use"] == 0 && stats.compression_queue == 0
    })
    .await;
    let (status, body) = get_json(&server.url("/admin/pools"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["enabled"], true);
    let gzip = pool(&body, "gzip");
    // Six files, each compressed for its first request (gzip's stored level is its quick
    // one by default, so nothing is rebuilt): at most two compressors made (one per
    // thread compressing at once), reused for the rest.
    assert!(gzip["acquires"].as_u64().unwrap() >= 6, "{gzip}");
    assert!(gzip["created"].as_u64().unwrap() <= 2, "{gzip}");
    assert_eq!(gzip["in_use"], 0);
    // Identity responses (6) and background builds of compressed-only entries decode
    // with pooled inflaters.
    let inflate = pool(&body, "inflate");
    assert!(inflate["acquires"].as_u64().unwrap() >= 6, "{inflate}");
    assert!(inflate["created"].as_u64().unwrap() <= 2, "{inflate}");
    let buffers = pool(&body, "render_buffers");
    assert!(buffers["acquires"].as_u64().unwrap() >= 1, "{buffers}");
    assert!(gzip["idle_bytes"].as_u64().unwrap() > 0 || gzip["idle"].as_u64() >= Some(1));
    server_stop(subsystems, server).await;
}

async fn server_stop(subsystems: leanserve::Subsystems, server: util::Server) {
    drop(server);
    subsystems.shutdown().await;
}

#[actix_rt::test]
async fn pools_off_gives_the_same_bytes_and_reports_disabled() {
    let site = text_site();
    let mut bodies = Vec::new();
    for enabled in ["true", "false"] {
        let opts = test_opts(
            site.path(),
            &[
                ("STATIC_FILE_STORE", "compressed-only"),
                ("RESOURCE_POOL_MANAGER_ENABLED", enabled),
            ],
        );
        let (subsystems, server) = Start::with_opts(opts).serve().await;
        let mut seen = Vec::new();
        for (path, encoding) in [
            ("/s1.css", "gzip"),
            ("/s1.css", "identity"),
            ("/templates/pages/index.html", "gzip"),
        ] {
            let response = raw(server.addr, "GET", path, &[("Accept-Encoding", encoding)]).await;
            assert_eq!(response.status, 200, "{path} {encoding} pools {enabled}");
            seen.push((response.header("etag").map(str::to_owned), response.body));
        }
        let (status, body) = get_json(&server.url("/admin/pools"), None).await;
        assert_eq!(status, 200);
        assert_eq!(body["enabled"], enabled == "true");
        if enabled == "false" {
            assert_eq!(body["pools"], serde_json::json!([]));
            let (status, off) = get_json(&server.url("/admin/pools/gzip"), None).await;
            assert_eq!(status, 409, "{off}");
            assert_eq!(
                (off["subsystem"].as_str(), off["switch"].as_str()),
                (Some("pools"), Some("pools.enabled"))
            );
            let names: Vec<_> = subsystems
                .supervisor_report()
                .children
                .iter()
                .map(|c| c.name.clone())
                .collect();
            assert!(!names.contains(&"pool_manager".to_owned()));
            assert_eq!(
                subsystems
                    .create_pool(
                        "mine",
                        PoolSpec::new(1),
                        leanserve::FnManager::new(|| Ok::<u8, std::io::Error>(1))
                    )
                    .await
                    .unwrap_err(),
                PoolError::Off(leanserve::Off::Pools)
            );
        }
        bodies.push(seen);
        server_stop(subsystems, server).await;
    }
    assert_eq!(
        bodies[0], bodies[1],
        "same validators and bytes with pools on and off"
    );
}

#[actix_rt::test]
async fn pools_admin_resize_answers_400_naming_the_limit_and_404_for_unknown_pools() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    let post = |path: String| {
        let url = server.url(&path);
        async move { util::post_json(&url).await }
    };
    let (status, body) = post("/admin/pools/gzip/resize?max_size=3&scale_max=6".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["max_size"].as_u64(),
            body["spec"]["scale_max"].as_u64()
        ),
        (Some(3), Some(6))
    );
    assert_eq!(body["decisions"][0]["by"], "admin");
    let (status, body) = post("/admin/pools/gzip/resize?min_idle=9".into()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`min_idle` = 9: at most max_size (3)"),
        "{body}"
    );
    let (status, body) = post("/admin/pools/gzip/resize?max_size=0".into()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("max_size"),
        "{body}"
    );
    let (status, body) = post("/admin/pools/gzip/resize?max_size=lots".into()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("bad resize parameters"),
        "{body}"
    );
    let (status, body) = post("/admin/pools/gzip/resize?colour=red".into()).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = post("/admin/pools/gzip/resize".into()).await;
    assert_eq!(status, 400, "nothing to change");
    let (status, body) = post("/admin/pools/nope/resize?max_size=2".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no pool named `nope`"))
    );
    assert_eq!(
        get_json(&server.url("/admin/pools/nope"), None).await.0,
        404
    );
    let (status, one) = get_json(&server.url("/admin/pools/inflate"), None).await;
    assert_eq!((status, one["name"].as_str()), (200, Some("inflate")));
    server_stop(subsystems, server).await;
}

#[test]
fn pools_bad_configuration_names_the_key() {
    let site = site();
    let load = |files: &[(&str, &str)], env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut vars: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert(
            "STATIC_FILE_ROOT_DIR".into(),
            site.path().display().to_string(),
        );
        Config::load(
            &LoadOptions::default()
                .config_dir(dir.path())
                .profile("test")
                .env(vars),
        )
    };
    let key = |result: Result<Config, ConfigError>| match result {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        key(load(&[], &[("LEANSERVE_POOLS_MAX_SIZE", "0")])),
        "pools.max_size"
    );
    assert_eq!(
        key(load(
            &[],
            &[
                ("LEANSERVE_POOLS_MAX_SIZE", "4"),
                ("LEANSERVE_POOLS_MIN_IDLE", "5")
            ]
        )),
        "pools.min_idle"
    );
    assert_eq!(
        key(load(
            &[],
            &[
                ("LEANSERVE_POOLS_MAX_SIZE", "4"),
                ("LEANSERVE_POOLS_SCALE_MAX", "2")
            ]
        )),
        "pools.scale_max"
    );
    assert_eq!(
        key(load(
            &[("test.toml", "[pools.overrides.gzipp]\nmax_size = 2\n")],
            &[]
        )),
        "pools.overrides.gzipp"
    );
    assert_eq!(
        key(load(
            &[("test.toml", "[pools.overrides.gzip]\nmax_sise = 2\n")],
            &[]
        )),
        "pools.overrides.gzip.max_sise"
    );
    assert_eq!(
        key(load(
            &[("test.toml", "[pools.overrides.gzip]\nmax_size = -1\n")],
            &[]
        )),
        "pools.overrides.gzip.max_size"
    );
    assert_eq!(
        key(load(
            &[(
                "test.toml",
                "[pools.overrides.gzip]\nmax_size = 2\nmin_idle = 3\n"
            )],
            &[]
        )),
        "pools.overrides.gzip.min_idle"
    );
    let config = load(
        &[("test.toml", "[pools]\nmax_size = 4\n[pools.overrides.gzip]\nmax_size = 2\nmin_idle = 1\nautoscale = false\n")],
        &[],
    )
    .unwrap();
    let gzip = config.opts.pools.spec("gzip");
    assert_eq!(
        (gzip.max_size, gzip.min_idle, gzip.autoscale),
        (2, 1, false)
    );
    let inflate = config.opts.pools.spec("inflate");
    assert_eq!((inflate.max_size, inflate.scale_max), (4, 16));
    let _ = config_dir();
}
