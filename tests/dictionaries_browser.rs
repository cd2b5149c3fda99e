//! Compression Dictionary Transport (RFC 9842) in a real browser. Headless Chromium,
//! driven over WebDriver (`util/webdriver.rs`), opens a page of a site served by
//! leanserve over a real socket. The page advertises the site dictionary (`Link: ...;
//! rel="compression-dictionary"`); Chromium fetches it when idle and keeps it. The next
//! page it opens must then arrive as `dcz`, compressed against that dictionary: counted
//! as a dcz response by leanserve (and, with dcb the only dictionary coding on, as dcb), with fewer bytes on the wire than the br page before
//! it, and showing exactly the text of the file on disk.

mod util;
#[path = "util/webdriver.rs"]
mod webdriver;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use util::start;
use webdriver::Browser;

/// How long the test waits for the browser to fetch the dictionary.
const PATIENCE: Duration = Duration::from_secs(20);

/// A page of a documentation site: most of its markup is shared with every other page.
fn page(i: usize) -> String {
    let nav: String = (0..40)
        .map(|j| format!("<li><a href=\"/p{j}.html\" class=\"nav-item\">Chapter {j}: notes on the subject</a></li>\n"))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chapter {i}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\n\
         <body><header class=\"top\"><p class=\"brand\">The handbook</p></header>\n\
         <nav class=\"sidebar\"><ul>\n{nav}</ul></nav>\n\
         <main><h1 id=\"title\">Chapter {i}</h1><p>{}</p></main>\n\
         <footer><p>Every chapter ends with this footer, its licence and its links.</p></footer></body></html>\n",
        format!("Paragraph {i} of the chapter, with words of its own. ").repeat(i % 6 + 2)
    )
}

/// The page's navigation entry: its coding and sizes, and the text it shows.
const READ_PAGE: &str = r#"
const e = performance.getEntriesByType('navigation')[0];
const expected = new DOMParser().parseFromString(arguments[0], 'text/html');
return {
  encodedBodySize: e ? e.encodedBodySize : 0,
  decodedBodySize: e ? e.decodedBodySize : 0,
  contentEncoding: e && typeof e.contentEncoding === 'string' ? e.contentEncoding : null,
  title: document.getElementById('title') ? document.getElementById('title').textContent : '',
  sameText: document.body.textContent === expected.body.textContent,
};
"#;

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the exposition"))
}

#[actix_rt::test]
async fn dictionaries_a_browser_fetches_the_site_dictionary_and_gets_dcz_pages() {
    dictionary_pages("dcz").await;
}

/// dcb alone: the brotli crate's custom dictionary makes streams Chromium's shared
/// brotli decoder reads.
#[actix_rt::test]
async fn dictionaries_a_browser_decodes_dcb_pages() {
    dictionary_pages("dcb").await;
}

/// Visits a page, waits for the browser to fetch the dictionary it advertises, and
/// visits pages until one arrives in `coding` (the only dictionary coding on).
async fn dictionary_pages(coding: &str) {
    let browser = Browser::start().await;
    let site = tempfile::tempdir().unwrap();
    for i in 0..40 {
        std::fs::write(site.path().join(format!("p{i}.html")), page(i)).unwrap();
    }
    let (subsystems, server) = start(
        Path::new(site.path()),
        &[("STATIC_FILE_DICTIONARIES", coding)],
    )
    .serve()
    .await;
    let deadline = Instant::now() + PATIENCE;
    while subsystems
        .cache_stats()
        .await
        .unwrap()
        .dictionaries
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no site dictionary trained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    browser.goto(&server.url("/p1.html")).await;
    let first = browser.execute(READ_PAGE, json!([page(1)])).await;
    println!("first page: {first}");
    assert_eq!(first["title"], "Chapter 1");
    assert_eq!(first["sameText"], true);
    // The browser fetches the advertised dictionary once the page is idle.
    while subsystems.cache_stats().await.unwrap().dictionary_downloads == 0 {
        assert!(
            Instant::now() < deadline,
            "Chromium did not fetch the dictionary within {PATIENCE:?}\nbrowser log:\n{}",
            browser.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stored by the browser a moment after it arrived: navigate until a page comes as dcz.
    let mut second = json!(null);
    for i in 2..30 {
        browser.goto(&server.url(&format!("/p{i}.html"))).await;
        subsystems.collect_now().await.unwrap();
        let text = util::metrics_text(&server).await;
        let series = format!("leanserve_static_responses_total{{encoding=\"{coding}\"}}");
        if sample(&text, &series) >= 1.0 {
            second = browser.execute(READ_PAGE, json!([page(i)])).await;
            second["page"] = json!(i);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no page came as {coding} within {PATIENCE:?}\nbrowser log:\n{}",
            browser.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{coding} page: {second}");
    let i = second["page"]
        .as_u64()
        .expect("a page came compressed against the dictionary") as usize;
    assert_eq!(second["title"], format!("Chapter {i}"));
    assert_eq!(
        second["sameText"], true,
        "the {coding} page shows the file's text"
    );
    assert_eq!(second["decodedBodySize"], page(i).len());
    if let Some(seen) = second["contentEncoding"].as_str() {
        assert_eq!(seen, coding);
    }
    let (against, br) = (
        second["encodedBodySize"].as_u64().unwrap(),
        first["encodedBodySize"].as_u64().unwrap(),
    );
    assert!(
        against > 0 && against * 3 < br,
        "{coding} {against} bytes vs br {br} bytes on the wire"
    );
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().all(|e| e.contains("favicon.ico")),
        "console errors other than the missing favicon: {errors:#?}"
    );
}
