//! The one place where failures become HTTP statuses. Internal causes are logged here and
//! never echoed to clients.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};

use crate::actors::file_cache::LoadError;
use crate::actors::profiler::ProfilerError;
use crate::alloc::ProfileError;
use crate::concurrency::Overloaded;
use crate::http::path::PathError;
use crate::off::Off;
use crate::pool::{AcquireError, PoolError};
use crate::supervisor::CallError;
use crate::templates::RenderError;

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
    /// A request path that cannot name a file: 400, or 414 when too long; a hidden file
    /// is 404 (indistinguishable from a missing one).
    #[error("{}", match .0 { PathError::Malformed => "bad request path", PathError::TooLong => "request path too long", PathError::Hidden => "not found" })]
    BadPath(PathError),
    /// A method other than GET or HEAD on a static file: 405 with `Allow: GET, HEAD`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Accept-Encoding refuses every representation we have: 406.
    #[error("not acceptable")]
    NotAcceptable,
    /// If-Match or If-Unmodified-Since failed: 412.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The single range asked for lies outside the representation: 416 with
    /// `Content-Range: bytes */<len>`.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    /// The file exists but the server may not read it: 403.
    #[error("forbidden")]
    FileForbidden,
    /// Reading a file failed on the server's side: 500 (the cause is logged).
    #[error("internal server error")]
    Load(#[source] LoadError),
    /// A method the route does not take: 405 with `Allow` listing those it does.
    #[error("method not allowed")]
    MethodNotAllowedFor(&'static str),
    /// A request body over the route's limit: 413.
    #[error("the request body is over the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    /// A template render failed: 404 for an unknown template, 400 for a context that is
    /// not a JSON object, 422 when the render failed with this context or ran out of fuel
    /// or output, 500 when the template failed to load, 503 when templates are off. The
    /// body names the template and the limit; the engine's own message (which quotes the
    /// template's source) is logged, not sent.
    #[error("{}", public_render_message(.0))]
    Render(RenderError),
    /// A malformed admin request (missing or contradictory parameters): 400.
    #[error("{0}")]
    BadRequest(String),
    /// A pooled resource (an inflater, a compressor) did not come free within its pool's
    /// acquire timeout: the server is overloaded, not the request wrong: 503 with
    /// `Retry-After: 1`.
    #[error("the server is busy; retry shortly")]
    Busy(#[source] AcquireError),
    /// The server is at its in-flight limit and the request's wait in the queue ran out
    /// (or the queue is full): 503 with `Retry-After: 1`, answered at once.
    #[error("the server is at capacity; retry shortly")]
    Overloaded(#[source] Overloaded),
    /// A request that needs a subsystem switched off in the configuration: 409, with
    /// the subsystem and the key that switches it on. Switched-off subsystems inside
    /// other failures (a pool request, a heap profile) answer the same.
    #[error(transparent)]
    Off(#[from] Off),
    /// A pool request failed: 404 for an unknown pool or when the pool manager is off,
    /// 400 for a bad name or limits, 409 for a name taken or a pool of leanserve's own
    /// that cannot be removed, 503 when the pool manager does not answer. The reason is in the body
    /// (admin routes only).
    #[error("{0}")]
    Pool(#[from] PoolError),
    /// A profiler request failed: 400 for a bad label, 404 for an unknown snapshot, 409
    /// when profiling is off or unavailable, a capture runs, or the profiles folder is
    /// unusable, 500 when writing the profile failed. The reason is in the body (admin
    /// routes only).
    #[error("{0}")]
    Profiler(#[from] ProfilerError),
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::BadPath(PathError::Malformed) => StatusCode::BAD_REQUEST,
            WebError::BadPath(PathError::TooLong) => StatusCode::URI_TOO_LONG,
            WebError::BadPath(PathError::Hidden) => StatusCode::NOT_FOUND,
            WebError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            WebError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            WebError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            WebError::FileForbidden => StatusCode::FORBIDDEN,
            WebError::Load(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::MethodNotAllowedFor(_) => StatusCode::METHOD_NOT_ALLOWED,
            WebError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Busy(_) | WebError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Off(_) => StatusCode::CONFLICT,
            WebError::Pool(error) => match error {
                PoolError::Off(_) => StatusCode::CONFLICT,
                PoolError::NotFound { .. } => StatusCode::NOT_FOUND,
                PoolError::InvalidName { .. }
                | PoolError::Invalid { .. }
                | PoolError::WrongType { .. } => StatusCode::BAD_REQUEST,
                PoolError::Exists { .. } | PoolError::Protected { .. } => StatusCode::CONFLICT,
                PoolError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            WebError::Render(error) => match error {
                RenderError::NotFound(_) => StatusCode::NOT_FOUND,
                RenderError::BadContext(_) => StatusCode::BAD_REQUEST,
                RenderError::OutOfFuel { .. }
                | RenderError::TooLarge { .. }
                | RenderError::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                RenderError::Broken { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                RenderError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                RenderError::Off(_) => StatusCode::CONFLICT,
            },
            WebError::Profiler(error) => match error {
                ProfilerError::InvalidLabel(_) => StatusCode::BAD_REQUEST,
                ProfilerError::UnknownSnapshot(_) => StatusCode::NOT_FOUND,
                ProfilerError::Busy
                | ProfilerError::ProfilesDir { .. }
                | ProfilerError::Profile(ProfileError::Off(_) | ProfileError::Unavailable(_)) => {
                    StatusCode::CONFLICT
                }
                ProfilerError::Profile(ProfileError::Dump(_)) | ProfilerError::Write { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                ProfilerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            WebError::Unavailable(cause) => log::warn!("request failed: {cause}"),
            WebError::Load(cause) => log::error!("request failed: {cause}"),
            WebError::Busy(cause) => log::warn!("request refused: {cause}"),
            WebError::Profiler(cause) => log::warn!("profiler request failed: {cause}"),
            WebError::Render(
                cause @ (RenderError::Broken { .. }
                | RenderError::Failed { .. }
                | RenderError::Unavailable(_)
                | RenderError::OutOfFuel { .. }
                | RenderError::TooLarge { .. }),
            ) => log::warn!("{cause}"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            WebError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            WebError::MethodNotAllowed => {
                response.insert_header((header::ALLOW, "GET, HEAD"));
            }
            WebError::MethodNotAllowedFor(allowed) => {
                response.insert_header((header::ALLOW, *allowed));
            }
            WebError::Busy(_) | WebError::Overloaded(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            WebError::RangeNotSatisfiable { len } => {
                response.insert_header((
                    header::CONTENT_RANGE,
                    crate::http::range::unsatisfied_range(*len),
                ));
            }
            _ => {}
        }
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self.off() {
            Some(off) => response.json(serde_json::json!({
                "error": off.to_string(),
                "subsystem": off.subsystem(),
                "switch": off.switch(),
            })),
            None => response.json(serde_json::json!({ "error": self.to_string() })),
        }
    }
}

impl WebError {
    /// The switched-off subsystem behind this failure, wherever it is wrapped.
    fn off(&self) -> Option<Off> {
        match self {
            WebError::Off(off)
            | WebError::Pool(PoolError::Off(off))
            | WebError::Render(RenderError::Off(off))
            | WebError::Profiler(ProfilerError::Profile(ProfileError::Off(off))) => Some(*off),
            _ => None,
        }
    }
}

/// What a client is told about a failed render: the template's name and which limit or
/// kind of failure, never the engine's message.
fn public_render_message(error: &RenderError) -> String {
    match error {
        RenderError::Failed { name, .. } => {
            format!("rendering {name:?} failed with this context (the cause is in the server log)")
        }
        RenderError::Broken { name, .. } => {
            format!("template {name:?} is not available: it failed to load (see /admin/templates)")
        }
        other => other.to_string(),
    }
}
