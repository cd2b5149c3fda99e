//! Templates over real sockets: the shipped examples rendered through their extends
//! chains (flattened and not, byte for byte the same), contexts from queries and JSON,
//! ETags and 304s, gzip, reloads that keep the last good version, load errors naming the
//! chain, render limits, and every kind of bad input answered with a 4xx.

mod util;

use std::path::Path;

use leanserve::ChainError;
use leanserve::Subsystems;
use leanserve::{LoadState, TemplateError};
use util::{Server, eventually, get_json, site, test_opts};

/// A runtime serving templates from `dir`, with extra environment variables.
async fn start(dir: &Path, env: &[(&str, &str)]) -> (Subsystems, Server) {
    let site = site();
    let mut vars = vec![("TEMPLATES_DIR", dir.to_str().unwrap())];
    vars.extend_from_slice(env);
    let opts = test_opts(site.path(), &vars);
    // The static root is only read at start-up checks; keep it alive anyway.
    std::mem::forget(site);
    let (subsystems, server) = util::Start::with_opts(opts).serve().await;
    (subsystems, server)
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> util::RawResponse {
    util::raw_with_body(server.addr, method, path, headers, body).await
}

fn text(response: &util::RawResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn info(subsystems: &Subsystems, name: &str) -> leanserve::TemplateInfo {
    subsystems
        .template_list()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no template {name}"))
}

#[actix_rt::test]
async fn templates_examples_render_with_query_context_etag_and_gzip() {
    // The example pages are about 1 KB: compress them.
    let (subsystems, server) =
        start(&examples(), &[("STATIC_FILE_MIN_COMPRESS_SIZE", "256")]).await;
    let page = request(
        &server,
        "GET",
        "/templates/pages/index.html?name=ada",
        &[],
        b"",
    )
    .await;
    assert_eq!(page.status, 200, "{}", text(&page));
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("vary"), Some("Accept-Encoding"));
    let body = text(&page);
    for part in [
        "<title>Home · leanserve</title>",
        "<p>Hello, Ada!</p>",
        "<h1>Welcome</h1>",
        "<nav><a href=\"index.html\">Home</a>",
        "<aside><p>Sections of leanserve</p></aside>",
        "<footer>Served by leanserve. Section layout.</footer>",
    ] {
        assert!(body.contains(part), "missing {part:?} in {body}");
    }
    let etag = page.header("etag").unwrap().to_owned();

    let again = request(
        &server,
        "GET",
        "/templates/pages/index.html?name=ada",
        &[("If-None-Match", &etag)],
        b"",
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = request(
        &server,
        "GET",
        "/templates/pages/index.html?name=bob",
        &[("If-None-Match", &etag)],
        b"",
    )
    .await;
    assert_eq!(other.status, 200, "another context, other bytes, other tag");
    assert_ne!(other.header("etag"), Some(etag.as_str()));

    let gzip = request(
        &server,
        "GET",
        "/templates/pages/index.html?name=ada",
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_ne!(gzip.header("etag"), Some(etag.as_str()));
    assert_eq!(util::gunzip(&gzip.body), page.body);

    let head = request(
        &server,
        "HEAD",
        "/templates/pages/index.html?name=ada",
        &[],
        b"",
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(page.body.len().to_string().as_str())
    );

    let report = request(
        &server,
        "POST",
        "/templates/pages/report.html",
        &[("Content-Type", "application/json")],
        br#"{"items": [{"name": "b", "value": 2}, {"name": "a", "value": 40, "unit": "MB"}]}"#,
    )
    .await;
    assert_eq!(report.status, 200, "{}", text(&report));
    let body = text(&report);
    assert!(body.contains("<tr><th>items</th><td>2</td></tr>"), "{body}");
    assert!(body.contains("<tr><th>a</th><td>40 MB</td></tr>"), "{body}");
    assert!(
        body.find(">a<").unwrap() < body.find(">b<").unwrap(),
        "sorted: {body}"
    );
    assert!(body.contains("<p>42 in total.</p>"), "{body}");
    // HTML auto-escaping of the request's values.
    let escaped = request(
        &server,
        "GET",
        "/templates/pages/index.html?name=%3Cscript%3E",
        &[],
        b"",
    )
    .await;
    assert!(
        text(&escaped).contains("Hello, &lt;Script&gt;!"),
        "{}",
        text(&escaped)
    );

    assert_eq!(
        info(&subsystems, "pages/report.html").parents,
        ["section.html", "base.html"]
    );
}

#[actix_rt::test]
async fn templates_flattened_and_unflattened_render_the_same_bytes() {
    let contexts: [&[u8]; 3] = [
        b"{}",
        br#"{"name": "ada", "features": ["one", "<two>"]}"#,
        br#"{"items": [{"name": "x", "value": 1}], "site": "other"}"#,
    ];
    let (flat, flat_server) = start(&examples(), &[]).await;
    let (plain, plain_server) = start(&examples(), &[("FLATTEN_INHERITANCE", "false")]).await;
    for page in ["pages/index.html", "pages/about.html", "pages/report.html"] {
        let served = info(&flat, page);
        assert_eq!(
            (served.served, served.served_depth, &served.not_flattened),
            (leanserve::Served::Flattened, 1, &None),
            "{page}"
        );
        assert_eq!(info(&plain, page).served_depth, 3, "{page}");
        for context in contexts {
            let path = format!("/templates/{page}");
            let a = request(&flat_server, "POST", &path, &[], context).await;
            let b = request(&plain_server, "POST", &path, &[], context).await;
            assert_eq!(a.status, 200, "{}", text(&a));
            assert_eq!(
                text(&a),
                text(&b),
                "{page} with {}",
                String::from_utf8_lossy(context)
            );
        }
    }
}

#[actix_rt::test]
async fn templates_deep_chains_are_collapsed_to_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "l0.html",
        "<{% block a %}0{% endblock %}|{% block b %}b0{% endblock %}>",
    );
    for level in 1..=5 {
        write(
            root,
            &format!("l{level}.html"),
            &format!(
                "{{% extends \"l{}.html\" %}}{{% block a %}}{level}[{{{{ super() }}}}]{{% endblock %}}",
                level - 1
            ),
        );
    }
    let (plain, plain_server) = start(
        root,
        &[
            ("FLATTEN_INHERITANCE", "false"),
            ("MAX_INHERITANCE_DEPTH", "3"),
        ],
    )
    .await;
    let (flat, flat_server) = start(root, &[]).await;
    let expected = "<5[4[3[2[1[0]]]]]|b0>";
    for (subsystems, server) in [(&plain, &plain_server), (&flat, &flat_server)] {
        let (status, _) = get_json(&server.url("/templates/l5.html"), None).await;
        assert_eq!(status, 200);
        let page = request(server, "GET", "/templates/l5.html", &[], b"").await;
        assert_eq!(text(&page), expected);
        let depth = info(subsystems, "l5.html").served_depth;
        assert!(depth <= 3, "served depth {depth}");
    }
    assert_eq!(info(&flat, "l5.html").served_depth, 1);
    assert_eq!(info(&plain, "l5.html").served_depth, 3);
    for level in 0..=5 {
        let template = info(&plain, &format!("l{level}.html"));
        assert!(template.served_depth <= 3, "{template:?}");
        let page = request(
            &plain_server,
            "GET",
            &format!("/templates/l{level}.html"),
            &[],
            b"",
        )
        .await;
        assert_eq!(page.status, 200);
    }
    let root = info(&plain, "l0.html");
    assert_eq!(
        (root.served, root.served_depth),
        (leanserve::Served::Original, 1)
    );
    // Only ancestors are flattened to shorten chains: l5 and l4 keep their own source.
    assert_eq!(info(&plain, "l5.html").served, leanserve::Served::Original);
}

#[actix_rt::test]
async fn templates_reload_keeps_the_last_good_version_and_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "page.txt", "version {{ n | default(1) }}");
    let (subsystems, server) = start(root, &[("TEMPLATE_RELOAD_INTERVAL", "0")]).await;
    assert_eq!(
        text(&request(&server, "GET", "/templates/page.txt", &[], b"").await),
        "version 1"
    );

    write(root, "page.txt", "version {{ broken");
    let (status, summary) = {
        let response = awc::Client::default()
            .post(server.url("/admin/templates/reload"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        (200, response)
    };
    assert_eq!(status, 200);
    assert_eq!(
        (summary["changed"].as_u64(), summary["errors"].as_u64()),
        (Some(1), Some(1))
    );
    let page = info(&subsystems, "page.txt");
    assert_eq!((page.state, page.stale), (LoadState::Error, true));
    assert!(
        matches!(
            page.error,
            Some(TemplateError::Syntax { line: Some(line), .. }) if line.get() == 1
        ),
        "{page:?}"
    );
    assert!(
        page.error.as_ref().unwrap().to_string().contains("line 1"),
        "{page:?}"
    );
    assert_eq!(
        text(&request(&server, "GET", "/templates/page.txt", &[], b"").await),
        "version 1",
        "the last good version stays in service"
    );
    let (_, listed) = get_json(&server.url("/admin/templates"), None).await;
    assert_eq!(listed["errors"], 1);

    write(root, "page.txt", "version {{ n | default(2) }}!");
    subsystems.reload_templates().await.unwrap();
    assert_eq!(
        text(&request(&server, "GET", "/templates/page.txt", &[], b"").await),
        "version 2!"
    );
    assert_eq!(info(&subsystems, "page.txt").state, LoadState::Ok);

    // A new template that never parsed: 500 naming it, not a crash.
    write(root, "new.txt", "{% if %}");
    write(root, "a.html", "{% extends \"b.html\" %}");
    write(root, "b.html", "{% extends \"a.html\" %}");
    write(
        root,
        "orphan.html",
        "{% extends \"nowhere.html\" %}{% block x %}{% endblock %}",
    );
    subsystems.reload_templates().await.unwrap();
    let broken = request(&server, "GET", "/templates/new.txt", &[], b"").await;
    assert_eq!(broken.status, 500);
    assert!(text(&broken).contains("new.txt"), "{}", text(&broken));
    let cycle = info(&subsystems, "a.html").error.unwrap().to_string();
    assert!(cycle.contains("a.html -> b.html -> a.html"), "{cycle}");
    let orphan = info(&subsystems, "orphan.html").error.unwrap().to_string();
    assert!(orphan.contains("nowhere.html"), "{orphan}");
    assert_eq!(
        request(&server, "GET", "/templates/a.html", &[], b"")
            .await
            .status,
        500
    );

    // Removed files disappear.
    std::fs::remove_file(root.join("new.txt")).unwrap();
    subsystems.reload_templates().await.unwrap();
    assert_eq!(
        request(&server, "GET", "/templates/new.txt", &[], b"")
            .await
            .status,
        404
    );
}

#[actix_rt::test]
async fn templates_reload_by_interval_picks_up_changes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.txt", "one");
    let (_subsystems, server) = start(dir.path(), &[("TEMPLATE_RELOAD_INTERVAL", "1")]).await;
    assert_eq!(
        text(&request(&server, "GET", "/templates/t.txt", &[], b"").await),
        "one"
    );
    write(dir.path(), "t.txt", "second");
    eventually("the changed template is served", || async {
        text(&request(&server, "GET", "/templates/t.txt", &[], b"").await) == "second"
    })
    .await;
}

#[actix_rt::test]
async fn templates_global_context_is_overlaid_by_the_request() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "_context.json",
        r#"{"greeting": "hello", "who": "world"}"#,
    );
    write(dir.path(), "hi.txt", "{{ greeting }}, {{ who }}");
    let (_subsystems, server) = start(dir.path(), &[]).await;
    assert_eq!(
        text(&request(&server, "GET", "/templates/hi.txt", &[], b"").await),
        "hello, world"
    );
    assert_eq!(
        text(&request(&server, "GET", "/templates/hi.txt?who=you", &[], b"").await),
        "hello, you"
    );
    let posted = request(
        &server,
        "POST",
        "/templates/hi.txt",
        &[],
        br#"{"greeting": 7}"#,
    )
    .await;
    assert_eq!(text(&posted), "7, world");
    assert_eq!(
        request(&server, "GET", "/templates/_context.json", &[], b"")
            .await
            .status,
        404,
        "the context file is not a template"
    );
}

#[actix_rt::test]
async fn templates_limits_stop_runaway_renders_without_stopping_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "forever.txt",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    );
    write(
        dir.path(),
        "huge.txt",
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    );
    write(dir.path(), "fails.txt", "{% include 'missing.txt' %}");
    write(dir.path(), "ok.txt", "fine");
    // minijinja 3.1 panics on this one; the render is contained.
    write(
        dir.path(),
        "panics.txt",
        "{% for i in [1, 2] %}{% with %}{% break %}{% endwith %}{% endfor %}",
    );
    let (subsystems, server) = start(
        dir.path(),
        &[
            ("LEANSERVE_TEMPLATES_RENDER_WORKERS", "1"),
            ("LEANSERVE_TEMPLATES_MAX_FUEL", "100000"),
            ("LEANSERVE_TEMPLATES_MAX_OUTPUT_BYTES", "65536"),
        ],
    )
    .await;
    for _ in 0..3 {
        let forever = request(&server, "GET", "/templates/forever.txt", &[], b"").await;
        assert_eq!(forever.status, 422);
        assert!(
            text(&forever).contains("instructions"),
            "{}",
            text(&forever)
        );
    }
    let huge = request(&server, "GET", "/templates/huge.txt", &[], b"").await;
    assert_eq!(huge.status, 422);
    assert!(
        text(&huge).contains("65536 bytes of output"),
        "{}",
        text(&huge)
    );
    let fails = request(&server, "GET", "/templates/fails.txt", &[], b"").await;
    assert_eq!(fails.status, 422);
    assert!(text(&fails).contains("fails.txt"), "{}", text(&fails));
    assert!(
        !text(&fails).contains("missing.txt"),
        "the engine's message stays in the log: {}",
        text(&fails)
    );
    let panics = request(&server, "GET", "/templates/panics.txt", &[], b"").await;
    assert_eq!(panics.status, 500);
    assert!(text(&panics).contains("panics.txt"), "{}", text(&panics));
    // The single worker is free again.
    assert_eq!(
        text(&request(&server, "GET", "/templates/ok.txt", &[], b"").await),
        "fine"
    );
    subsystems.collect_now().await.unwrap();
    let metrics = util::metrics_text(&server).await;
    for line in [
        "leanserve_template_renders_out_of_fuel_total 3",
        "leanserve_template_renders_too_large_total 1",
        "leanserve_template_render_failures_total 6",
        "leanserve_template_flatten_panics_total 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?}");
    }
}

/// A context over 16 KiB is parsed on the blocking pool, with the same answers as a small
/// one: rendered when it is a JSON object, 400 when it is not JSON.
#[actix_rt::test]
async fn templates_large_contexts_render_like_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.html", "{{ x | length }} {{ y }}");
    let (_subsystems, server) = start(dir.path(), &[]).await;
    let large = format!("{{\"x\": \"{}\", \"y\": \"end\"}}", "z".repeat(40_000));
    let response = request(&server, "POST", "/templates/t.html", &[], large.as_bytes()).await;
    assert_eq!(
        (response.status, text(&response)),
        (200, "40000 end".to_owned())
    );
    let broken = format!("{{\"x\": \"{}\"", "z".repeat(40_000));
    let response = request(&server, "POST", "/templates/t.html", &[], broken.as_bytes()).await;
    assert_eq!(response.status, 400, "{}", text(&response));
    assert!(
        text(&response).contains("not valid JSON"),
        "{}",
        text(&response)
    );
}

#[actix_rt::test]
async fn templates_bad_input_gets_a_4xx() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.html", "{{ x }}");
    write(dir.path(), ".secret.html", "hidden");
    let (_subsystems, server) = start(
        dir.path(),
        &[("LEANSERVE_TEMPLATES_MAX_CONTEXT_BYTES", "1024")],
    )
    .await;
    for (method, path, body, expected) in [
        ("GET", "/templates/../Cargo.toml", &b""[..], 400),
        ("GET", "/templates/%2e%2e/Cargo.toml", b"", 400),
        ("GET", "/templates/a%2fb", b"", 400),
        ("GET", "/templates/.secret.html", b"", 404),
        ("GET", "/templates/nope.html", b"", 404),
        ("GET", "/templates/", b"", 404),
        ("POST", "/templates/t.html", b"[1, 2]", 400),
        ("POST", "/templates/t.html", b"{not json", 400),
        ("POST", "/templates/t.html", b"\"text\"", 400),
        ("PUT", "/templates/t.html", b"", 405),
        ("DELETE", "/templates/t.html", b"", 405),
    ] {
        let response = request(&server, method, path, &[], body).await;
        assert_eq!(
            response.status,
            expected,
            "{method} {path}: {}",
            text(&response)
        );
        if expected != 405 && expected != 404 || path.contains("nope") {
            assert!(
                text(&response).contains("\"error\""),
                "{method} {path}: JSON reason: {}",
                text(&response)
            );
        }
    }
    let put = request(&server, "PUT", "/templates/t.html", &[], b"").await;
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
    let huge = format!("{{\"x\": \"{}\"}}", "y".repeat(4096));
    let response = request(&server, "POST", "/templates/t.html", &[], huge.as_bytes()).await;
    assert_eq!(response.status, 413, "{}", text(&response));
    // Absolute paths do not escape: the leading slashes collapse into the folder.
    let absolute = request(&server, "GET", "/templates//etc/passwd", &[], b"").await;
    assert_eq!(absolute.status, 404);
    // And the server still answers.
    let ok = request(
        &server,
        "POST",
        "/templates/t.html",
        &[],
        br#"{"x": "<ok>"}"#,
    )
    .await;
    assert_eq!((ok.status, text(&ok)), (200, "&lt;ok&gt;".to_owned()));
}

#[actix_rt::test]
async fn templates_off_mounts_nothing() {
    let (subsystems, server) = start(&examples(), &[("TEMPLATES_ENABLED", "false")]).await;
    assert!(subsystems.template_variables(1).is_none());
    assert_eq!(
        request(&server, "GET", "/templates/pages/index.html", &[], b"")
            .await
            .status,
        404
    );
    let (_, listed) = get_json(&server.url("/admin/templates"), None).await;
    assert_eq!(listed["enabled"], false);
    let render = subsystems.render_template("pages/index.html", Default::default(), false);
    assert_eq!(
        render.await.unwrap_err(),
        leanserve::RenderError::Off(leanserve::Off::Templates)
    );
    // What needs the store answers as every switched-off subsystem does.
    for path in ["/admin/templates/variables"] {
        let (status, off) = get_json(&server.url(path), None).await;
        assert_eq!(
            (status, off["subsystem"].as_str()),
            (409, Some("templates")),
            "{path}"
        );
    }
    for path in ["/admin/templates/optimize", "/admin/templates/reload"] {
        let (status, off) = util::post_json(&server.url(path)).await;
        assert_eq!(
            (status, off["switch"].as_str()),
            (409, Some("templates.enabled")),
            "{path}"
        );
    }
}

#[actix_rt::test]
async fn templates_flattened_pages_follow_changes_to_their_parents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "base.html", "[{% block body %}base{% endblock %}]");
    write(
        root,
        "page.html",
        "{% extends \"base.html\" %}{% block body %}page+{{ super() }}{% endblock %}",
    );
    write(root, "other.html", "{% extends \"base.html\" %}");
    let (subsystems, server) = start(root, &[("TEMPLATE_RELOAD_INTERVAL", "0")]).await;
    assert_eq!(
        text(&request(&server, "GET", "/templates/page.html", &[], b"").await),
        "[page+base]"
    );
    assert_eq!(info(&subsystems, "page.html").served_depth, 1);

    write(root, "base.html", "<{% block body %}BASE v2{% endblock %}>");
    let summary = subsystems.reload_templates().await.unwrap();
    assert_eq!(summary.changed, 1);
    assert_eq!(
        text(&request(&server, "GET", "/templates/page.html", &[], b"").await),
        "<page+BASE v2>",
        "the flattened page was rebuilt from the new parent"
    );
    assert_eq!(
        text(&request(&server, "GET", "/templates/other.html", &[], b"").await),
        "<BASE v2>"
    );
    assert_eq!(info(&subsystems, "page.html").served_depth, 1);
}

#[actix_rt::test]
async fn templates_chains_over_64_are_load_errors_and_others_still_serve() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c0.html", "root");
    for level in 1..=70 {
        write(
            dir.path(),
            &format!("c{level}.html"),
            &format!("{{% extends \"c{}.html\" %}}", level - 1),
        );
    }
    let (subsystems, server) = start(dir.path(), &[]).await;
    let deep = info(&subsystems, "c70.html");
    assert_eq!(deep.state, LoadState::Error);
    assert!(
        matches!(
            &deep.error,
            Some(TemplateError::Chain(chain)) if matches!(**chain, ChainError::TooDeep { .. })
        ),
        "{deep:?}"
    );
    assert!(
        deep.error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("longer than 64 templates"),
        "{deep:?}"
    );
    let response = request(&server, "GET", "/templates/c70.html", &[], b"").await;
    assert_eq!(response.status, 500);
    assert!(text(&response).contains("c70.html"), "{}", text(&response));
    // 64 templates is the limit, and allowed: flattened into one.
    let longest = info(&subsystems, "c63.html");
    assert_eq!((longest.state, longest.served_depth), (LoadState::Ok, 1));
    assert_eq!(
        text(&request(&server, "GET", "/templates/c63.html", &[], b"").await),
        "root"
    );
}

#[actix_rt::test]
async fn templates_context_optimizer_loads_data_lazily_and_counts_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "_context.json",
        r#"{"site": "lean", "unused": "never read"}"#,
    );
    write(
        root,
        "data/users.json",
        r#"[{"name": "ada"}, {"name": "bob"}]"#,
    );
    write(root, "plain.txt", "{{ site }}");
    write(
        root,
        "users.txt",
        "{{ site }}:{% for u in users %}{{ u.name }}{% endfor %}/{{ users | length }}",
    );
    write(root, "stats.txt", "{{ cache_stats.items >= 0 }}");
    let (subsystems, server) = start(root, &[]).await;
    let lazy_loads = || {
        subsystems
            .template_variables(5)
            .unwrap()
            .lazy
            .into_iter()
            .find(|l| l.name == "users")
            .map(|l| l.loads)
    };
    assert_eq!(lazy_loads(), Some(0), "nothing rendered yet");
    for _ in 0..3 {
        assert_eq!(
            text(&request(&server, "GET", "/templates/plain.txt", &[], b"").await),
            "lean"
        );
    }
    assert_eq!(
        lazy_loads(),
        Some(0),
        "templates that never read `users` never load it"
    );
    assert_eq!(
        text(&request(&server, "GET", "/templates/users.txt", &[], b"").await),
        "lean:adabob/2"
    );
    assert_eq!(
        lazy_loads(),
        Some(1),
        "read twice in one render, loaded once"
    );
    assert_eq!(
        text(&request(&server, "GET", "/templates/stats.txt", &[], b"").await),
        "True"
    );

    let (status, report) = get_json(&server.url("/admin/templates/variables?top=3"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["templates"]["users.txt"],
        serde_json::json!(["site", "users"])
    );
    assert_eq!(
        report["templates"]["plain.txt"],
        serde_json::json!(["site"])
    );
    assert_eq!(report["usage"]["high_usage"][0][0], "site", "{report}");
    assert!(
        report["usage"]["low_usage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v[0] == "unused" && v[1] == 0),
        "{report}"
    );
    let shared: Vec<&str> = report["shared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(shared, ["site"], "read by two templates or more");

    // A changed data file is loaded afresh.
    write(root, "data/users.json", r#"[{"name": "cy"}]"#);
    subsystems.reload_templates().await.unwrap();
    assert_eq!(
        text(&request(&server, "GET", "/templates/users.txt", &[], b"").await),
        "lean:cy/1"
    );
}

#[actix_rt::test]
async fn templates_optimize_reruns_the_optimizers_and_reports() {
    let (subsystems, server) = start(&examples(), &[]).await;
    let before = text(&request(&server, "GET", "/templates/pages/about.html", &[], b"").await);
    let report = subsystems.optimize_templates().await.unwrap().unwrap();
    assert_eq!(report.templates, subsystems.template_list().len());
    assert_eq!(report.flattened, 4, "section.html and the three pages");
    // This test binary runs on the system allocator: heap figures are unavailable, said so.
    assert_eq!(report.bytes_saved, None);
    assert!(report.unavailable.unwrap().contains("jemalloc"));
    assert_eq!(
        text(&request(&server, "GET", "/templates/pages/about.html", &[], b"").await),
        before,
        "the same output after re-optimizing"
    );
    let (_, listed) = get_json(&server.url("/admin/templates"), None).await;
    assert_eq!(listed["last_optimize"]["flattened"], 4);
    assert!(
        listed["memory"]["templates"].as_u64().unwrap() >= 7,
        "{listed}"
    );
}
