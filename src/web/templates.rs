//! Rendering templates over HTTP:
//!
//! - `GET`/`HEAD /templates/{name}`: renders with the query parameters as context (a
//!   parameter given twice: the last one wins);
//! - `POST /templates/{name}`: renders with a JSON object body as context (at most
//!   `templates.max_context_bytes`; an empty body is an empty context).
//!
//! Either way the request's context overlays the global one. The response carries a
//! Content-Type from the template's extension, a strong ETag of the rendered bytes
//! (`If-None-Match` on GET and HEAD answers 304), and is gzip-compressed for clients that
//! take it, negotiated as for static files (`http::encoding`). Template names are checked
//! like static paths (`http::path`): no `..`, no hidden segments.
//!
//! `GET /admin/templates` and `POST /admin/templates/reload` live in `admin.rs`.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use super::error::WebError;
use super::public::Endpoint;
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::encoding::{Coding, negotiate};
use crate::http::path;
use crate::runtime::Subsystems;
use crate::templates::RenderError;

/// `/templates/{name}`; `measured`: count these requests in the per-request figures.
pub(crate) fn endpoint(measured: bool) -> Endpoint {
    Endpoint::new("/templates/{name:.*}", measured)
        .method(Method::GET, render)
        .method(Method::HEAD, render)
        .method(Method::POST, render)
        .otherwise(web::to(|| async {
            Err::<HttpResponse, _>(WebError::MethodNotAllowedFor("GET, HEAD, POST"))
        }))
}

/// Renders under the renders' in-flight limit (its own, so a render storm cannot take
/// the slots of static files).
async fn render(
    request: HttpRequest,
    subsystems: web::Data<Subsystems>,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let limiter = subsystems.limiters().map(|limiters| &limiters.renders);
    let permit = super::limit::admit(limiter).await?;
    let result = render_limited(request, subsystems, payload).await;
    super::limit::hold_until_sent(result, permit)
}

async fn render_limited(
    request: HttpRequest,
    subsystems: web::Data<Subsystems>,
    mut payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let Some(templates) = subsystems.templates() else {
        return Err(WebError::NotFound);
    };
    let raw_name = request.match_info().get("name").unwrap_or("");
    let name = path::parse_relative(raw_name, false)
        .map_err(WebError::BadPath)?
        .key;
    if name.is_empty() {
        return Err(WebError::NotFound);
    }
    let context = if request.method() == Method::POST {
        let limit = templates.opts().max_context_bytes;
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| WebError::BadRequest(error.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(WebError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        if body.len() <= PARSE_INLINE {
            json_context(&body)?
        } else {
            // Up to `max_context_bytes` of JSON: parsed on the blocking pool, not on the
            // worker other requests wait for.
            let body = body.freeze();
            web::block(move || json_context(&body))
                .await
                .map_err(|_| {
                    WebError::Render(RenderError::Unavailable("the blocking pool is gone".into()))
                })??
        }
    } else {
        query_context(request.query_string())?
    };
    let accept = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok());
    // Compression is decided after the render (small outputs stay identity), so ask for
    // a gzip copy whenever the client would take one.
    let wants_gzip = negotiate(accept, true) == Some(Coding::Gzip);
    let rendered = subsystems
        .render_template(&name, context, wants_gzip)
        .await
        .map_err(WebError::Render)?;
    let coding = negotiate(accept, rendered.gzip.is_some()).ok_or(WebError::NotAcceptable)?;
    let (body, etag) = match (&rendered.gzip, &rendered.gzip_etag, coding) {
        (Some(gzip), Some(etag), Coding::Gzip) => (gzip.clone(), etag.as_str()),
        _ => (rendered.body.clone(), rendered.etag.as_str()),
    };
    let get_or_head = request.method() != Method::POST;
    if get_or_head {
        let conditions = super::etag_conditions(request.headers());
        let validators = Validators {
            etag,
            last_modified: None,
        };
        match conditional::evaluate(&conditions, &validators, true) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                return Ok(HttpResponse::build(StatusCode::NOT_MODIFIED)
                    .insert_header((header::ETAG, etag))
                    .insert_header((header::VARY, "Accept-Encoding"))
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .finish());
            }
            Precondition::Failed => return Err(WebError::PreconditionFailed),
        }
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header((
            header::CONTENT_TYPE,
            crate::http::media::content_type(&name),
        ))
        .insert_header((header::ETAG, etag))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if coding == Coding::Gzip && rendered.gzip.is_some() {
        response.insert_header((header::CONTENT_ENCODING, "gzip"));
    }
    // For HEAD, actix-http sends these headers (Content-Length included) without the body.
    Ok(response.body(body))
}

/// The query string as a context of strings.
fn query_context(query: &str) -> Result<serde_json::Map<String, serde_json::Value>, WebError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|error| WebError::BadRequest(format!("malformed query string: {error}")))?;
    Ok(pairs
        .into_inner()
        .into_iter()
        .map(|(key, value)| (key, serde_json::Value::String(value)))
        .collect())
}

/// A JSON body as a context: it must be an object (empty: no variables).
/// Largest JSON context parsed on the request's worker (a few microseconds); larger ones
/// are parsed on the blocking pool.
const PARSE_INLINE: usize = 16 * 1024;

fn json_context(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, WebError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(WebError::Render(RenderError::BadContext(
            "the context must be a JSON object".into(),
        ))),
        Err(error) => Err(WebError::Render(RenderError::BadContext(format!(
            "the context is not valid JSON: {error}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_contexts_come_from_queries_and_json_objects() {
        let query = query_context("a=1&b=x%20y&a=2").unwrap();
        assert_eq!(query["a"], "2", "the last of a repeated parameter wins");
        assert_eq!(query["b"], "x y");
        assert!(query_context("").unwrap().is_empty());
        assert_eq!(json_context(b"{\"n\": [1, 2]}").unwrap()["n"][1], 2);
        assert!(json_context(b"  \n").unwrap().is_empty());
        for bad in [&b"[1]"[..], b"\"text\"", b"{oops", b"null"] {
            assert!(
                matches!(
                    json_context(bad),
                    Err(WebError::Render(RenderError::BadContext(_)))
                ),
                "{bad:?}"
            );
        }
    }

    /// Any JSON value: the context is exactly the objects, as they were.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            // Decimal fractions: serde_json (without `float_roundtrip`) may change the
            // last bit of extreme floats such as subnormals on the way through text.
            any::<i32>().prop_map(|n| serde_json::Value::from(f64::from(n) / 1000.0)),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        #[test]
        fn templates_any_body_or_query_is_a_context_or_an_error(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            query in proptest::prelude::any::<String>(),
            value in json_value(),
        ) {
            let _ = json_context(&body);
            let _ = query_context(&query);
            let text = serde_json::to_vec(&value).unwrap();
            match (json_context(&text), &value) {
                (Ok(context), serde_json::Value::Object(object)) => {
                    proptest::prop_assert_eq!(&context, object)
                }
                (Err(WebError::Render(RenderError::BadContext(_))), other) => {
                    proptest::prop_assert!(!other.is_object())
                }
                (other, value) => proptest::prop_assert!(false, "{value} -> {other:?}"),
            }
        }
    }
}
