//! The largest request head answered: [`limit_head`], a middleware answering 431 past
//! `server.max_header_bytes`. (The other `server.*` limits, client timeouts, keep-alive
//! and connections per worker, are `HttpServer` settings: the binary sets them on both of
//! its listeners, an embedding host on its own server.)

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};

/// The size of a request's head as sent: request line and header lines with their
/// line ends.
fn head_bytes(request: &ServiceRequest) -> usize {
    let line =
        request.method().as_str().len() + request.uri().to_string().len() + " HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Answers 431 to a request whose head is larger than `max_bytes`, without running the
/// route. Wrap an `App` with it: `App::new().wrap(from_fn(move |req, next|
/// limit_head(max, req, next)))`.
pub async fn limit_head<B: MessageBody + 'static>(
    max_bytes: usize,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let size = head_bytes(&request);
    if size > max_bytes {
        let response = HttpResponse::build(actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .insert_header((actix_web::http::header::CONNECTION, "close"))
            .body(format!(
                "request head of {size} bytes is over the {max_bytes}-byte limit (server.max_header_bytes)\n"
            ));
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}
