//! Applying the in-flight limiters to the serving routes: a request takes a permit from
//! its limiter before any work, and the permit rides on the response body, so it is
//! released only when the body has been sent (or dropped), streamed files included. A
//! refused request is answered 503 with `Retry-After` at once.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;

use super::error::WebError;
use crate::concurrency::{Limiter, Permit};

/// Takes a permit from `limiter` (or none without a limiter).
pub(crate) async fn admit(limiter: Option<&Limiter>) -> Result<Option<Permit>, WebError> {
    match limiter {
        Some(limiter) => limiter
            .acquire()
            .await
            .map(Some)
            .map_err(WebError::Overloaded),
        None => Ok(None),
    }
}

/// Hands `permit` to the response's body. A 5xx teaches the limit nothing.
pub(crate) fn hold_until_sent(
    result: Result<HttpResponse, WebError>,
    permit: Option<Permit>,
) -> Result<HttpResponse, WebError> {
    let Some(mut permit) = permit else {
        return result;
    };
    match result {
        Ok(response) => {
            if response.status().is_server_error() {
                permit.failed();
            }
            Ok(response
                .map_body(|_, body| PermitBody {
                    body,
                    permit: Some(permit),
                })
                .map_into_boxed_body())
        }
        Err(error) => {
            if actix_web::ResponseError::status_code(&error).is_server_error() {
                permit.failed();
            }
            Err(error)
        }
    }
}

/// A body that holds a permit until it has produced its last chunk.
struct PermitBody<B> {
    body: B,
    permit: Option<Permit>,
}

impl<B: MessageBody + Unpin> MessageBody for PermitBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_next(cx);
        if let Poll::Ready(None | Some(Err(_))) = &polled {
            self.permit.take();
        }
        polled
    }
}
