//! Content codings over real sockets: br, zstd and gzip from the first request, the
//! negotiation rules (weights, ties to the smallest form, `identity;q=0`, unknown and
//! malformed headers), validators, 304s and ranges per representation, `HEAD` equal to
//! `GET`, precompressed sidecars (fresh, stale and corrupt), the stored level replacing
//! the quick one, codings kept by demand, and the figures on /admin/cache and /metrics.

mod util;

use std::io::Read;

use util::{RawResponse, Server, gunzip, raw, start};

const CHROME: &str = "gzip, deflate, br, zstd";

/// The Vary of a compressible file's responses (dictionaries are on by default).
const VARY: &str = "Accept-Encoding, Available-Dictionary";

/// `data` compressed as leanserve does while a client waits for a file it keeps.
fn quick(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut deflate =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(6).unwrap());
            let mut out = vec![0; deflate.gzip_compress_bound(data.len())];
            let n = deflate.gzip_compress(data, &mut out).unwrap();
            out.truncate(n);
            out
        }
        "br" => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: 5,
                lgwin: 17,
                size_hint: data.len(),
                ..Default::default()
            };
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
            out
        }
        "zstd" => zstd::bulk::compress(data, 3).unwrap(),
        other => panic!("{other}"),
    }
}

/// A stylesheet that compresses well but not trivially.
fn css() -> String {
    (0..400)
        .map(|i| {
            format!(
                ".c{i} {{ color: #{:06x}; margin: {}px auto; }}\n",
                i * 2654435 % 0xffffff,
                i % 17
            )
        })
        .collect()
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.css"), css()).unwrap();
    std::fs::write(
        dir.path().join("page.html"),
        "<p>a page of text</p>\n".repeat(300),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("logo.png"),
        (0..3000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    dir
}

async fn get(server: &Server, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    raw(server.addr, "GET", target, headers).await
}

async fn accepting(server: &Server, target: &str, accept: &str) -> RawResponse {
    get(server, target, &[("Accept-Encoding", accept)]).await
}

/// The body decoded by its Content-Encoding.
fn decoded(response: &RawResponse) -> Vec<u8> {
    match response.header("content-encoding") {
        None => response.body.clone(),
        Some("gzip") => gunzip(&response.body),
        Some("br") => {
            let mut out = Vec::new();
            brotli::Decompressor::new(&response.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::stream::decode_all(&response.body[..]).unwrap(),
        Some(other) => panic!("unexpected coding {other}"),
    }
}

#[actix_rt::test]
async fn encodings_a_cold_first_request_is_compressed_in_the_preferred_coding() {
    let dir = site();
    let css = css();
    for (accept, coding) in [
        (CHROME, "br"),
        ("gzip, deflate, br", "br"),
        ("zstd, gzip", "zstd"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
    ] {
        // A fresh server each time: the first request is a miss.
        let (subsystems, server) = start(dir.path(), &[]).serve().await;
        let first = accepting(&server, "/app.css", accept).await;
        assert_eq!(first.status, 200, "{accept}");
        assert_eq!(first.header("content-encoding"), Some(coding), "{accept}");
        // At the quick level (the cache keeps the file), not the passing one.
        assert_eq!(first.body, quick(coding, css.as_bytes()), "{accept}");
        assert_eq!(first.header("vary"), Some(VARY));
        assert!(
            first.body.len() * 3 < css.len(),
            "{accept}: {}",
            first.body.len()
        );
        assert_eq!(decoded(&first), css.as_bytes(), "{accept}");
        let stats = subsystems.cache_stats().await.unwrap();
        assert_eq!(stats.cache_misses, 1);
        let by = stats
            .encodings
            .iter()
            .find(|e| e.encoding == coding)
            .unwrap();
        assert_eq!((by.responses, by.inline_compressions), (1, 1), "{accept}");
    }
}

#[actix_rt::test]
async fn encodings_the_server_order_breaks_ties_between_codings_it_builds() {
    let dir = site();
    let (_subsystems, server) = start(dir.path(), &[("STATIC_FILE_ENCODINGS", "zstd,gzip")])
        .serve()
        .await;
    assert_eq!(
        accepting(&server, "/app.css", CHROME)
            .await
            .header("content-encoding"),
        Some("zstd")
    );
    let (_subsystems, server) = start(dir.path(), &[("STATIC_FILE_ENCODINGS", "")])
        .serve()
        .await;
    let plain = accepting(&server, "/app.css", CHROME).await;
    assert_eq!(
        (plain.header("content-encoding"), plain.header("vary")),
        (None, None)
    );
    assert_eq!(plain.body, css().as_bytes());
}

#[actix_rt::test]
async fn encodings_weights_choose_and_identity_zero_is_406_only_without_a_form() {
    let dir = site();
    let (_subsystems, server) = start(dir.path(), &[]).serve().await;
    for (accept, coding) in [
        ("br;q=0.5, gzip;q=0.9", Some("gzip")),
        ("gzip;q=0.5, identity", None),
        ("br, identity;q=0", Some("br")),
        ("zstd;q=0.1, *;q=0", Some("zstd")),
        // Every coding weighs 1: the smallest held, gzip (the first request's).
        ("*", Some("gzip")),
        ("deflate, compress", None),
        ("", None),
        // Malformed headers read as nothing usable: identity, never an error.
        (";;;,,q=", None),
        ("br;q=2, gzip;q=abc", None),
    ] {
        let response = accepting(&server, "/app.css", accept).await;
        assert_eq!(response.status, 200, "{accept:?}");
        assert_eq!(response.header("content-encoding"), coding, "{accept:?}");
        assert_eq!(decoded(&response), css().as_bytes(), "{accept:?}");
    }
    // Nothing acceptable exists: identity refused for a file with no compressed form.
    assert_eq!(
        accepting(&server, "/logo.png", "br, identity;q=0")
            .await
            .status,
        406
    );
    assert_eq!(
        accepting(&server, "/app.css", "deflate, identity;q=0")
            .await
            .status,
        406
    );
    assert_eq!(
        accepting(&server, "/logo.png", CHROME).await.header("vary"),
        None
    );
}

#[actix_rt::test]
async fn encodings_equal_weights_get_the_smallest_form_held() {
    let dir = site();
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    // br at the quick level first, then gzip and zstd built as their clients keep asking.
    util::settled(&server, &subsystems, "/app.css", "br").await;
    for accept in ["gzip", "zstd"] {
        for _ in 0..3 {
            accepting(&server, "/app.css", accept).await;
        }
    }
    util::eventually("gzip and zstd held", || async {
        let stats = subsystems.cache_stats().await.unwrap();
        stats.encodings.iter().filter(|e| e.held == 1).count() == 3
    })
    .await;
    let mut lens = Vec::new();
    for coding in ["gzip", "br", "zstd"] {
        let response = accepting(&server, "/app.css", coding).await;
        assert_eq!(response.header("content-encoding"), Some(coding));
        assert_eq!(decoded(&response), css().as_bytes());
        lens.push((response.body.len(), coding));
    }
    let smallest = lens.iter().min().unwrap().1;
    let chosen = accepting(&server, "/app.css", CHROME).await;
    assert_eq!(
        chosen.header("content-encoding"),
        Some(smallest),
        "{lens:?}"
    );
}

#[actix_rt::test]
async fn encodings_each_form_has_its_own_validator_304_range_and_head() {
    let dir = site();
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    let br = util::settled(&server, &subsystems, "/app.css", "br").await;
    // A second coding is built after repeated demand.
    for _ in 0..3 {
        accepting(&server, "/app.css", "gzip, deflate").await;
    }
    util::eventually("gzip built", || async {
        subsystems
            .cache_stats()
            .await
            .unwrap()
            .background_compressions
            == 2
    })
    .await;
    let gzip = accepting(&server, "/app.css", "gzip, deflate").await;
    let identity = get(&server, "/app.css", &[]).await;
    let tags = [
        br.header("etag"),
        gzip.header("etag"),
        identity.header("etag"),
    ];
    assert!(
        tags.iter()
            .all(|tag| tag.is_some_and(|t| t.starts_with('"'))),
        "{tags:?}"
    );
    assert!(
        tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2],
        "{tags:?}"
    );

    let br_tag = br.header("etag").unwrap();
    let revalidated = get(
        &server,
        "/app.css",
        &[("Accept-Encoding", "br"), ("If-None-Match", br_tag)],
    )
    .await;
    assert_eq!(revalidated.status, 304);
    assert_eq!(revalidated.header("etag"), Some(br_tag));
    assert_eq!(revalidated.header("vary"), Some(VARY));
    // The br tag does not validate the gzip form.
    let other = get(
        &server,
        "/app.css",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", br_tag)],
    )
    .await;
    assert_eq!(other.status, 200);

    // A range of a br response is a range of the br bytes.
    let part = get(
        &server,
        "/app.css",
        &[("Accept-Encoding", "br"), ("Range", "bytes=10-29")],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), Some("br"));
    assert_eq!(part.body, br.body[10..30]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-29/{}", br.body.len()).as_str())
    );
    let stale = get(
        &server,
        "/app.css",
        &[
            ("Accept-Encoding", "br"),
            ("Range", "bytes=0-9"),
            ("If-Range", gzip.header("etag").unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (stale.status, stale.body.len()),
        (200, br.body.len()),
        "If-Range of another form"
    );

    for accept in ["br", "gzip", "identity"] {
        let get = accepting(&server, "/app.css", accept).await;
        let head = raw(
            server.addr,
            "HEAD",
            "/app.css",
            &[("Accept-Encoding", accept)],
        )
        .await;
        assert!(head.body.is_empty());
        for name in [
            "content-length",
            "content-encoding",
            "etag",
            "vary",
            "content-type",
        ] {
            assert_eq!(head.header(name), get.header(name), "{accept} {name}");
        }
    }
}

#[actix_rt::test]
async fn encodings_quick_bytes_give_way_to_the_stored_level_once_read_again() {
    let dir = site();
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    let quick = accepting(&server, "/page.html", "br").await;
    let stored = util::settled(&server, &subsystems, "/page.html", "br").await;
    assert_eq!(decoded(&stored), decoded(&quick));
    assert!(
        stored.body.len() <= quick.body.len(),
        "{} > {}",
        stored.body.len(),
        quick.body.len()
    );
    if stored.body != quick.body {
        assert_ne!(stored.header("etag"), quick.header("etag"));
    }
    let stats = subsystems.cache_stats().await.unwrap();
    let br = stats.encodings.iter().find(|e| e.encoding == "br").unwrap();
    assert_eq!(
        (br.inline_compressions, br.recompressions, br.held),
        (1, 1, 1)
    );
}

#[actix_rt::test]
async fn encodings_a_second_coding_is_built_only_after_repeated_demand() {
    let dir = site();
    let (subsystems, server) = start(dir.path(), &[("STATIC_FILE_STORE", "compressed-only")])
        .serve()
        .await;
    util::settled(&server, &subsystems, "/app.css", "br").await;
    let held = |coding: &'static str| {
        let subsystems = &subsystems;
        async move {
            let stats = subsystems.cache_stats().await.unwrap();
            stats
                .encodings
                .iter()
                .find(|e| e.encoding == coding)
                .unwrap()
                .held
        }
    };
    // A gzip-only client of a br-only entry gets gzip compressed for it (a transcode, the
    // identity bytes being gone), and nothing more is kept until it keeps asking.
    for _ in 0..2 {
        let response = accepting(&server, "/app.css", "gzip").await;
        assert_eq!(response.header("content-encoding"), Some("gzip"));
        assert_eq!(gunzip(&response.body), css().as_bytes());
    }
    // Instead of sleeping: the cache actor answers after the offers those responses
    // sent it, and counts a build in `compression_queue` until it is done.
    util::eventually("the cache's background work done", || async {
        subsystems.cache_stats().await.unwrap().compression_queue == 0
    })
    .await;
    assert_eq!((held("br").await, held("gzip").await), (1, 0));
    accepting(&server, "/app.css", "gzip").await;
    util::eventually("gzip built on the third request", || async {
        held("gzip").await == 1
    })
    .await;
    // Identity clients get the decoded bytes.
    assert_eq!(get(&server, "/app.css", &[]).await.body, css().as_bytes());
}

#[actix_rt::test]
async fn encodings_fresh_sidecars_are_served_and_corrupt_or_stale_ones_are_not() {
    let dir = site();
    let css = css();
    let mut br = Vec::new();
    {
        let params = brotli::enc::BrotliEncoderParams {
            quality: 5,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut css.as_bytes(), &mut br, &params).unwrap();
    }
    let zst = zstd::bulk::compress(css.as_bytes(), 7).unwrap();
    std::fs::write(dir.path().join("app.css.br"), &br).unwrap();
    std::fs::write(dir.path().join("app.css.zst"), &zst).unwrap();
    // A gzip sidecar that is another file's bytes.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"body { color: red }".repeat(100).as_slice()).unwrap();
    std::fs::write(dir.path().join("app.css.gz"), gz.finish().unwrap()).unwrap();
    let (_subsystems, server) = start(dir.path(), &[]).serve().await;
    assert_eq!(
        accepting(&server, "/app.css", "br").await.body,
        br,
        "the .br sidecar as is"
    );
    assert_eq!(
        accepting(&server, "/app.css", "zstd").await.body,
        zst,
        "the .zst sidecar as is"
    );
    let gzip = accepting(&server, "/app.css", "gzip").await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gunzip(&gzip.body),
        css.as_bytes(),
        "the corrupt .gz is not served"
    );

    // Stale sidecars (older than the file) are ignored.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("app.css"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (_subsystems, server) = start(dir.path(), &[]).serve().await;
    let fresh = accepting(&server, "/app.css", "br").await;
    assert_eq!(decoded(&fresh), css.as_bytes());
    assert_ne!(fresh.body, br);
}

#[actix_rt::test]
async fn encodings_metrics_count_responses_bytes_and_forms_by_coding() {
    let dir = site();
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    let br = util::settled(&server, &subsystems, "/app.css", CHROME).await;
    get(&server, "/app.css", &[]).await;
    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    let sample = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(
        sample("leanserve_static_responses_total{encoding=\"br\"}"),
        3.0
    );
    assert_eq!(
        sample("leanserve_static_responses_total{encoding=\"identity\"}"),
        1.0
    );
    assert!(sample("leanserve_static_body_bytes_total{encoding=\"br\"}") >= br.body.len() as f64);
    assert_eq!(
        sample("leanserve_cache_recompressions_total{encoding=\"br\"}"),
        1.0
    );
    assert_eq!(
        sample("leanserve_cache_inline_compressions_total{encoding=\"br\"}"),
        1.0
    );
    assert_eq!(
        sample("leanserve_cache_representations{encoding=\"br\"}"),
        1.0
    );
    assert!(
        sample("leanserve_static_bytes_saved_total") > 2.0 * (css().len() - br.body.len()) as f64
    );
}

#[actix_rt::test]
async fn encodings_a_file_the_cache_does_not_keep_goes_in_the_cheapest_coding() {
    let dir = site();
    let (subsystems, server) = start(dir.path(), &[("STATIC_FILE_CACHE_ENABLED", "false")])
        .serve()
        .await;
    for (accept, coding) in [
        (CHROME, "zstd"),
        ("gzip, br", "gzip"),
        ("br", "br"),
        ("br, zstd;q=0.5", "br"),
    ] {
        let response = accepting(&server, "/app.css", accept).await;
        assert_eq!(
            response.header("content-encoding"),
            Some(coding),
            "{accept}"
        );
        assert_eq!(response.header("vary"), Some(VARY));
        assert_eq!(decoded(&response), css().as_bytes(), "{accept}");
    }
    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!((stats.items, stats.background_compressions), (0, 0));
}
