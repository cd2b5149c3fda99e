//! Compression Dictionary Transport (RFC 9842) on the static file path: the site
//! dictionary's own URL, the headers that offer dictionaries, and responses compressed
//! against a dictionary the client holds.
//!
//! - **The site dictionary** is served at `<mount>/.leanserve/dictionary/<sha-256 hex>`
//!   (a hidden path: no site file is ever shadowed unless `serve_hidden` is on and the
//!   site has a `.leanserve` folder), compressed like any text, with
//!   `Use-As-Dictionary: match="<mount>/*", match-dest=("document")` and a 30-day
//!   `Cache-Control`; its URL names its content, so it never changes. Every HTML page
//!   advertises it with `Link: <url>; rel="compression-dictionary"`; the browser fetches
//!   it when idle.
//! - **Asset dictionaries**: a file whose path matches a `static_files.dictionary_assets`
//!   pattern carries `Use-As-Dictionary: match="<mount><pattern>"`, and the cache keeps
//!   its bytes, so the next version is sent compressed against it.
//! - **A request naming a dictionary** (`Available-Dictionary`) that leanserve holds,
//!   with `dcz` or `dcb` in Accept-Encoding, gets the file compressed against it: held in
//!   the cache entry, or compressed now (dcz on the worker up to [`DCZ_INLINE_MAX`], else
//!   on the blocking pool) and offered to the cache. Anything else gets the ordinary
//!   negotiation: an unknown hash, a malformed header, a coding switched off, or a
//!   dictionary-compressed body no smaller than the best plain one the client takes.
//!
//! The RFC's security rules, as leanserve applies them:
//!
//! 1. Dictionaries are same-origin: leanserve serves them itself, and every `match` it
//!    writes is a path under its own mount point.
//! 2. Only responses a client may cache become dictionaries: the site dictionary has its
//!    own long-lived `Cache-Control`; assets are offered only when
//!    `static_files.cache_control` does not say `no-store`.
//! 3. Only static files are compressed against dictionaries: their bytes are public and
//!    carry no secret beside attacker-chosen text. Template renders, which may, never are
//!    (the BREACH class of attacks).
//! 4. A cross-origin `no-cors` fetch (`Sec-Fetch-Site: cross-site` or `same-site` with
//!    `Sec-Fetch-Mode: no-cors`) is never answered dictionary-compressed: its response is
//!    opaque to the page, which the RFC keeps dictionaries away from.
//! 5. A dictionary is found only by its full SHA-256, and the body's header repeats it.
//! 6. Every response of a file that may be dictionary-compressed carries
//!    `Vary: Accept-Encoding, Available-Dictionary`.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::error::WebError;
use super::files::{
    Prepared, Representation, SLICE, Sending, Slices, body_len, identity, io_failure, prepare,
    slice,
};
use super::header_str;
use crate::actors::file_cache::{CachedFile, DictEncoded, Sent};
use crate::dictionary::{Dictionary, Source};
use crate::http::dictionary::{self as rfc, DictCoding};
use crate::http::encoding::{Accepted, Coding};
use crate::runtime::Subsystems;

/// The folder, under the mount point, of the site dictionary's URL.
pub(crate) const DICTIONARY_DIR: &str = ".leanserve/dictionary/";

/// The largest file compressed against a dictionary on the worker's own thread (dcz at
/// level 6 with the prepared dictionary: about 20 µs for a 4 KB page, 6 µs per KB, so
/// about 200 µs at 32 KiB).
pub const DCZ_INLINE_MAX: u64 = 32 * 1024;

/// How long a client keeps the site dictionary (`Cache-Control: max-age`), unless a new
/// one replaces it first.
const DICTIONARY_MAX_AGE: &str = "public, max-age=2592000";

const AVAILABLE_DICTIONARY: HeaderName = HeaderName::from_static("available-dictionary");
const USE_AS_DICTIONARY: HeaderName = HeaderName::from_static("use-as-dictionary");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// The path the request's mount point is at (`""` at the root): what routing consumed of
/// the path, in the form routing read it.
fn mount(request: &HttpRequest) -> &str {
    let path = request.match_info();
    let (whole, below) = (path.as_str(), path.unprocessed());
    whole[..whole.len() - below.len()].trim_end_matches('/')
}

/// The `Vary` of a cached file's responses.
pub(super) fn vary(subsystems: &Subsystems, file: &CachedFile) -> Option<&'static str> {
    if !file.varies() {
        None
    } else if subsystems.files().opts().dictionaries.is_empty() {
        Some("Accept-Encoding")
    } else {
        Some("Accept-Encoding, Available-Dictionary")
    }
}

/// The dictionary headers of a 200 or 206 of `file`: the site dictionary's `Link` on an
/// HTML page, `Use-As-Dictionary` on an asset matching a pattern (whose bytes the cache
/// is then offered as a dictionary).
pub(super) fn dictionary_headers(
    request: &HttpRequest,
    subsystems: &Subsystems,
    file: &Arc<CachedFile>,
) -> Vec<(HeaderName, HeaderValue)> {
    let files = subsystems.files();
    let opts = files.opts();
    let mut headers = Vec::new();
    if opts.dictionaries.is_empty() {
        return headers;
    }
    if file.content_type.as_bytes().starts_with(b"text/html")
        && let Some(site) = files.dictionaries().site()
    {
        let link = format!(
            "<{}/{DICTIONARY_DIR}{}>; rel=\"compression-dictionary\"",
            mount(request),
            site.hex()
        );
        if let Ok(value) = HeaderValue::try_from(link) {
            headers.push((header::LINK, value));
        }
    }
    if opts.dictionary_assets.is_empty() || opts.cache_control.contains("no-store") {
        return headers;
    }
    let path = format!("/{}", file.key);
    if let Some(pattern) = opts
        .dictionary_assets
        .iter()
        .find(|pattern| rfc::pattern_matches(pattern, &path))
    {
        let value = rfc::use_as_dictionary(&format!("{}{pattern}", mount(request)), None, None);
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.push((USE_AS_DICTIONARY, value));
        }
        if !files.dictionaries().has_asset(&file.key, file.digest) && files.holds(file) {
            subsystems
                .file_cache()
                .add_asset_dictionary(Arc::clone(file), pattern.clone());
        }
    }
    headers
}

/// Serves the site dictionary named `name` (its SHA-256 in hex), in the coding the
/// client takes; 404 for anything else.
pub(super) fn respond(
    request: &HttpRequest,
    subsystems: &Subsystems,
    name: &str,
    started: Instant,
) -> Result<HttpResponse, WebError> {
    let files = subsystems.files();
    let dictionary = parse_hex(name)
        .and_then(|hash| files.dictionaries().get(&hash))
        .filter(|dictionary| matches!(dictionary.source, Source::Site { .. }))
        .ok_or(WebError::NotFound)?;
    let accepted = Accepted::parse(header_str(request.headers(), header::ACCEPT_ENCODING));
    let available = dictionary
        .encoded
        .iter()
        .map(|(coding, bytes)| (*coding, bytes.len() as u64))
        .chain([(Coding::Identity, dictionary.bytes.len() as u64)]);
    let coding = accepted.choose(available).ok_or(WebError::NotAcceptable)?;
    let bytes = dictionary
        .encoded
        .iter()
        .find(|(held, _)| *held == coding)
        .map_or_else(|| dictionary.bytes.clone(), |(_, bytes)| bytes.clone());
    let etag = HeaderValue::try_from(format!("\"{}-{}\"", dictionary.hex(), coding.token()))
        .expect("hex and a token");
    let use_as = rfc::use_as_dictionary(&format!("{}/*", mount(request)), Some("document"), None);
    let representation = Representation {
        etag: &etag,
        last_modified: None,
        content_type: &HeaderValue::from_static("application/octet-stream"),
        cache_control: &HeaderValue::from_static(DICTIONARY_MAX_AGE),
        vary: Some("Accept-Encoding"),
        encoding: (coding != Coding::Identity).then(|| coding.token()),
        extra: vec![(
            USE_AS_DICTIONARY,
            HeaderValue::try_from(use_as).map_err(|_| WebError::NotFound)?,
        )],
    };
    let response = match prepare(request, &representation, None, bytes.len() as u64)? {
        Prepared::NotModified(response) => response,
        Prepared::Send(Sending {
            mut builder,
            start,
            len,
        }) => {
            let body = slice(bytes.clone(), start, len).ok_or(WebError::NotFound)?;
            builder.body(body)
        }
    };
    let body_bytes = body_len(request, &response);
    if response.status() == StatusCode::OK && request.method() == Method::GET {
        files.record_dictionary_download();
    }
    files.record_served(
        started.elapsed(),
        Sent {
            coding,
            dictionary: None,
            body_bytes,
            saved_bytes: 0,
            dictionary_saved_bytes: 0,
        },
    );
    Ok(response)
}

fn parse_hex(name: &str) -> Option<[u8; 32]> {
    if name.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // One spelling only: lower case, as leanserve writes it.
    (rfc::hex(&hash) == name).then_some(hash)
}

/// The response of `file` compressed against the dictionary the request names, when
/// one applies (see the module docs); None sends the request on to the ordinary
/// negotiation.
pub(super) async fn respond_with_dictionary(
    request: &HttpRequest,
    file: &Arc<CachedFile>,
    subsystems: &Subsystems,
    accepted: &Accepted,
) -> Result<Option<(HttpResponse, Sent)>, WebError> {
    let files = subsystems.files();
    let opts = files.opts();
    let headers = request.headers();
    if opts.dictionaries.is_empty() || !file.compressible {
        return Ok(None);
    }
    let Some(hash) = rfc::available_dictionary(header_str(headers, AVAILABLE_DICTIONARY)) else {
        return Ok(None);
    };
    if rfc::opaque_to_requester(
        header_str(headers, SEC_FETCH_SITE),
        header_str(headers, SEC_FETCH_MODE),
    ) {
        return Ok(None);
    }
    let Some(coding) = accepted.dictionary_coding(&opts.dictionaries) else {
        return Ok(None);
    };
    let Some(dictionary) = files.dictionaries().get(&hash) else {
        return Ok(None);
    };
    let held = file
        .dictionary
        .as_ref()
        .filter(|held| held.hash == hash && held.coding == coding)
        .cloned();
    let encoded = match held {
        Some(held) => held,
        None => match compress(subsystems, file, &dictionary, coding).await {
            Ok(Some(encoded)) => {
                if files.holds(file) {
                    subsystems
                        .file_cache()
                        .keep_dict_encoded(Arc::clone(file), encoded.clone());
                }
                encoded
            }
            Ok(None) => return Ok(None),
            // No decoder or blocking thread free, or the bytes would not compress: the
            // ordinary codings answer instead.
            Err(error) => {
                log::warn!("sending {:?} without a dictionary: {error}", file.key);
                return Ok(None);
            }
        },
    };
    // The best plain form the client takes, as the ordinary negotiation would pick.
    let plain = accepted
        .choose(file.available())
        .and_then(|coding| file.available().find(|(held, _)| *held == coding))
        .map(|(_, len)| len);
    let full_len = encoded.bytes.len() as u64;
    if plain.is_some_and(|plain| full_len >= plain) {
        return Ok(None);
    }
    let representation = Representation {
        etag: &encoded.etag,
        last_modified: file.last_modified.as_ref(),
        content_type: &file.content_type,
        cache_control: files.cache_control(),
        vary: vary(subsystems, file),
        encoding: Some(coding.token()),
        extra: dictionary_headers(request, subsystems, file),
    };
    let Sending {
        mut builder,
        start,
        len,
    } = match prepare(request, &representation, file.modified, full_len)? {
        Prepared::NotModified(response) => {
            let sent = Sent {
                coding: Coding::Identity,
                dictionary: Some(coding),
                body_bytes: 0,
                saved_bytes: 0,
                dictionary_saved_bytes: 0,
            };
            return Ok(Some((response, sent)));
        }
        Prepared::Send(sending) => sending,
    };
    let body = slice(encoded.bytes.clone(), start, len)
        .ok_or_else(|| io_failure(&file.key, std::io::Error::other("length differs")))?;
    let whole = len == full_len && request.method() != Method::HEAD;
    let sent = Sent {
        coding: Coding::Identity,
        dictionary: Some(coding),
        body_bytes: if request.method() == Method::HEAD {
            0
        } else {
            len
        },
        saved_bytes: if whole {
            file.len.saturating_sub(full_len)
        } else {
            0
        },
        dictionary_saved_bytes: match plain {
            Some(plain) if whole => plain - full_len,
            _ => 0,
        },
    };
    let response = if body.len() > SLICE {
        builder.body(Slices(body))
    } else {
        builder.body(body)
    };
    Ok(Some((response, sent)))
}

/// `file` compressed in `coding` against `dictionary`: on this thread for a small dcz
/// whose identity bytes are held, else on the blocking pool. None when the dictionary
/// cannot be used so (see [`Dictionary::compress`]).
async fn compress(
    subsystems: &Subsystems,
    file: &Arc<CachedFile>,
    dictionary: &Arc<Dictionary>,
    coding: DictCoding,
) -> Result<Option<DictEncoded>, WebError> {
    let identity: Bytes = identity(subsystems, file).await?;
    let inline = coding == DictCoding::Dcz && file.len <= DCZ_INLINE_MAX;
    let compressed = if inline {
        dictionary.compress(coding, &identity)
    } else {
        let dictionary = Arc::clone(dictionary);
        web::block(move || dictionary.compress(coding, &identity))
            .await
            .map_err(|error| io_failure(&file.key, std::io::Error::other(error.to_string())))?
    };
    let bytes = compressed.map_err(|error| io_failure(&file.key, error))?;
    Ok(bytes.map(|bytes| DictEncoded::new(file.digest, coding, dictionary.hash, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_names_are_lower_case_hex_of_32_bytes() {
        let hash: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(9));
        let name = rfc::hex(&hash);
        assert_eq!(parse_hex(&name), Some(hash));
        assert_eq!(parse_hex(&name.to_uppercase()), None);
        assert_eq!(parse_hex(&name[2..]), None);
        assert_eq!(parse_hex(&format!("{name}00")), None);
        assert_eq!(parse_hex(&format!("{}zz", &name[2..])), None);
        assert_eq!(parse_hex(""), None);
    }
}
