//! Compression Dictionary Transport (RFC 9842) over real sockets: the site dictionary
//! trained at start, served at its content-addressed URL and advertised on pages; dcz and
//! dcb bodies carrying the dictionary's hash and decoding (with libzstd's and brotli's
//! own decoders, the dictionary attached) to the file; validators, 304, Range and HEAD
//! per dictionary representation; unknown, malformed and cross-origin `no-cors`
//! requests falling back to the ordinary codings; a changed site getting a new
//! dictionary while the old one keeps working; asset versions as dictionaries for
//! their next version; the figures on /admin/cache and /metrics.

mod util;

use std::io::Read;
use std::time::Duration;

use leanserve::Subsystems;
use sha2::Digest;
use util::{RawResponse, Server, Surface, raw, start};

const CHROMIUM: &str = "gzip, deflate, br, zstd, dcb, dcz";

/// A page of a site whose pages share their markup.
fn page(i: usize) -> String {
    let items: String = (0..20)
        .map(|j| {
            format!(
                "<li><a href=\"/doc/{}.html\">Item {} of the list</a></li>\n",
                (i * 7 + j) % 50,
                j
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Page {i}</title>\
         <link rel=\"stylesheet\" href=\"/static/site.css\"><script src=\"/static/app.js\" defer></script></head>\n\
         <body><header class=\"top\"><nav><a href=\"/\">Home</a> <a href=\"/guide/\">Guide</a> <a href=\"/api/\">API</a></nav></header>\n\
         <main><h1>Page number {i}</h1><p>{}</p><ul>{items}</ul></main>\n\
         <footer><p>Every page ends with this same footer, its licence and its links.</p></footer></body></html>\n",
        "Some words of this page that differ. ".repeat(i % 5 + 1)
    )
}

fn site(pages: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..pages {
        std::fs::write(dir.path().join(format!("p{i}.html")), page(i)).unwrap();
    }
    dir
}

async fn get(server: &Server, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    raw(server.addr, "GET", target, headers).await
}

/// Waits (at most 20 s) until the cache holds `count` dictionaries and has trained
/// `builds` site dictionaries.
async fn dictionaries_held(subsystems: &Subsystems, count: usize, builds: u64) {
    for _ in 0..2000 {
        let stats = subsystems.cache_stats().await.unwrap();
        if stats.dictionaries.len() >= count && stats.dictionary_builds >= builds {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {count} dictionaries ({builds} builds) within 20 s");
}

/// The site dictionary's URL as a page advertises it, and its bytes.
async fn site_dictionary(server: &Server) -> (String, Vec<u8>) {
    let page = get(server, "/p1.html", &[("Accept-Encoding", CHROMIUM)]).await;
    let link = page.header("link").expect("pages advertise the dictionary");
    let url = link
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .map(|(url, rest)| {
            assert_eq!(rest, "; rel=\"compression-dictionary\"");
            url.to_owned()
        })
        .unwrap();
    let response = get(server, &url, &[]).await;
    assert_eq!(response.status, 200);
    (url, response.body)
}

/// GET `target` as a client holding `dictionary` (Chromium's Accept-Encoding).
async fn holding(server: &Server, target: &str, dictionary: &[u8]) -> RawResponse {
    get(
        server,
        target,
        &[
            ("Accept-Encoding", CHROMIUM),
            ("Available-Dictionary", &available(dictionary)),
        ],
    )
    .await
}

fn available(dictionary: &[u8]) -> String {
    use base64::Engine;
    let hash = sha2::Sha256::digest(dictionary);
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

fn undcz(dictionary: &[u8], body: &[u8], len: usize) -> Vec<u8> {
    let mut decoder = zstd::bulk::Decompressor::with_dictionary(dictionary).unwrap();
    decoder.decompress(&body[40..], len).unwrap()
}

fn undcb(dictionary: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new_with_custom_dict(&body[36..], 4096, dictionary.to_vec().into())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbr(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[actix_rt::test]
async fn dictionaries_the_site_dictionary_is_trained_served_and_advertised() {
    let dir = site(60);
    std::fs::write(
        dir.path().join("style.css"),
        "body { color: red }\n".repeat(100),
    )
    .unwrap();
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    dictionaries_held(&subsystems, 1, 1).await;
    let (url, identity) = site_dictionary(&server).await;
    let hash = hex(&sha2::Sha256::digest(&identity));
    assert_eq!(
        url,
        format!("/.leanserve/dictionary/{hash}"),
        "named by its SHA-256"
    );
    assert!(
        identity.len() > 1000 && identity.len() <= 262_144,
        "{}",
        identity.len()
    );
    let text = String::from_utf8_lossy(&identity);
    assert!(text.contains("footer"), "made of the pages' shared markup");

    let response = get(&server, &url, &[("Accept-Encoding", "br")]).await;
    assert_eq!(
        response.header("content-encoding"),
        Some("br"),
        "sent compressed"
    );
    assert_eq!(unbr(&response.body), identity);
    assert_eq!(
        response.header("use-as-dictionary"),
        Some(r#"match="/*", match-dest=("document")"#)
    );
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=2592000")
    );
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    let etag = response.header("etag").unwrap().to_owned();
    let again = get(
        &server,
        &url,
        &[("Accept-Encoding", "br"), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(again.status, 304);

    // Only that spelling of that hash; no other file under the folder.
    for other in [
        url.to_uppercase(),
        format!("/.leanserve/dictionary/{}", "0".repeat(64)),
    ] {
        assert_eq!(get(&server, &other, &[]).await.status, 404, "{other}");
    }
    // Pages carry the Link; other files do not. Both vary on the dictionary.
    let css = get(&server, "/style.css", &[("Accept-Encoding", CHROMIUM)]).await;
    assert_eq!(css.header("link"), None);
    assert_eq!(
        css.header("vary"),
        Some("Accept-Encoding, Available-Dictionary")
    );

    let stats = subsystems.cache_stats().await.unwrap();
    assert_eq!(stats.dictionary_downloads, 2, "the two 200s");
    assert_eq!(stats.dictionaries.len(), 1);
    assert_eq!(stats.dictionaries[0].hash, hash);
    assert!(stats.dictionaries[0].current);
    assert_eq!(stats.dictionary_bytes, {
        let held: u64 = identity.len() as u64;
        // Its own compressed forms count too.
        assert!(stats.dictionary_bytes > held);
        stats.dictionary_bytes
    });
    let admin = get(&server, "/admin/cache", &[]).await;
    let admin: serde_json::Value = serde_json::from_slice(&admin.body).unwrap();
    let listed = &admin["dictionaries"][0];
    assert_eq!(listed["hash"], hash);
    assert_eq!(listed["kind"], "site");
    assert_eq!(listed["files"], 60);
    assert!(listed["age_s"].is_u64());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[actix_rt::test]
async fn dictionaries_dcz_and_dcb_carry_the_hash_and_decode_with_the_dictionary() {
    let dir = site(60);
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    dictionaries_held(&subsystems, 1, 1).await;
    let (_, dictionary) = site_dictionary(&server).await;
    let hash = sha2::Sha256::digest(&dictionary);
    let file = page(7).into_bytes();
    let with = |accept: &'static str| {
        let available = available(&dictionary);
        let server = &server;
        async move {
            get(
                server,
                "/p7.html",
                &[
                    ("Accept-Encoding", accept),
                    ("Available-Dictionary", &available),
                ],
            )
            .await
        }
    };

    let dcz = with(CHROMIUM).await;
    assert_eq!(dcz.status, 200);
    assert_eq!(dcz.header("content-encoding"), Some("dcz"));
    assert_eq!(&dcz.body[..8], &[0x5e, 0x2a, 0x4d, 0x18, 0x20, 0, 0, 0]);
    assert_eq!(&dcz.body[8..40], &hash[..], "the dictionary's hash");
    assert_eq!(undcz(&dictionary, &dcz.body, file.len()), file);
    assert_eq!(
        dcz.header("vary"),
        Some("Accept-Encoding, Available-Dictionary")
    );
    let br = get(&server, "/p7.html", &[("Accept-Encoding", "br")]).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(
        dcz.body.len() * 2 < br.body.len(),
        "dcz {} vs br {}",
        dcz.body.len(),
        br.body.len()
    );

    let dcb = with("br, dcb").await;
    assert_eq!(dcb.header("content-encoding"), Some("dcb"));
    assert_eq!(&dcb.body[..4], b"\xffDCB");
    assert_eq!(&dcb.body[4..36], &hash[..]);
    assert_eq!(undcb(&dictionary, &dcb.body), file);
    assert_ne!(dcb.header("etag"), dcz.header("etag"));

    // Held in the cache now: the same bytes and validator again.
    let etag = dcz.header("etag").unwrap().to_owned();
    assert_ne!(Some(etag.as_str()), br.header("etag"));
    for _ in 0..100 {
        let again = with(CHROMIUM).await;
        if subsystems.cache_stats().await.unwrap().encodings[4].held == 1 {
            assert_eq!(again.body, dcz.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = with(CHROMIUM).await;
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.body, dcz.body);

    // 304, Range and HEAD on the dcz representation.
    let available = available(&dictionary);
    let headers = [
        ("Accept-Encoding", CHROMIUM),
        ("Available-Dictionary", available.as_str()),
    ];
    let conditional = get(
        &server,
        "/p7.html",
        &[headers[0], headers[1], ("If-None-Match", etag.as_str())],
    )
    .await;
    assert_eq!(conditional.status, 304);
    assert_eq!(conditional.header("etag"), Some(etag.as_str()));
    assert_eq!(
        conditional.header("vary"),
        Some("Accept-Encoding, Available-Dictionary")
    );
    let range = get(
        &server,
        "/p7.html",
        &[headers[0], headers[1], ("Range", "bytes=0-39")],
    )
    .await;
    assert_eq!(range.status, 206);
    assert_eq!(range.header("content-encoding"), Some("dcz"));
    assert_eq!(range.body, &dcz.body[..40]);
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 0-39/{}", dcz.body.len()).as_str())
    );
    let head = raw(server.addr, "HEAD", "/p7.html", &headers).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), Some("dcz"));
    assert_eq!(
        head.header("content-length"),
        Some(dcz.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    let sample = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(sample("leanserve_static_responses_total{encoding=\"dcz\"}") >= 5.0);
    assert_eq!(
        sample("leanserve_static_responses_total{encoding=\"dcb\"}"),
        1.0
    );
    assert!(sample("leanserve_dictionary_bytes_saved_total") > 0.0);
    assert_eq!(sample("leanserve_dictionary_builds_total"), 1.0);
    assert_eq!(sample("leanserve_dictionaries"), 1.0);
}

#[actix_rt::test]
async fn dictionaries_unknown_malformed_opaque_or_larger_get_the_ordinary_codings() {
    let dir = site(30);
    // Unlike the site's pages: against the dictionary it saves nothing over plain br.
    std::fs::write(dir.path().join("runs.html"), "a".repeat(20_000)).unwrap();
    let (subsystems, server) = start(dir.path(), &[]).serve().await;
    dictionaries_held(&subsystems, 1, 1).await;
    let (_, dictionary) = site_dictionary(&server).await;
    let good = available(&dictionary);
    let unknown = available(b"another dictionary");
    for (label, headers) in [
        (
            "unknown hash",
            vec![("Available-Dictionary", unknown.as_str())],
        ),
        (
            "malformed",
            vec![("Available-Dictionary", "not-a-byte-sequence")],
        ),
        ("short", vec![("Available-Dictionary", ":AAAA:")]),
        (
            "cross-site no-cors",
            vec![
                ("Available-Dictionary", good.as_str()),
                ("Sec-Fetch-Site", "cross-site"),
                ("Sec-Fetch-Mode", "no-cors"),
            ],
        ),
    ] {
        let mut headers = headers;
        headers.push(("Accept-Encoding", CHROMIUM));
        let response = get(&server, "/p3.html", &headers).await;
        assert_eq!(response.status, 200, "{label}");
        assert_eq!(response.header("content-encoding"), Some("br"), "{label}");
        assert_eq!(unbr(&response.body), page(3).into_bytes(), "{label}");
    }
    // The right hash without dcz or dcb accepted: plain.
    let plain = get(
        &server,
        "/p3.html",
        &[("Accept-Encoding", "br"), ("Available-Dictionary", &good)],
    )
    .await;
    assert_eq!(plain.header("content-encoding"), Some("br"));
    // Same-origin no-cors (a page's own script) may be dictionary-compressed.
    let same = get(
        &server,
        "/p3.html",
        &[
            ("Accept-Encoding", CHROMIUM),
            ("Available-Dictionary", &good),
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
    )
    .await;
    assert_eq!(same.header("content-encoding"), Some("dcz"));

    // A dictionary body no smaller than the held br one: br.
    let br = util::settled(&server, &subsystems, "/runs.html", "br").await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    let response = get(
        &server,
        "/runs.html",
        &[
            ("Accept-Encoding", CHROMIUM),
            ("Available-Dictionary", &good),
        ],
    )
    .await;
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(response.body, br.body);
}

#[actix_rt::test]
async fn dictionaries_switched_off_build_offer_and_use_none() {
    let dir = site(30);
    let (subsystems, server) = start(dir.path(), &[("STATIC_FILE_DICTIONARIES", "")])
        .serve()
        .await;
    let page = get(&server, "/p1.html", &[("Accept-Encoding", CHROMIUM)]).await;
    assert_eq!(page.header("content-encoding"), Some("br"));
    assert_eq!(page.header("link"), None);
    assert_eq!(page.header("vary"), Some("Accept-Encoding"));
    // Read through the cache actor, after its start: training would have begun there.
    let stats = subsystems.cache_stats().await.unwrap();
    assert!(stats.dictionaries.is_empty());
    assert_eq!(stats.dictionary_builds, 0);
}

#[actix_rt::test]
async fn dictionaries_a_changed_site_gets_a_new_dictionary_and_keeps_the_old_one() {
    let dir = site(60);
    // Every request checks the disk, so changed pages are found at once.
    let (subsystems, server) = start(dir.path(), &[("STATIC_FILE_CACHE_EXPIRATION", "0")])
        .serve()
        .await;
    dictionaries_held(&subsystems, 1, 1).await;
    let (old_url, old) = site_dictionary(&server).await;
    for i in 0..30 {
        get(&server, &format!("/p{i}.html"), &[]).await;
    }
    // A redesign: 30 pages change their markup.
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..30 {
        let redesigned = page(i)
            .replace("<li>", "<li class=\"entry\">")
            .replace("footer", "bottom");
        std::fs::write(dir.path().join(format!("p{i}.html")), redesigned).unwrap();
        get(&server, &format!("/p{i}.html"), &[]).await;
    }
    dictionaries_held(&subsystems, 2, 2).await;
    let (new_url, new) = site_dictionary(&server).await;
    assert_ne!(new_url, old_url);
    assert_ne!(new, old);
    // Clients holding either dictionary get dcz against the one they hold.
    let file = std::fs::read(dir.path().join("p40.html")).unwrap();
    for dictionary in [&old, &new] {
        let response = holding(&server, "/p40.html", dictionary).await;
        assert_eq!(response.header("content-encoding"), Some("dcz"));
        assert_eq!(&response.body[8..40], &sha2::Sha256::digest(dictionary)[..]);
        assert_eq!(undcz(dictionary, &response.body, file.len()), file);
    }
    // The old URL still serves the old one.
    assert_eq!(get(&server, &old_url, &[]).await.body, old);
    let stats = subsystems.cache_stats().await.unwrap();
    let current: Vec<bool> = stats.dictionaries.iter().map(|d| d.current).collect();
    assert_eq!(current, [true, false]);
}

/// A 120 KB script, and its next version with about 5% of it changed.
fn script(version: u32) -> String {
    (0..2000)
        .map(|i| {
            let changed = version > 1 && i % 20 == 7;
            format!(
                "function handler{i}(event) {{ return dispatch(\"{}\", event.target, {}); }}\n",
                if changed { "updated-action" } else { "action" },
                (i * 2_654_435_761u64) % 1_000_003
            )
        })
        .collect()
}

#[actix_rt::test]
async fn dictionaries_an_asset_version_is_the_dictionary_for_the_next() {
    asset_versions("both").await;
}

/// The prod profile's store drops identity bytes once compressed ones exist: the
/// version kept as a dictionary is decoded from them.
#[actix_rt::test]
async fn dictionaries_asset_versions_work_in_a_compressed_only_store() {
    asset_versions("compressed-only").await;
}

async fn asset_versions(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    let (v1, v2) = (script(1), script(2));
    std::fs::write(dir.path().join("assets/app-1.js"), &v1).unwrap();
    std::fs::write(dir.path().join("assets/app-2.js"), &v2).unwrap();
    std::fs::write(dir.path().join("assets/lib-1.js"), &v1).unwrap();
    let (subsystems, server) = start(
        dir.path(),
        &[
            ("STATIC_FILE_DICTIONARY_ASSETS", "/assets/app-*.js"),
            (
                "STATIC_FILE_CACHE_CONTROL",
                "public, max-age=31536000, immutable",
            ),
            ("STATIC_FILE_STORE", store),
        ],
    )
    .serve()
    .await;
    let first = get(
        &server,
        "/assets/app-1.js",
        &[("Accept-Encoding", CHROMIUM)],
    )
    .await;
    assert_eq!(
        first.header("use-as-dictionary"),
        Some(r#"match="/assets/app-*.js""#)
    );
    let other = get(
        &server,
        "/assets/lib-1.js",
        &[("Accept-Encoding", CHROMIUM)],
    )
    .await;
    assert_eq!(
        other.header("use-as-dictionary"),
        None,
        "not under the pattern"
    );
    // The site has no pages: the version is the only dictionary.
    dictionaries_held(&subsystems, 1, 0).await;

    // brotli 11 of the new version, as the cache would store it.
    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut v2.as_bytes(), &mut br, &params).unwrap();
    let delta = holding(&server, "/assets/app-2.js", v1.as_bytes()).await;
    assert_eq!(delta.header("content-encoding"), Some("dcz"));
    assert_eq!(undcz(v1.as_bytes(), &delta.body, v2.len()), v2.as_bytes());
    assert!(
        delta.body.len() * 5 <= br.len(),
        "dcz {} vs br-11 {}",
        delta.body.len(),
        br.len()
    );
    // Served, the new version became the pattern's current dictionary; the old one stays.
    dictionaries_held(&subsystems, 2, 0).await;
    let admin = get(&server, "/admin/cache", &[]).await;
    let admin: serde_json::Value = serde_json::from_slice(&admin.body).unwrap();
    let listed: Vec<(String, String, bool)> = admin["dictionaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["kind"], "asset");
            assert_eq!(d["pattern"], "/assets/app-*.js");
            (
                d["key"].as_str().unwrap().to_owned(),
                d["hash"].as_str().unwrap().to_owned(),
                d["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "assets/app-2.js".into(),
                hex(&sha2::Sha256::digest(v2.as_bytes())),
                true
            ),
            (
                "assets/app-1.js".into(),
                hex(&sha2::Sha256::digest(v1.as_bytes())),
                false
            ),
        ]
    );

    // Three newer versions push the first out (3 are kept per pattern)...
    let v1_hash = hex(&sha2::Sha256::digest(v1.as_bytes()));
    let held = |admin: &RawResponse| -> Vec<String> {
        let admin: serde_json::Value = serde_json::from_slice(&admin.body).unwrap();
        admin["dictionaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["hash"].as_str().unwrap().to_owned())
            .collect()
    };
    // (Under compressed-only its entry holds only the br bytes of its first response by
    // now.)
    for n in 3..=5 {
        let version = script(n).replace("dispatch", &format!("dispatch{n}"));
        std::fs::write(dir.path().join(format!("assets/app-{n}.js")), version).unwrap();
        get(&server, &format!("/assets/app-{n}.js"), &[]).await;
    }
    dictionaries_held(&subsystems, 3, 0).await;
    for _ in 0..500 {
        if held(&get(&server, "/admin/cache", &[]).await).len() == 3
            && !held(&get(&server, "/admin/cache", &[]).await).contains(&v1_hash)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!held(&get(&server, "/admin/cache", &[]).await).contains(&v1_hash));
    // Served again, it is kept again (decoded from its compressed bytes where identity
    // is not held), and works as a dictionary again.
    let again = get(
        &server,
        "/assets/app-1.js",
        &[("Accept-Encoding", CHROMIUM)],
    )
    .await;
    assert_eq!(again.status, 200);
    for _ in 0..500 {
        if held(&get(&server, "/admin/cache", &[]).await).contains(&v1_hash) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delta = holding(&server, "/assets/app-2.js", v1.as_bytes()).await;
    assert_eq!(delta.header("content-encoding"), Some("dcz"), "{store}");
    assert_eq!(undcz(v1.as_bytes(), &delta.body, v2.len()), v2.as_bytes());
}

#[actix_rt::test]
async fn dictionaries_no_store_assets_are_not_offered_as_dictionaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app-1.js"), script(1)).unwrap();
    let (subsystems, server) = start(
        dir.path(),
        &[
            ("STATIC_FILE_DICTIONARY_ASSETS", "/assets/app-*.js"),
            ("STATIC_FILE_CACHE_CONTROL", "no-store"),
        ],
    )
    .serve()
    .await;
    let response = get(
        &server,
        "/assets/app-1.js",
        &[("Accept-Encoding", CHROMIUM)],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("use-as-dictionary"), None);
    // Read through the cache actor, after anything the response would have sent it.
    assert!(
        subsystems
            .cache_stats()
            .await
            .unwrap()
            .dictionaries
            .is_empty()
    );
}

#[test]
fn dictionaries_a_bad_asset_pattern_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["assets/app-*.js", "/assets/:name.js", "/assets/app.js"] {
        let error = leanserve::Config::load(&util::load_options(
            dir.path(),
            &[("STATIC_FILE_DICTIONARY_ASSETS", bad)],
        ))
        .and_then(|config| config.opts.validate().map(|()| config))
        .expect_err(bad);
        let message = error.to_string();
        assert!(
            message.contains("static_files.dictionary_assets"),
            "{message}"
        );
        assert!(message.contains(bad), "{message}");
    }
}

#[actix_rt::test]
async fn dictionaries_mounted_under_a_scope_name_paths_under_it() {
    let dir = site(30);
    let (subsystems, server) = start(dir.path(), &[])
        .surface(Surface::Public)
        .under("/lean")
        .serve()
        .await;
    dictionaries_held(&subsystems, 1, 1).await;
    let first = get(&server, "/lean/p1.html", &[("Accept-Encoding", CHROMIUM)]).await;
    let hash = subsystems.cache_stats().await.unwrap().dictionaries[0]
        .hash
        .clone();
    let url = format!("/lean/.leanserve/dictionary/{hash}");
    assert_eq!(
        first.header("link"),
        Some(format!("<{url}>; rel=\"compression-dictionary\"").as_str())
    );
    let dictionary = get(&server, &url, &[]).await;
    assert_eq!(dictionary.status, 200);
    assert_eq!(
        dictionary.header("use-as-dictionary"),
        Some(r#"match="/lean/*", match-dest=("document")"#)
    );
    let response = holding(&server, "/lean/p2.html", &dictionary.body).await;
    assert_eq!(response.header("content-encoding"), Some("dcz"));
    assert_eq!(
        undcz(&dictionary.body, &response.body, page(2).len()),
        page(2).into_bytes()
    );
    // Not at the root: the host's paths are its own.
    assert_eq!(get(&server, &url[5..], &[]).await.status, 404);
    // A percent-encoded path names the same mount point.
    std::fs::write(dir.path().join("caf\u{e9}.html"), page(3)).unwrap();
    let encoded = get(
        &server,
        "/lean/caf%C3%A9.html",
        &[("Accept-Encoding", CHROMIUM)],
    )
    .await;
    assert_eq!(encoded.status, 200);
    assert_eq!(
        encoded.header("link"),
        Some(format!("<{url}>; rel=\"compression-dictionary\"").as_str())
    );
}
