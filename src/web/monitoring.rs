//! Monitoring over HTTP: the per-request middleware, `GET /metrics` (Prometheus text),
//! `GET /monitoring` (JSON), `GET /monitoring/history`, `GET /monitoring/alerts`, and the
//! live dashboard at `GET /dashboard` (its assets are compiled in, so it works whatever
//! `static_files.root_dir` serves, and loads nothing from elsewhere). Every route reads
//! what the monitor published: no message per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::error::WebError;
use crate::actors::monitor::{MonitorReader, Sample};
use crate::http::conditional::{self, Precondition, Validators};
use crate::metrics::exposition;
use crate::off::Off;
use crate::runtime::Subsystems;

const DASHBOARD_HTML: &str = include_str!("../../static/dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../../static/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../static/dashboard/dashboard.css");

/// The admin surface's monitoring routes: the data behind admin access, the dashboard's
/// page and assets (which hold no data; its script sends the token from the page's
/// `#token=` fragment) open.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    let guarded = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .wrap(from_fn(super::admin::require_admin))
            .route(route)
    };
    cfg.service(guarded("/metrics", web::get().to(metrics)))
        .service(guarded("/monitoring", web::get().to(current)))
        .service(guarded("/monitoring/history", web::get().to(history)))
        .service(guarded("/monitoring/alerts", web::get().to(alerts)))
        .route(
            "/dashboard",
            web::get().to(|request| asset(request, DASHBOARD_HTML, "text/html; charset=utf-8")),
        )
        .route("/dashboard/", web::get().to(dashboard_slash))
        .route(
            "/dashboard/dashboard.js",
            web::get().to(|request| asset(request, DASHBOARD_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/dashboard/dashboard.css",
            web::get().to(|request| asset(request, DASHBOARD_CSS, "text/css; charset=utf-8")),
        );
}

/// The admin surface's monitoring paths while monitoring is off: 409 naming
/// `monitoring.enabled` (behind admin access, as when it is on), for every method.
pub(crate) fn configure_off(cfg: &mut web::ServiceConfig) {
    let paths = [
        "/metrics",
        "/monitoring",
        "/monitoring/{tail:.*}",
        "/dashboard",
        "/dashboard/{tail:.*}",
    ];
    cfg.service(
        web::resource(paths)
            .wrap(from_fn(super::admin::require_admin))
            .to(|| async { Err::<HttpResponse, _>(WebError::Off(Off::Monitoring)) }),
    );
}

/// `GET /metrics` open on the serving surface (`monitoring.public_metrics`); not
/// measured, as on the admin surface.
pub(crate) fn public_metrics() -> super::public::Endpoint {
    super::public::Endpoint::new("/metrics", false).method(actix_web::http::Method::GET, metrics)
}

/// Counts every request leanserve answers, by status class, with its duration. The
/// counters are reached through the response's request (no `Arc` clone per request).
/// actix turns handler and extractor errors into responses before they get here, so an
/// `Err` (which would carry no request) does not occur in practice and is not counted.
pub(crate) async fn measure(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    super::settle_connection(request.request());
    let response = next.call(request).await?;
    if let Some(subsystems) = response.request().app_data::<web::Data<Subsystems>>() {
        subsystems
            .requests()
            .record(response.status().as_u16(), started.elapsed());
    }
    Ok(response)
}

fn reader(subsystems: &Subsystems) -> &MonitorReader {
    subsystems
        .monitoring()
        .expect("monitoring routes are mounted only when the monitor runs")
}

/// `GET /metrics`: the latest collection in Prometheus text format.
async fn metrics(subsystems: web::Data<Subsystems>) -> HttpResponse {
    let body = reader(&subsystems)
        .latest()
        .map(|sample| exposition::render(&sample.families))
        .unwrap_or_default();
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, exposition::CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn sample_json(sample: &Sample) -> serde_json::Value {
    json!({ "timestamp_ms": sample.timestamp_ms, "metrics": sample.metrics, "children": sample.children })
}

/// `GET /monitoring`: the latest figures, children and alerts as JSON.
async fn current(subsystems: web::Data<Subsystems>) -> HttpResponse {
    let reader = reader(&subsystems);
    let mut body = reader.latest().map_or_else(
        || json!({ "timestamp_ms": 0, "metrics": {}, "children": [] }),
        |s| sample_json(&s),
    );
    body["interval_seconds"] = json!(reader.interval().as_secs_f64());
    body["alerts"] = json!(reader.alerts());
    no_store(body)
}

/// `?since=<ms>` on the history: only samples newer than that.
#[derive(serde::Deserialize)]
struct Since {
    since: Option<u64>,
}

/// `GET /monitoring/history[?since=<ms>]`: the kept samples (newer than `since`), oldest
/// first. Up to `monitoring.history_size` samples of every figure: the body is built on
/// the blocking pool, not on the worker other admin requests wait for.
async fn history(
    subsystems: web::Data<Subsystems>,
    query: web::Query<Since>,
) -> actix_web::Result<HttpResponse> {
    let reader = reader(&subsystems).clone();
    let since = query.since.unwrap_or(0);
    let body = web::block(move || history_json(&reader, since).to_string()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(header::ContentType::json())
        .body(body))
}

fn history_json(reader: &MonitorReader, since: u64) -> serde_json::Value {
    let samples: Vec<serde_json::Value> = reader
        .history()
        .iter()
        .filter(|sample| sample.timestamp_ms > since)
        .map(|sample| {
            let restarts: serde_json::Map<String, serde_json::Value> = sample
                .children
                .iter()
                .map(|child| (child.name.clone(), json!(child.restarts)))
                .collect();
            json!({ "timestamp_ms": sample.timestamp_ms, "metrics": sample.metrics, "restarts": restarts })
        })
        .collect();
    json!({ "interval_seconds": reader.interval().as_secs_f64(), "samples": samples })
}

/// `GET /monitoring/alerts`: every rule with its state.
async fn alerts(subsystems: web::Data<Subsystems>) -> HttpResponse {
    no_store(json!({ "alerts": reader(&subsystems).alerts() }))
}

fn no_store(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `/dashboard/` redirects to `/dashboard`, where the page's relative URLs resolve.
async fn dashboard_slash() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "../dashboard"))
        .finish()
}

/// A dashboard file, with a strong validator (a hash of its bytes) so a browser's
/// revalidation (`no-cache`) gets a 304 instead of the file again.
async fn asset(
    request: HttpRequest,
    body: &'static str,
    content_type: &'static str,
) -> HttpResponse {
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
    let conditions = super::etag_conditions(request.headers());
    let validators = Validators {
        etag: &etag,
        last_modified: None,
    };
    let precondition = conditional::evaluate(&conditions, &validators, true);
    let mut builder = match precondition {
        Precondition::Proceed => HttpResponse::Ok(),
        Precondition::NotModified => HttpResponse::NotModified(),
        Precondition::Failed => HttpResponse::PreconditionFailed(),
    };
    builder
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    match precondition {
        Precondition::Proceed => builder
            .insert_header((header::CONTENT_TYPE, content_type))
            .body(body),
        _ => builder.finish(),
    }
}
