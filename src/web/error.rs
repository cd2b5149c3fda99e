//! The one place where failures become HTTP statuses. Internal causes are logged here and
//! never echoed to clients.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};

use crate::supervisor::CallError;

/// A request that cannot be answered normally.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// An admin route without valid credentials while a token is configured: 401, with
    /// `WWW-Authenticate: Bearer`.
    #[error("unauthorized")]
    Unauthorized,
    /// An admin route from a non-loopback peer while no token is configured: 403.
    #[error("forbidden")]
    Forbidden,
    /// A named thing (such as a child in the chaos route) does not exist: 404.
    #[error("not found")]
    NotFound,
    /// A subsystem did not answer: it is restarting beyond the call timeout, or gone: 503.
    #[error("service unavailable")]
    Unavailable(#[source] CallError),
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let WebError::Unavailable(cause) = self {
            log::warn!("request failed: {cause}");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let WebError::Unauthorized = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}
