//! The static file handler over real sockets: representations and negotiation,
//! validators and preconditions, ranges, HEAD and methods, directories, hidden files,
//! a traversal corpus, malformed input, revalidation, large-file streaming, the
//! compressed-only store, and the cache's statistics and admin routes.

mod util;

use std::path::{Path, PathBuf};

use leanserve::Subsystems;
use util::{RawResponse, Server, gunzip, raw};

const CSS_RULE: &str = "body { color: #334; margin: 0 auto; font-family: sans-serif; }\n";

/// A site under `<tmp>/site`, with a secret next to it (outside the root).
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").unwrap();
        std::fs::write(
            root.join("index.html"),
            format!("<h1>home</h1>{}", "<p>text</p>".repeat(200)),
        )
        .unwrap();
        std::fs::write(root.join("app.css"), CSS_RULE.repeat(160)).unwrap();
        std::fs::write(root.join("tiny.txt"), "hi").unwrap();
        std::fs::write(
            root.join("logo.png"),
            (0..3000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
        std::fs::write(root.join(".env"), "PASSWORD=hunter2").unwrap();
        std::fs::write(root.join("data.bin"), big_bytes()).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        Site { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }
}

/// 200 KB of varied bytes for the streamed file.
fn big_bytes() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

async fn start(root: &Path, env: &[(&str, &str)]) -> (Subsystems, Server) {
    let mut vars = vec![("STATIC_FILE_MAX_FILE_SIZE", "65536")];
    vars.extend_from_slice(env);
    let (subsystems, server) = util::start(root, &vars).serve().await;
    (subsystems, server)
}

async fn get(server: &Server, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    raw(server.addr, "GET", target, headers).await
}

/// The ETag of a streamed file once its bytes are hashed (weak until then).
async fn strong_etag(server: &Server, target: &str) -> String {
    for _ in 0..1000 {
        let etag = get(server, target, &[])
            .await
            .header("etag")
            .unwrap()
            .to_owned();
        if !etag.starts_with("W/") {
            return etag;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{target}'s bytes were never hashed");
}

/// The status of a GET.
async fn status(server: &Server, target: &str, headers: &[(&str, &str)]) -> u16 {
    get(server, target, headers).await.status
}

#[actix_rt::test]
async fn static_get_sends_bytes_type_validators_and_length() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let response = get(&server, "/tiny.txt", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hi");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.header("content-length"), Some("2"));
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    let etag = response.header("etag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    let modified = std::fs::metadata(site.root().join("tiny.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        response.header("last-modified"),
        Some(httpdate::fmt_http_date(modified).as_str())
    );
    assert_eq!(
        get(&server, "/logo.png", &[]).await.header("content-type"),
        Some("image/png")
    );
}

#[actix_rt::test]
async fn static_etag_is_a_content_hash_stable_across_runtimes() {
    let (one, two) = (Site::new(), Site::new());
    let (_a, server_a) = start(&one.root(), &[]).await;
    let (_b, server_b) = start(&two.root(), &[]).await;
    let a = get(&server_a, "/app.css", &[]).await;
    let b = get(&server_b, "/app.css", &[]).await;
    assert_eq!(
        a.header("etag"),
        b.header("etag"),
        "same bytes, same ETag on every replica"
    );
    std::fs::write(two.root().join("tiny.txt"), "ho").unwrap();
    let c = get(&server_a, "/tiny.txt", &[]).await;
    let d = get(&server_b, "/tiny.txt", &[]).await;
    assert_ne!(c.header("etag"), d.header("etag"));
}

#[actix_rt::test]
async fn static_a_client_refusing_identity_gets_gzip_before_the_cache_built_it() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let response = get(
        &server,
        "/index.html",
        &[("Accept-Encoding", "gzip, identity;q=0")],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(
        response.header("vary"),
        Some("Accept-Encoding, Available-Dictionary")
    );
    let page = std::fs::read(site.root().join("index.html")).unwrap();
    assert_eq!(gunzip(&response.body), page);
    // The cache's stored-level copy, built in the background, has a validator of its own
    // when its bytes differ.
    let settled = util::settled(&server, &_subsystems, "/index.html", "gzip").await;
    assert_eq!(gunzip(&settled.body), page);
    assert_eq!(
        settled.header("etag") == response.header("etag"),
        settled.body == response.body
    );
}

#[actix_rt::test]
async fn static_gzip_is_negotiated_with_its_own_etag_and_vary() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let css = CSS_RULE.repeat(160);
    // A miss is answered compressed, from the first request on.
    let first = get(&server, "/app.css", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    assert_eq!(
        first.header("vary"),
        Some("Accept-Encoding, Available-Dictionary")
    );
    assert_eq!(gunzip(&first.body), css.as_bytes());
    let gzip = get(&server, "/app.css", &[("Accept-Encoding", "gzip, deflate")]).await;
    assert_eq!(gzip.status, 200);
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gzip.header("vary"),
        Some("Accept-Encoding, Available-Dictionary")
    );
    assert!(
        gzip.body.len() * 10 < css.len(),
        "stored gzip is small: {}",
        gzip.body.len()
    );
    assert_eq!(gunzip(&gzip.body), css.as_bytes());

    let identity = get(&server, "/app.css", &[]).await;
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(
        identity.header("vary"),
        Some("Accept-Encoding, Available-Dictionary"),
        "identity responses vary too"
    );
    assert_eq!(identity.body, css.as_bytes());
    assert_ne!(identity.header("etag"), gzip.header("etag"));

    for (accept, encoded) in [
        ("gzip;q=0", false),
        ("identity;q=0.5, gzip;q=0.8", true),
        ("*", true),
        ("br", true),
        ("deflate", false),
        ("GZIP", true),
    ] {
        let response = get(&server, "/app.css", &[("Accept-Encoding", accept)]).await;
        assert_eq!(response.status, 200, "{accept}");
        assert_eq!(
            response.header("content-encoding").is_some(),
            encoded,
            "{accept}"
        );
    }
    // Identity refused and no other coding available for a PNG: 406.
    let refused = get(&server, "/logo.png", &[("Accept-Encoding", "identity;q=0")]).await;
    assert_eq!(refused.status, 406);
    let refused = get(&server, "/tiny.txt", &[("Accept-Encoding", "*;q=0")]).await;
    assert_eq!(refused.status, 406);
    // A small or binary file has no gzip representation, hence no Vary.
    assert_eq!(
        get(&server, "/logo.png", &[("Accept-Encoding", "gzip")])
            .await
            .header("vary"),
        None
    );
}

#[actix_rt::test]
async fn static_head_has_get_headers_and_no_body() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    // Headers of a settled entry: its gzip built, and the streamed file's bytes hashed.
    util::settled(&server, &_subsystems, "/app.css", "gzip").await;
    strong_etag(&server, "/data.bin").await;
    for (path, accept) in [
        ("/app.css", "gzip"),
        ("/app.css", "identity"),
        ("/data.bin", "gzip"),
    ] {
        let get = get(&server, path, &[("Accept-Encoding", accept)]).await;
        let head = raw(server.addr, "HEAD", path, &[("Accept-Encoding", accept)]).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "{path}");
        for name in [
            "content-length",
            "content-type",
            "etag",
            "last-modified",
            "vary",
            "content-encoding",
            "cache-control",
        ] {
            assert_eq!(head.header(name), get.header(name), "{path} {name}");
        }
        assert_eq!(
            head.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            get.body.len()
        );
    }
}

#[actix_rt::test]
async fn static_other_methods_get_405_with_allow() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let response = raw(server.addr, method, "/tiny.txt", &[("Content-Length", "0")]).await;
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[actix_rt::test]
async fn static_preconditions_follow_rfc_9110() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let first = get(&server, "/app.css", &[]).await;
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();

    let revalidated = get(&server, "/app.css", &[("If-None-Match", &etag)]).await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    for name in ["etag", "last-modified", "cache-control", "vary"] {
        assert_eq!(
            revalidated.header(name),
            first.header(name),
            "304 carries {name}"
        );
    }
    let weak = format!("W/{etag}");
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[("If-None-Match", &format!("\"x\", {weak}"))]
        )
        .await,
        304
    );
    assert_eq!(
        status(&server, "/app.css", &[("If-None-Match", "*")]).await,
        304
    );
    assert_eq!(
        status(&server, "/app.css", &[("If-None-Match", "\"other\"")]).await,
        200
    );
    // The gzip representation (at the stored level) is validated by its own tag.
    let gzip = util::settled(&server, &_subsystems, "/app.css", "gzip").await;
    let gzip_etag = gzip.header("etag").unwrap().to_owned();
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[("Accept-Encoding", "gzip"), ("If-None-Match", &gzip_etag)]
        )
        .await,
        304
    );
    assert_eq!(
        status(&server, "/app.css", &[("If-None-Match", &gzip_etag)]).await,
        200
    );

    assert_eq!(
        status(&server, "/app.css", &[("If-Modified-Since", &modified)]).await,
        304
    );
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]
        )
        .await,
        200
    );
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[
                ("If-None-Match", "\"other\""),
                ("If-Modified-Since", &modified)
            ]
        )
        .await,
        200
    );

    assert_eq!(
        status(&server, "/app.css", &[("If-Match", &etag)]).await,
        200
    );
    assert_eq!(
        status(&server, "/app.css", &[("If-Match", "\"other\"")]).await,
        412
    );
    assert_eq!(
        status(&server, "/app.css", &[("If-Match", &weak)]).await,
        412,
        "If-Match compares strongly"
    );
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]
        )
        .await,
        412
    );
    assert_eq!(
        status(&server, "/app.css", &[("If-Unmodified-Since", &modified)]).await,
        200
    );
    // If-Match wins over If-Unmodified-Since.
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[
                ("If-Match", &etag),
                ("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")
            ]
        )
        .await,
        200
    );
}

#[actix_rt::test]
async fn static_ranges_single_multi_invalid_and_if_range() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let css = CSS_RULE.repeat(160).into_bytes();
    let len = css.len();
    let partial = get(&server, "/app.css", &[("Range", "bytes=10-19")]).await;
    assert_eq!(partial.status, 206);
    assert_eq!(partial.body, &css[10..20]);
    assert_eq!(
        partial.header("content-range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    let suffix = get(&server, "/app.css", &[("Range", "bytes=-5")]).await;
    assert_eq!(
        (suffix.status, suffix.body.as_slice()),
        (206, &css[len - 5..])
    );
    let open = get(
        &server,
        "/app.css",
        &[("Range", &format!("bytes={}-", len - 3))],
    )
    .await;
    assert_eq!(open.body, &css[len - 3..]);

    let unsatisfiable = get(&server, "/app.css", &[("Range", &format!("bytes={len}-"))]).await;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(
        unsatisfiable.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(
        status(&server, "/app.css", &[("Range", "bytes=-0")]).await,
        416
    );

    // Several ranges: we answer with the whole representation (documented choice).
    let multi = get(&server, "/app.css", &[("Range", "bytes=0-1,5-9")]).await;
    assert_eq!((multi.status, multi.body.len()), (200, len));

    let etag = partial.header("etag").unwrap().to_owned();
    assert_eq!(
        status(
            &server,
            "/app.css",
            &[("Range", "bytes=0-0"), ("If-Range", &etag)]
        )
        .await,
        206
    );
    let stale = get(
        &server,
        "/app.css",
        &[("Range", "bytes=0-0"), ("If-Range", "\"old\"")],
    )
    .await;
    assert_eq!((stale.status, stale.body.len()), (200, len));

    // Ranges apply to the representation sent: here the gzip bytes (at the stored level,
    // which no longer changes).
    let gzip = util::settled(&server, &_subsystems, "/app.css", "gzip").await;
    let gzip_part = get(
        &server,
        "/app.css",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(gzip_part.status, 206);
    assert_eq!(gzip_part.header("content-encoding"), Some("gzip"));
    assert_eq!(gzip_part.body, &gzip.body[..10]);
    assert_eq!(
        gzip_part.header("content-range"),
        Some(format!("bytes 0-9/{}", gzip.body.len()).as_str())
    );
}

#[actix_rt::test]
async fn static_directories_redirect_then_serve_their_index() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let redirect = get(&server, "/docs?lang=en", &[]).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/docs/?lang=en"));
    let index = get(&server, "/docs/", &[]).await;
    assert_eq!(
        (index.status, index.body.as_slice()),
        (200, &b"<h1>docs</h1>"[..])
    );
    let home = get(&server, "/", &[]).await;
    assert!(home.body.starts_with(b"<h1>home</h1>"));
    assert_eq!(
        status(&server, "/empty/", &[]).await,
        404,
        "no listing without an index"
    );
    assert_eq!(status(&server, "/missing.css", &[]).await, 404);
    assert_eq!(status(&server, "/tiny.txt/", &[]).await, 404);
}

#[actix_rt::test]
async fn static_hidden_files_are_404_unless_served() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    assert_eq!(status(&server, "/.env", &[]).await, 404);
    assert_eq!(status(&server, "/%2eenv", &[]).await, 404);
    let (_open, open_server) = start(&site.root(), &[("STATIC_FILE_SERVE_HIDDEN", "true")]).await;
    let shown = get(&open_server, "/.env", &[]).await;
    assert_eq!(
        (shown.status, shown.body.as_slice()),
        (200, &b"PASSWORD=hunter2"[..])
    );
}

#[actix_rt::test]
async fn static_traversal_corpus_never_leaves_the_root() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let corpus = [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/.%2e/secret.txt",
        "/docs/../../secret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%ae%c0%ae%c0%afsecret.txt",
        "/%252e%252e/secret.txt",
        "/secret.txt%00.html",
        "/leak.txt",
        "/up/secret.txt",
        "//../secret.txt",
        "/%2F..%2F..%2Fsecret.txt",
        "/./../secret.txt",
        "/docs/..;/secret.txt",
        "/%u002e%u002e/secret.txt",
        "/....//secret.txt",
    ];
    for target in corpus {
        let response = get(&server, target, &[]).await;
        assert!(
            matches!(response.status, 400 | 404),
            "{target}: {} {:?}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            !String::from_utf8_lossy(&response.body).contains("TOP SECRET"),
            "{target}"
        );
    }
    // An absolute-looking path stays inside the root.
    assert_eq!(get(&server, "//tiny.txt", &[]).await.body, b"hi");
}

#[actix_rt::test]
async fn static_malformed_headers_and_paths_never_5xx() {
    let site = Site::new();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let ranges = [
        "bytes=abc",
        "bytes=5-1",
        "bytes=-0",
        "bytes=99999999999999999999999-",
        "bytes=",
        "bytes=--1",
        "lines=0-1",
        "bytes=0-1,",
    ];
    let thousand = format!(
        "bytes={}",
        (0..1000)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for range in ranges.iter().copied().chain([thousand.as_str()]) {
        let response = get(&server, "/app.css", &[("Range", range)]).await;
        assert!(
            matches!(response.status, 200 | 206 | 416),
            "{range}: {}",
            response.status
        );
    }
    for date in [
        "yesterday",
        "",
        "Thu, 99 Jan 1970 00:00:00 GMT",
        "Mon, 01 Jan 10000 00:00:00 GMT",
        "0",
    ] {
        for name in ["If-Modified-Since", "If-Unmodified-Since", "If-Range"] {
            let response = get(&server, "/app.css", &[(name, date), ("Range", "bytes=0-1")]).await;
            assert!(response.status < 500, "{name}: {date}: {}", response.status);
        }
    }
    for accept in [
        ";;;,,q=",
        "gzip;q=2",
        "gzip;q=abc",
        "gzip;q=-1",
        &"x,".repeat(2000),
        "*;q=0.5, identity;q=1.5",
    ] {
        let response = get(&server, "/app.css", &[("Accept-Encoding", accept)]).await;
        assert!(
            matches!(response.status, 200 | 406),
            "{accept}: {}",
            response.status
        );
    }
    for tag in ["W/", "\"unterminated", ",,,", "*, \"x\""] {
        assert!(
            status(&server, "/app.css", &[("If-None-Match", tag)]).await < 500,
            "{tag}"
        );
        assert!(
            status(&server, "/app.css", &[("If-Match", tag)]).await < 500,
            "{tag}"
        );
    }
    let long = format!("/{}", "a".repeat(5000));
    assert_eq!(status(&server, &long, &[]).await, 414);
    let long_name = format!("/{}", "n".repeat(300));
    assert_eq!(
        status(&server, &long_name, &[]).await,
        404,
        "a name too long for the filesystem"
    );
    let deep = "/a".repeat(100);
    assert!(status(&server, &deep, &[]).await < 500);
    assert!(status(&server, "/%ff%fe.txt", &[]).await < 500);
}

#[actix_rt::test]
async fn static_changes_on_disk_show_at_once_with_zero_expiry() {
    let site = Site::new();
    let (subsystems, server) = start(&site.root(), &[("STATIC_FILE_CACHE_EXPIRATION", "0")]).await;
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"hi");
    std::fs::write(site.root().join("tiny.txt"), "changed!").unwrap();
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"changed!");
    std::fs::remove_file(site.root().join("tiny.txt")).unwrap();
    assert_eq!(status(&server, "/tiny.txt", &[]).await, 404);
    let stats = subsystems.cache_stats().await.unwrap();
    assert!(stats.revalidations >= 2, "{stats:?}");
}

#[actix_rt::test]
async fn static_within_expiry_hits_skip_the_disk() {
    let site = Site::new();
    let (subsystems, server) =
        start(&site.root(), &[("STATIC_FILE_CACHE_EXPIRATION", "3600")]).await;
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"hi");
    std::fs::write(site.root().join("tiny.txt"), "changed!").unwrap();
    // Within the expiry the cached bytes are served; a cache clear picks up the change.
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"hi");
    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!((stats.cache_hits, stats.cache_misses), (1, 1), "{stats:?}");
    subsystems.clear_cache().await.unwrap();
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"changed!");
}

/// A cached body larger than the slice actix-http is handed at a time comes back whole,
/// byte for byte, with its length, in ranges across slice boundaries, and to HEAD.
#[actix_rt::test]
async fn static_large_cached_bodies_are_sent_in_slices_byte_for_byte() {
    let site = Site::new();
    let (subsystems, server) =
        start(&site.root(), &[("STATIC_FILE_MAX_FILE_SIZE", "1048576")]).await;
    let whole = big_bytes();
    for _ in 0..2 {
        // A miss, then a hit.
        let response = get(&server, "/data.bin", &[]).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-length"), Some("200000"));
        assert!(response.body == whole, "the body differs from the file");
    }
    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!(
        (stats.cache_hits, stats.too_large),
        (1, 0),
        "cached: {stats:?}"
    );
    for (range, start, end) in [
        ("bytes=32000-99999", 32_000, 100_000),
        ("bytes=32768-65535", 32_768, 65_536),
        ("bytes=-70000", 130_000, 200_000),
    ] {
        let response = get(&server, "/data.bin", &[("Range", range)]).await;
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            response.header("content-length"),
            Some((end - start).to_string().as_str()),
            "{range}"
        );
        assert!(
            response.body == whole[start..end],
            "{range}: the bytes differ"
        );
    }
    let head = raw(server.addr, "HEAD", "/data.bin", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("200000"));
    assert!(head.body.is_empty());
    // The connection is still good for a next request after a sliced body.
    assert_eq!(status(&server, "/tiny.txt", &[]).await, 200);
}

#[actix_rt::test]
async fn static_large_files_stream_with_ranges_and_validators() {
    let site = Site::new();
    let (subsystems, server) = start(&site.root(), &[]).await;
    let bytes = big_bytes();
    let full = get(&server, "/data.bin", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body, bytes, "streamed in chunks, byte for byte");
    assert_eq!(full.header("content-encoding"), None);
    let part = get(&server, "/data.bin", &[("Range", "bytes=70000-140004")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &bytes[70_000..140_005]);
    // Until its bytes are hashed (off the request path) a streamed file has a weak tag
    // from its length and time, which revalidates but never resumes a range.
    let weak = full.header("etag").unwrap().to_owned();
    assert!(weak.starts_with("W/\""), "{weak}");
    assert_eq!(
        status(&server, "/data.bin", &[("If-None-Match", &weak)]).await,
        304
    );
    // Then the strong tag a cached copy of the same bytes would have.
    let strong = strong_etag(&server, "/data.bin").await;
    assert_eq!(
        strong,
        format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&bytes))
    );
    for etag in [&weak, &strong] {
        let revalidated = get(&server, "/data.bin", &[("If-None-Match", etag)]).await;
        assert_eq!(revalidated.status, 304, "{etag}");
        assert_eq!(revalidated.header("etag"), Some(strong.as_str()));
    }
    let range = [("Range", "bytes=100-199")];
    let resumed = get(&server, "/data.bin", &[range[0], ("If-Range", &strong)]).await;
    assert_eq!(
        (resumed.status, resumed.body.as_slice()),
        (206, &bytes[100..200])
    );
    let weak_resume = get(&server, "/data.bin", &[range[0], ("If-Range", &weak)]).await;
    assert_eq!(weak_resume.status, 200, "a weak tag never resumes a range");
    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!(stats.items, 0, "a large file is never cached");
    assert!(stats.too_large >= 2, "{stats:?}");
}

/// Two servers with their own copies of a site, the copies written at different times,
/// agree on a streamed file's validators once each hashed it: an `If-None-Match` from one
/// gets 304 from the other, and an `If-Range` resume 206 (replicas behind a balancer).
#[actix_rt::test]
async fn static_large_file_validators_agree_across_copies() {
    let (one, two) = (Site::new(), Site::new());
    let older = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(one.root().join("data.bin"))
        .unwrap()
        .set_modified(older)
        .unwrap();
    let (_first, a) = start(&one.root(), &[]).await;
    let (_second, b) = start(&two.root(), &[]).await;
    let weak = |server| async move {
        get(server, "/data.bin", &[])
            .await
            .header("etag")
            .unwrap()
            .to_owned()
    };
    assert_ne!(
        weak(&a).await,
        weak(&b).await,
        "different times, different weak tags"
    );
    let etag = strong_etag(&a, "/data.bin").await;
    assert_eq!(strong_etag(&b, "/data.bin").await, etag);
    assert_eq!(
        status(&b, "/data.bin", &[("If-None-Match", &etag)]).await,
        304
    );
    let resumed = get(
        &b,
        "/data.bin",
        &[("Range", "bytes=1000-"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(resumed.status, 206);
    assert_eq!(resumed.body, &big_bytes()[1000..]);
}

#[actix_rt::test]
async fn static_compressed_only_store_inflates_for_identity_clients() {
    let site = Site::new();
    let (subsystems, server) =
        start(&site.root(), &[("STATIC_FILE_STORE", "compressed-only")]).await;
    let css = CSS_RULE.repeat(160);
    let gzip = util::gzipped(&server, "/app.css").await;
    assert_eq!(gunzip(&gzip.body), css.as_bytes());
    let identity = get(&server, "/app.css", &[]).await;
    assert_eq!(identity.body, css.as_bytes());
    assert_eq!(
        identity.header("content-length"),
        Some(css.len().to_string().as_str())
    );
    let part = get(&server, "/app.css", &[("Range", "bytes=5-9")]).await;
    assert_eq!(part.body, &css.as_bytes()[5..10]);
    let stats = subsystems.cache_stats().await.unwrap();
    let size = stats.bytes_cached - stats.admission_sketch_bytes;
    assert!(
        size < css.len() as u64,
        "only the gzip bytes are held: {size}"
    );
}

#[actix_rt::test]
async fn static_compressed_only_compresses_a_file_only_once_a_gzip_client_asks_for_it() {
    let site = Site::new();
    let (subsystems, server) =
        start(&site.root(), &[("STATIC_FILE_STORE", "compressed-only")]).await;
    let css = CSS_RULE.repeat(160);
    // Only identity clients: the file stays as read, every hit served without inflating.
    for _ in 0..5 {
        let identity = get(&server, "/app.css", &[]).await;
        assert_eq!(identity.body, css.as_bytes());
        assert_eq!(
            identity.header("vary"),
            Some("Accept-Encoding, Available-Dictionary")
        );
    }
    // Instead of sleeping: the cache actor answers `cache_stats` after the offers the
    // reads above sent it (they are sent before each response), and a build it started
    // counts in `compression_queue` until it is done; so once the queue reads empty,
    // whatever those reads asked for has run and is counted.
    util::eventually("the cache's background work done", || async {
        subsystems.cache_stats().await.unwrap().compression_queue == 0
    })
    .await;
    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!(
        (stats.background_compressions, stats.inflations),
        (0, 0),
        "nothing compressed or inflated for identity clients"
    );
    let held = stats.bytes_cached - stats.admission_sketch_bytes;
    assert!(
        held >= css.len() as u64,
        "the identity bytes are held: {held}"
    );
    // The first gzip client gets gzip, compressed for it; the cache keeps those bytes in
    // place of the identity ones.
    let gzip = get(&server, "/app.css", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gzip.body), css.as_bytes());
    util::eventually("only compressed bytes are held", || async {
        let stats = subsystems.cache_stats().await.unwrap();
        stats.bytes_cached - stats.admission_sketch_bytes < css.len() as u64
    })
    .await;
    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!(stats.encodings[1].inline_compressions, 1);
    assert_eq!(
        subsystems
            .cache_stats()
            .await
            .unwrap()
            .background_compressions,
        0,
        "gzip's stored level is its quick one by default: nothing to rebuild"
    );
}

#[actix_rt::test]
async fn static_compressed_only_keeps_an_identity_copy_of_a_file_identity_clients_read_often() {
    let site = Site::new();
    let (subsystems, server) =
        start(&site.root(), &[("STATIC_FILE_STORE", "compressed-only")]).await;
    let css = CSS_RULE.repeat(160);
    util::gzipped(&server, "/app.css").await;
    let stats = || async { subsystems.cache_stats().await.unwrap() };
    // The first identity reads inflate; the third offers the cache a copy.
    for _ in 0..3 {
        assert_eq!(get(&server, "/app.css", &[]).await.body, css.as_bytes());
    }
    assert_eq!(stats().await.inflations, 3);
    for _ in 0..200 {
        if stats().await.identity_copies == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let kept = stats().await;
    assert_eq!(
        (kept.identity_copies, kept.identity_copy_bytes),
        (1, css.len() as u64)
    );
    // From now on identity reads cost no inflation, and gzip reads still get gzip.
    for _ in 0..5 {
        let identity = get(&server, "/app.css", &[]).await;
        assert_eq!(identity.body, css.as_bytes());
        assert_eq!(
            identity.header("vary"),
            Some("Accept-Encoding, Available-Dictionary")
        );
    }
    let gzip = get(&server, "/app.css", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gunzip(&gzip.body), css.as_bytes());
    assert_eq!(stats().await.inflations, 3);

    // With no share for copies, every identity read inflates.
    let (off, off_server) = start(
        &site.root(),
        &[
            ("STATIC_FILE_STORE", "compressed-only"),
            ("STATIC_FILE_IDENTITY_COPY_PERCENT", "0"),
        ],
    )
    .await;
    util::gzipped(&off_server, "/app.css").await;
    for _ in 0..6 {
        get(&off_server, "/app.css", &[]).await;
    }
    let never = off.cache_stats().await.unwrap();
    assert_eq!((never.inflations, never.identity_copies), (6, 0));
}

#[actix_rt::test]
async fn static_cache_stats_and_admin_clear() {
    let site = Site::new();
    let (subsystems, server) = start(&site.root(), &[]).await;
    // The miss is answered gzip at the quick level (also gzip's stored level by default),
    // and two hits follow.
    let hit = util::settled(&server, &subsystems, "/app.css", "gzip").await;
    assert_eq!(hit.header("content-encoding"), Some("gzip"));
    get(&server, "/tiny.txt", &[]).await;
    let (status, stats) = util::get_json(&server.url("/admin/cache"), None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["files_served"], 4);
    assert_eq!(
        (stats["cache_hits"].as_u64(), stats["cache_misses"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(stats["hit_ratio"], 0.5);
    assert_eq!(stats["compressed_served"], 3);
    assert_eq!(stats["background_compressions"], 0);
    let gzip = &stats["encodings"][1];
    assert_eq!(gzip["encoding"], "gzip");
    assert_eq!(
        (
            gzip["responses"].as_u64(),
            gzip["inline_compressions"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        (gzip["held"].as_u64(), gzip["recompressions"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(stats["encodings"][0]["responses"], 1, "tiny.txt");
    assert!(stats["bytes_saved"].as_u64().unwrap() > 3 * 8000, "{stats}");
    assert_eq!(stats["items"], 2);
    assert!(
        stats["compression_ratio"].as_f64().unwrap() > 0.9,
        "{stats}"
    );
    assert!(stats["bytes_cached"].as_u64().unwrap() <= stats["budget_bytes"].as_u64().unwrap());
    assert!(stats["average_serve_time_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(subsystems.cache_item_count().await.unwrap(), 2);

    let response = awc::Client::default()
        .post(server.url("/admin/cache/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(subsystems.cache_item_count().await.unwrap(), 0);
    // What is left is the admission sketch, sized from the default 100 MB budget.
    assert_eq!(subsystems.cache_size().await.unwrap(), 4 * 16_384 + 2_048);
    assert_eq!(stats["admission_sketch_bytes"], 4 * 16_384 + 2_048);
    assert_eq!(
        get(&server, "/tiny.txt", &[]).await.body,
        b"hi",
        "refills after a clear"
    );
}

#[actix_rt::test]
async fn static_cache_disabled_still_serves_from_disk() {
    let site = Site::new();
    let (subsystems, server) = start(&site.root(), &[("STATIC_FILE_CACHE_ENABLED", "false")]).await;
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"hi");
    std::fs::write(site.root().join("tiny.txt"), "fresh").unwrap();
    assert_eq!(get(&server, "/tiny.txt", &[]).await.body, b"fresh");
    assert_eq!(subsystems.cache_item_count().await.unwrap(), 0);
}

#[actix_rt::test]
async fn static_precompressed_sidecar_is_served_as_gzip() {
    let site = Site::new();
    let text = "sidecar ".repeat(500);
    std::fs::write(site.root().join("notes.txt"), &text).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
    let sidecar = encoder.finish().unwrap();
    std::fs::write(site.root().join("notes.txt.gz"), &sidecar).unwrap();
    let (_subsystems, server) = start(&site.root(), &[]).await;
    let response = get(&server, "/notes.txt", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(response.body, sidecar);
}
