//! Liveness and readiness, for load balancers and orchestrators.

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};

use super::public::Endpoint;
use crate::runtime::Subsystems;

/// `GET /health` and `GET /ready`; `measured`: count these requests in the per-request
/// figures.
pub(crate) fn endpoints(measured: bool) -> [Endpoint; 2] {
    [
        Endpoint::new("/health", measured).method(Method::GET, health),
        Endpoint::new("/ready", measured).method(Method::GET, ready),
    ]
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
