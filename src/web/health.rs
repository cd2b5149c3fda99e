//! Liveness and readiness, for load balancers and orchestrators.

use actix_web::http::header;
use actix_web::middleware::{Condition, from_fn};
use actix_web::{HttpResponse, web};

use super::monitoring::measure;
use crate::runtime::Subsystems;

/// `measured`: count these requests in the per-request figures.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, measured: bool) {
    cfg.service(
        web::resource("/health")
            .wrap(Condition::new(measured, from_fn(measure)))
            .route(web::get().to(health)),
    )
    .service(
        web::resource("/ready")
            .wrap(Condition::new(measured, from_fn(measure)))
            .route(web::get().to(ready)),
    );
}

/// `GET /health`: 200 while the process serves HTTP at all.
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when every permanent child runs; 503 naming the ones that do not.
async fn ready(subsystems: web::Data<Subsystems>) -> HttpResponse {
    let readiness = subsystems.readiness();
    let mut response = if readiness.ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(readiness)
}
