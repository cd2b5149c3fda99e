//! Static files: `GET` and `HEAD` of every path no other leanserve route claims.
//!
//! A request is checked lexically (`http::path`), looked up in the file cache's read
//! handle (a hit costs no message), loaded through the cache actor on a miss or an expired
//! entry, and answered with the representation Accept-Encoding selects
//! (`http::encoding`: the highest weight, the smallest of equals). Preconditions and
//! ranges (`http::conditional`, `http::range`) are evaluated against that representation,
//! so each compressed form has its own ETag and a range of a br response is a range of
//! the br bytes.
//!
//! A compressible file is sent compressed to every client that takes one of
//! `static_files.encodings`, from the first request on: when the cache holds no form the
//! client takes, the file is compressed for it at the quick level, on the worker's own
//! thread up to [`inline_max`] bytes (about 300 microseconds at most) and on the
//! blocking pool above. The first such bytes of an entry are offered to the cache, which
//! queues the stored level's bytes in the background, most read files first (see the
//! file cache's module docs for which codings are kept). A file the cache does not keep
//! (admission turned it away, or the cache is off) is compressed for every request, as a
//! server compressing on the fly does: at the passing levels (`Levels::PASSING`), in the
//! coding cheapest per byte saved among those the client weighs highest.
//!
//! Files larger than `max_file_size` are streamed from disk in chunks with the same header
//! semantics, identity only. A directory path serves its index file; without a trailing
//! slash it is redirected (308) to the path with one.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::Bytes;

use super::error::WebError;
use crate::actors::file_cache::{
    CachedFile, Found, IDENTITY_COPY_AFTER, LargeFile, LoadError, SECOND_CODING_AFTER, Sent,
    identity_of, read_chunk,
};
use crate::codec::{Codecs, InflateError, Levels, worth_it};
use crate::http::conditional::{self, Precondition, Validators};
use crate::http::encoding::{Accepted, Coding};
use crate::http::path;
use crate::http::range::{self, RangeOutcome};
use crate::runtime::Subsystems;

pub(crate) use super::dictionaries::DICTIONARY_DIR;
use super::dictionaries::{dictionary_headers, respond_with_dictionary, vary};

/// Chunk size of streamed (large) files.
const STREAM_CHUNK: u64 = 64 * 1024;

/// The largest file compressed in `coding` at the quick level on the worker's own thread;
/// larger ones go to the blocking pool, so one first request does not hold up the
/// worker's other connections for more than about 300 microseconds. Medians per file on
/// the Rust docs (`bench/compress`, 2026-12-06): brotli 5 takes 273 µs for 4-16 KiB
/// pages, gzip 6 150 µs at 16 KiB, zstd 3 270 µs at 64-256 KiB.
pub fn inline_max(coding: Coding) -> u64 {
    match coding {
        Coding::Br => 8 * 1024,
        Coding::Gzip => 16 * 1024,
        Coding::Zstd => 64 * 1024,
        Coding::Identity => 0,
    }
}

/// The static files' route: the last stop of the serving surface's default service
/// (`public.rs`), not a catch-all route, so a host route matches first wherever it is
/// registered (a `POST` to it reaches it, not a 405).
pub(crate) fn route() -> actix_web::Route {
    web::to(serve)
}

/// Serves one static file request. This route is the hot path, so it counts itself in
/// the per-request figures (when monitoring is on) instead of going through the
/// measuring middleware: no extra routing scope, no boxed future per request.
async fn serve(
    request: HttpRequest,
    subsystems: web::Data<Subsystems>,
) -> Result<HttpResponse, WebError> {
    let started = Instant::now();
    let limiter = subsystems.limiters().map(|limiters| &limiters.files);
    let result = match super::limit::admit(limiter).await {
        Ok(permit) => {
            let result = respond(&request, &subsystems, started).await;
            super::limit::hold_until_sent(result, permit)
        }
        Err(refused) => Err(refused),
    };
    if subsystems.monitoring().is_some() {
        super::settle_connection(&request);
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => actix_web::ResponseError::status_code(error),
        };
        subsystems
            .requests()
            .record(status.as_u16(), started.elapsed());
    }
    result
}

/// Answers one static file request and records it in the cache's statistics.
async fn respond(
    request: &HttpRequest,
    subsystems: &Subsystems,
    started: Instant,
) -> Result<HttpResponse, WebError> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err(WebError::MethodNotAllowed);
    }
    let files = subsystems.files();
    let opts = files.opts();
    // The path below the mount point: `/a/b` at the root, and under `/site` too for
    // `/site/a/b`; empty for `/site` itself, a directory without its trailing slash.
    let below = request.match_info().unprocessed();
    let (tail, mount_point) = match below.strip_prefix('/') {
        Some(tail) => (tail, false),
        None => (below, true),
    };
    if let Some(name) = tail.strip_prefix(DICTIONARY_DIR) {
        return super::dictionaries::respond(request, subsystems, name, started);
    }
    let requested = path::parse_relative(tail, opts.serve_hidden).map_err(WebError::BadPath)?;
    let mut key = requested.key;
    let mut found = find(subsystems, &key).await?;
    if let Found::Directory = found {
        if !requested.trailing_slash && (!key.is_empty() || mount_point) {
            return Ok(redirect_to_directory(request));
        }
        key = if key.is_empty() {
            opts.index_file.clone()
        } else {
            format!("{key}/{}", opts.index_file)
        };
        found = find(subsystems, &key).await?;
    } else if requested.trailing_slash && !key.is_empty() {
        // `/file.txt/` names a directory that does not exist.
        return Err(WebError::NotFound);
    }
    let (response, sent) = match found {
        Found::File(file) | Found::Unchanged(file) => {
            respond_cached(request, file, subsystems).await?
        }
        Found::Large(large) => {
            files.record_too_large();
            let etag = files.large_etag(&large);
            let response = respond_large(request, large, &etag, files.cache_control())?;
            let sent = Sent {
                coding: Coding::Identity,
                dictionary: None,
                body_bytes: body_len(request, &response),
                saved_bytes: 0,
                dictionary_saved_bytes: 0,
            };
            (response, sent)
        }
        Found::Directory | Found::Missing => return Err(WebError::NotFound),
    };
    files.record_served(started.elapsed(), sent);
    Ok(response)
}

/// The body bytes `response` sends: its length, 0 for a `HEAD` or a 304.
pub(super) fn body_len(request: &HttpRequest, response: &HttpResponse) -> u64 {
    match response.body().size() {
        BodySize::Sized(len) if request.method() != Method::HEAD => len,
        _ => 0,
    }
}

/// A fresh cache entry, or whatever the cache actor finds on disk.
async fn find(subsystems: &Subsystems, key: &str) -> Result<Found, WebError> {
    let files = subsystems.files();
    if let Some(file) = files.lookup(key) {
        files.record_hit();
        return Ok(Found::File(file));
    }
    files.record_miss();
    match subsystems.file_cache().load(key.to_owned()).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(LoadError::Io {
            kind: io::ErrorKind::PermissionDenied,
            ..
        })) => Err(WebError::FileForbidden),
        Ok(Err(error)) => Err(WebError::Load(error)),
        Err(call) => Err(WebError::Unavailable(call)),
    }
}

fn redirect_to_directory(request: &HttpRequest) -> HttpResponse {
    let mut location = format!("{}/", request.uri().path());
    if let Some(query) = request.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, location))
        .finish()
}

use super::{conditions, header_str};

/// The headers every answer about one representation carries (200, 206, 304).
pub(super) struct Representation<'a> {
    pub(super) etag: &'a HeaderValue,
    pub(super) last_modified: Option<&'a HeaderValue>,
    pub(super) content_type: &'a HeaderValue,
    pub(super) cache_control: &'a HeaderValue,
    pub(super) vary: Option<&'static str>,
    /// The `Content-Encoding` token; None for identity.
    pub(super) encoding: Option<&'static str>,
    /// Headers of a 200 or 206 only (`Link`, `Use-As-Dictionary`).
    pub(super) extra: Vec<(header::HeaderName, HeaderValue)>,
}

impl Representation<'_> {
    fn validators(&self, builder: &mut HttpResponseBuilder) {
        builder.insert_header((header::ETAG, self.etag.clone()));
        if let Some(last_modified) = self.last_modified {
            builder.insert_header((header::LAST_MODIFIED, last_modified.clone()));
        }
        builder.insert_header((header::CACHE_CONTROL, self.cache_control.clone()));
        if let Some(vary) = self.vary {
            builder.insert_header((header::VARY, HeaderValue::from_static(vary)));
        }
    }

    fn content(&self, builder: &mut HttpResponseBuilder) {
        self.validators(builder);
        builder
            .insert_header((header::CONTENT_TYPE, self.content_type.clone()))
            .insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
        if let Some(encoding) = self.encoding {
            builder.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static(encoding)));
        }
        for (name, value) in &self.extra {
            builder.insert_header((name.clone(), value.clone()));
        }
    }
}

/// A 200 or 206 under way: the builder with its headers set, and which bytes to send.
pub(super) struct Sending {
    pub(super) builder: HttpResponseBuilder,
    pub(super) start: u64,
    pub(super) len: u64,
}

/// What the preconditions and the Range header make of a request for a representation
/// of `full_len` bytes: a finished 304, or a response to fill.
pub(super) enum Prepared {
    NotModified(HttpResponse),
    Send(Sending),
}

pub(super) fn prepare(
    request: &HttpRequest,
    representation: &Representation<'_>,
    modified: Option<std::time::SystemTime>,
    full_len: u64,
) -> Result<Prepared, WebError> {
    let headers = request.headers();
    let etag = representation.etag.to_str().unwrap_or_default();
    let validators = Validators {
        etag,
        last_modified: modified,
    };
    match conditional::evaluate(&conditions(headers), &validators, true) {
        Precondition::NotModified => {
            return Ok(Prepared::NotModified(not_modified(representation)));
        }
        Precondition::Failed => return Err(WebError::PreconditionFailed),
        Precondition::Proceed => {}
    }
    let range_header = header_str(headers, header::RANGE);
    let if_range = header_str(headers, header::IF_RANGE);
    let (status, start, len, content_range) =
        match range::evaluate(range_header, if_range, full_len, etag, modified) {
            RangeOutcome::Full => (StatusCode::OK, 0, full_len, None),
            RangeOutcome::Partial { start, end } => (
                StatusCode::PARTIAL_CONTENT,
                start,
                end - start + 1,
                Some(range::content_range(start, end, full_len)),
            ),
            RangeOutcome::Unsatisfiable => {
                return Err(WebError::RangeNotSatisfiable { len: full_len });
            }
        };
    let mut builder = HttpResponse::build(status);
    representation.content(&mut builder);
    if let Some(content_range) = content_range {
        builder.insert_header((header::CONTENT_RANGE, content_range));
    }
    Ok(Prepared::Send(Sending {
        builder,
        start,
        len,
    }))
}

fn not_modified(representation: &Representation<'_>) -> HttpResponse {
    let mut builder = HttpResponse::NotModified();
    representation.validators(&mut builder);
    builder.finish()
}

/// Answers from a cached file; also says what was sent.
async fn respond_cached(
    request: &HttpRequest,
    file: Arc<CachedFile>,
    subsystems: &Subsystems,
) -> Result<(HttpResponse, Sent), WebError> {
    let files = subsystems.files();
    let accepted = Accepted::parse(header_str(request.headers(), header::ACCEPT_ENCODING));
    if let Some(answer) = respond_with_dictionary(request, &file, subsystems, &accepted).await? {
        return Ok(answer);
    }
    let wanted = file
        .compressible
        .then(|| accepted.preferred(&files.opts().encodings))
        .flatten();
    if let Some(wanted) = wanted {
        note_demand(subsystems, &file, wanted);
    }
    // What the cache holds, or the wanted coding compressed now when the client takes
    // nothing held but identity (or not even that).
    let (coding, fresh) = match (accepted.choose(file.available()), wanted) {
        (Some(Coding::Identity) | None, Some(wanted)) => {
            // A file the cache does not keep is compressed again for every request: at
            // the passing levels, in the coding cheapest per byte saved among those the
            // client weighs highest (zstd, then gzip, then br).
            let (coding, level) = if files.holds(&file) {
                (wanted, Levels::QUICK.of(wanted))
            } else {
                let cheapest: Vec<Coding> = [Coding::Zstd, Coding::Gzip, Coding::Br]
                    .into_iter()
                    .filter(|coding| files.opts().encodings.contains(coding))
                    .collect();
                let coding = accepted.preferred(&cheapest).unwrap_or(wanted);
                (coding, Levels::PASSING.of(coding))
            };
            match compress_now(subsystems, &file, coding, level).await? {
                Some(encoded) => (coding, Some(encoded)),
                None => (Coding::Identity, None),
            }
        }
        (Some(coding), _) => (coding, None),
        (None, None) => return Err(WebError::NotAcceptable),
    };
    if !accepted.accepts(coding) {
        return Err(WebError::NotAcceptable);
    }
    if let Some(encoded) = file.encoded(coding)
        && !encoded.stored
        && file.claim_build(coding)
    {
        // Read again while held at the quick level: time for the stored level.
        subsystems.file_cache().build_encodings(file.key.clone());
    }
    let held = file.encoded(coding);
    let (etag, encoded_bytes) = match (&fresh, held) {
        (Some(fresh), _) => (fresh.etag.clone(), Some(fresh.bytes.clone())),
        (None, Some(held)) => (held.etag.clone(), Some(held.bytes.clone())),
        (None, None) => (file.etag.clone(), None),
    };
    let representation = Representation {
        etag: &etag,
        last_modified: file.last_modified.as_ref(),
        content_type: &file.content_type,
        cache_control: files.cache_control(),
        vary: vary(subsystems, &file),
        encoding: (coding != Coding::Identity).then(|| coding.token()),
        extra: dictionary_headers(request, subsystems, &file),
    };
    let full_len = encoded_bytes
        .as_ref()
        .map_or(file.len, |bytes| bytes.len() as u64);
    let Sending {
        mut builder,
        start,
        len,
    } = match prepare(request, &representation, file.modified, full_len)? {
        Prepared::NotModified(response) => {
            let sent = Sent {
                coding,
                dictionary: None,
                body_bytes: 0,
                saved_bytes: 0,
                dictionary_saved_bytes: 0,
            };
            return Ok((response, sent));
        }
        Prepared::Send(sending) => sending,
    };
    let bytes = match encoded_bytes {
        Some(bytes) => bytes,
        None => identity(subsystems, &file).await?,
    };
    let body = slice(bytes, start, len)
        .ok_or_else(|| io_failure(&file.key, io::Error::other("decoded length differs")))?;
    let whole = len == full_len;
    let sent = Sent {
        coding,
        dictionary: None,
        dictionary_saved_bytes: 0,
        body_bytes: if request.method() == Method::HEAD {
            0
        } else {
            len
        },
        saved_bytes: if whole && coding != Coding::Identity {
            file.len.saturating_sub(full_len)
        } else {
            0
        },
    };
    let response = if body.len() > SLICE {
        builder.body(Slices(body))
    } else {
        builder.body(body)
    };
    Ok((response, sent))
}

/// Counts a request whose client prefers `wanted` and asks the cache for that coding
/// when the demand calls for it: at once for an entry that holds no compressed form
/// (the quick bytes this request makes are offered meanwhile), after
/// [`SECOND_CODING_AFTER`] requests for an entry that holds another.
fn note_demand(subsystems: &Subsystems, file: &Arc<CachedFile>, wanted: Coding) {
    let asked = file.count_asked(wanted);
    if file.encoded(wanted).is_none()
        && file.has_encoded()
        && asked >= SECOND_CODING_AFTER
        && file.claim_build(wanted)
    {
        subsystems.file_cache().build_encodings(file.key.clone());
    }
}

/// `file` compressed in `coding` at the quick level for this response, on this thread
/// when it is small and its identity bytes are held, else on the blocking pool; None
/// when compression does not save 10% (the file is then sent, and from now on kept, as
/// identity) or no compressor is free in time (sent as identity, logged).
async fn compress_now(
    subsystems: &Subsystems,
    file: &Arc<CachedFile>,
    coding: Coding,
    level: i32,
) -> Result<Option<crate::actors::file_cache::Encoded>, WebError> {
    let files = subsystems.files();
    let codecs = files.codecs().clone();
    let started = Instant::now();
    let inline = file.len <= inline_max(coding) && file.identity.is_some();
    let result = if inline {
        match codecs.compressor_now() {
            Ok(mut compressor) => {
                let identity = file.identity.as_deref().expect("checked");
                compressor
                    .encode(coding, level, identity)
                    .map(|bytes| worth_it(bytes, identity.len()))
                    .map_err(QuickError::Failed)
            }
            Err(_) => quick_elsewhere(&codecs, file, coding, level).await,
        }
    } else {
        quick_elsewhere(&codecs, file, coding, level).await
    };
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(QuickError::Busy(error)) => {
            log::warn!("sending {:?} uncompressed: {error}", file.key);
            return Ok(None);
        }
        Err(QuickError::Failed(error)) => return Err(io_failure(&file.key, error)),
    };
    files.record_inline_compression(coding, started.elapsed());
    if !file.has_encoded() && level == Levels::QUICK.of(coding) {
        subsystems
            .file_cache()
            .keep_encoded(Arc::clone(file), coding, bytes.clone());
    }
    // At a stored level equal to the quick one these bytes are already the stored ones.
    let stored = level == codecs.stored_levels().of(coding);
    Ok(bytes
        .map(|bytes| crate::actors::file_cache::Encoded::new(file.digest, coding, bytes, stored)))
}

/// Why a quick compression gave nothing.
enum QuickError {
    /// No compressor or decoder came free in time.
    Busy(crate::pool::AcquireError),
    /// The held bytes could not be decoded or compressed.
    Failed(io::Error),
}

/// [`compress_now`] on the blocking pool (decoding the identity bytes first when the
/// entry holds only compressed ones: a transcode).
async fn quick_elsewhere(
    codecs: &Codecs,
    file: &Arc<CachedFile>,
    coding: Coding,
    level: i32,
) -> Result<Option<Bytes>, QuickError> {
    let (codecs, file) = (codecs.clone(), Arc::clone(file));
    let joined = web::block(move || {
        let identity = identity_of(&file, &codecs).map_err(|error| match error {
            InflateError::Busy(busy) => QuickError::Busy(busy),
            InflateError::Corrupt(error) => QuickError::Failed(error),
        })?;
        let mut compressor = codecs.compressor().map_err(QuickError::Busy)?;
        compressor
            .encode(coding, level, &identity)
            .map(|bytes| worth_it(bytes, identity.len()))
            .map_err(QuickError::Failed)
    })
    .await;
    joined.unwrap_or_else(|error| Err(QuickError::Failed(io::Error::other(error.to_string()))))
}

/// The identity bytes of `file` for a response: held, or decoded from its compressed
/// bytes on the blocking pool (counted; an entry decoded often is offered an identity
/// copy).
pub(super) async fn identity(
    subsystems: &Subsystems,
    file: &Arc<CachedFile>,
) -> Result<Bytes, WebError> {
    if let Some(identity) = &file.identity {
        return Ok(identity.clone());
    }
    let files = subsystems.files();
    let (codecs, entry) = (files.codecs().clone(), Arc::clone(file));
    match web::block(move || identity_of(&entry, &codecs)).await {
        Ok(Ok(bytes)) => {
            files.record_inflation();
            // Read often by identity clients: offer the cache a copy to keep.
            if file.count_inflation() == IDENTITY_COPY_AFTER
                && files.opts().identity_copy_percent > 0
            {
                subsystems
                    .file_cache()
                    .keep_identity(Arc::clone(file), bytes.clone());
            }
            Ok(bytes)
        }
        Ok(Err(InflateError::Busy(error))) => Err(WebError::Busy(error)),
        Ok(Err(InflateError::Corrupt(error))) => Err(io_failure(&file.key, error)),
        Err(error) => Err(io_failure(&file.key, io::Error::other(error.to_string()))),
    }
}

/// The most of a cached body handed to actix-http at once.
pub(super) const SLICE: usize = 64 * 1024;

/// A cached body larger than [`SLICE`], handed over a slice at a time (views of the
/// cached bytes, no copy). actix-http copies what it is handed into the connection's
/// write buffer: a body handed over whole grows that buffer to the body's size, and
/// actix-http frees a buffer grown past 128 KiB once it is written, so every large body
/// cost a large allocation and its pages, freed again a moment later. In slices the
/// buffer stays under 128 KiB and is reused from one response to the next.
pub(super) struct Slices(pub(super) Bytes);

impl MessageBody for Slices {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0.len() as u64)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let rest = &mut self.get_mut().0;
        if rest.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(rest.split_to(rest.len().min(SLICE)))))
    }
}

/// `len` bytes of `bytes` from `start`, without copying.
pub(super) fn slice(bytes: Bytes, start: u64, len: u64) -> Option<Bytes> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= bytes.len()).then(|| bytes.slice(start..end))
}

pub(super) fn io_failure(key: &str, error: io::Error) -> WebError {
    WebError::Load(LoadError::Io {
        key: key.to_owned(),
        kind: error.kind(),
        message: error.to_string(),
    })
}

/// Answers from a file too large to cache by streaming it (identity only).
fn respond_large(
    request: &HttpRequest,
    large: LargeFile,
    etag: &HeaderValue,
    cache_control: &HeaderValue,
) -> Result<HttpResponse, WebError> {
    let accept = header_str(request.headers(), header::ACCEPT_ENCODING);
    Accepted::parse(accept)
        .choose([(Coding::Identity, large.len)])
        .ok_or(WebError::NotAcceptable)?;
    let representation = Representation {
        etag,
        last_modified: large.last_modified.as_ref(),
        content_type: &large.content_type,
        cache_control,
        vary: None,
        encoding: None,
        extra: Vec::new(),
    };
    if etag != large.etag && still_current(request, &large.etag) {
        return Ok(not_modified(&representation));
    }
    let Sending {
        mut builder,
        start,
        len,
    } = match prepare(request, &representation, large.modified, large.len)? {
        Prepared::NotModified(response) => return Ok(response),
        Prepared::Send(sending) => sending,
    };
    Ok(builder
        .no_chunking(len)
        .streaming(file_stream(large.path, start, len)))
}

/// Whether a revalidation (`If-None-Match`, no `If-Match`) names the weak length-and-time
/// tag a streamed file had before its bytes were hashed: that tag still describes this
/// version, so the client's copy is current (304, with the strong tag from now on).
fn still_current(request: &HttpRequest, weak: &HeaderValue) -> bool {
    let headers = request.headers();
    let (Some(if_none_match), None) = (
        header_str(headers, header::IF_NONE_MATCH),
        headers.get(header::IF_MATCH),
    ) else {
        return false;
    };
    let Some(weak) = weak.to_str().ok().and_then(conditional::EntityTag::parse) else {
        return false;
    };
    conditional::entity_tags(if_none_match).any(|tag| tag.weak_eq(&weak))
}

/// Reads `len` bytes of the file at `path` from `start`, one chunk at a time on the
/// blocking pool.
fn file_stream(
    path: PathBuf,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = (None::<std::fs::File>, start, len);
    futures_util::stream::try_unfold(state, move |(file, offset, remaining)| {
        let path = path.clone();
        async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(STREAM_CHUNK) as usize;
            let (file, chunk) = web::block(move || -> io::Result<_> {
                let mut file = match file {
                    Some(file) => file,
                    None => std::fs::File::open(&path)?,
                };
                let chunk = read_chunk(&mut file, offset, want)?;
                Ok((file, chunk))
            })
            .await
            .map_err(actix_web::error::ErrorInternalServerError)?
            .map_err(actix_web::error::ErrorInternalServerError)?;
            if chunk.is_empty() {
                log::warn!("a streamed file ended early (it shrank while being served)");
                return Err(actix_web::error::ErrorInternalServerError("file shrank"));
            }
            let read = chunk.len() as u64;
            Ok(Some((chunk, (Some(file), offset + read, remaining - read))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_hand_over_a_body_in_views_of_at_most_a_slice() {
        let body: Bytes = (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let mut slices = Slices(body.clone());
        assert_eq!(slices.size(), BodySize::Sized(200_000));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut lens = Vec::new();
        let mut joined = Vec::new();
        while let Poll::Ready(Some(Ok(chunk))) = Pin::new(&mut slices).poll_next(&mut cx) {
            assert!(
                body.as_ptr_range().contains(&chunk.as_ptr()),
                "a view of the cached bytes, not a copy"
            );
            lens.push(chunk.len());
            joined.extend_from_slice(&chunk);
        }
        assert_eq!(lens, [SLICE, SLICE, SLICE, 200_000 - 3 * SLICE]);
        assert!(joined == body);
    }
}
