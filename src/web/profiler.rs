//! The memory profiler over HTTP, behind admin auth:
//!
//! - `GET /admin/profiler/stats`: current figures in MB ([`MemoryStats`](crate::actors::profiler::MemoryStats))
//! - `GET /admin/profiler/snapshots`: the kept snapshots, oldest first
//! - `POST /admin/profiler/snapshots?label=L`: take one now
//! - `GET /admin/profiler/compare?a=..&b=..`: per-figure deltas (index, label or `latest`)
//! - `POST /admin/profiler/capture?label=L`: write a heap profile into the profiles folder
//! - `GET /debug/pprof/heap`: a heap profile in the body, where Go's pprof looks for it
//!   (`go tool pprof http://host/debug/pprof/heap`)

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::error::WebError;
use crate::runtime::Subsystems;

/// Routes under `/admin/profiler` (mounted inside the admin scope).
pub(crate) fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(stats))
        .route("/snapshots", web::get().to(snapshots))
        .route("/snapshots", web::post().to(take_snapshot))
        .route("/compare", web::get().to(compare))
        .route("/capture", web::post().to(capture));
}

/// `GET /debug/pprof/heap` (wrapped in admin auth by the caller).
pub(crate) async fn pprof_heap(
    subsystems: web::Data<Subsystems>,
) -> Result<HttpResponse, WebError> {
    let profile = subsystems.heap_profile().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"heap.pb.gz\"",
        ))
        .body(profile))
}

#[derive(Deserialize)]
struct LabelQuery {
    label: Option<String>,
}

#[derive(Deserialize)]
struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

async fn stats(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let stats = subsystems
        .memory_stats()
        .await
        .map_err(WebError::Unavailable)?;
    Ok(super::admin::no_store().json(stats))
}

async fn snapshots(subsystems: web::Data<Subsystems>) -> HttpResponse {
    super::admin::no_store().json(serde_json::json!({ "snapshots": subsystems.snapshots() }))
}

async fn take_snapshot(
    subsystems: web::Data<Subsystems>,
    query: web::Query<LabelQuery>,
) -> Result<HttpResponse, WebError> {
    let snapshot = subsystems.take_snapshot(query.into_inner().label).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(snapshot))
}

async fn compare(
    subsystems: web::Data<Subsystems>,
    query: web::Query<CompareQuery>,
) -> Result<HttpResponse, WebError> {
    let CompareQuery { a, b } = query.into_inner();
    let (Some(a), Some(b)) = (a, b) else {
        return Err(WebError::BadRequest(
            "name two snapshots: ?a=<index|label|latest>&b=<index|label|latest>".into(),
        ));
    };
    let comparison = subsystems.compare_snapshots(a, b).await?;
    Ok(super::admin::no_store().json(comparison))
}

async fn capture(
    subsystems: web::Data<Subsystems>,
    query: web::Query<LabelQuery>,
) -> Result<HttpResponse, WebError> {
    let captured = subsystems
        .capture_heap_profile(query.into_inner().label)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(captured))
}
