//! One render, with its limits: minijinja's fuel bounds the instructions a render may
//! execute (a template that loops forever stops with [`RenderError::OutOfFuel`]), and a
//! counting writer bounds its output (one that renders gigabytes stops at
//! `max_output_bytes` with [`RenderError::TooLarge`]). The rendered bytes get a strong
//! ETag (xxh3 of the bytes) and, when the client takes gzip and compression pays, a gzip
//! copy. Blocking: the caller runs it on the blocking pool.
//!
//! The output is written into a buffer from the `render_buffers` pool, which keeps its
//! capacity between renders (one grown past [`MAX_KEPT_BUFFER`] is dropped on return),
//! and copied out at its exact length; the gzip copy comes from a pooled compressor.

use std::io::{self, Write};

use bytes::Bytes;
use minijinja::{Environment, ErrorKind};

use super::TemplateError;
use crate::codec::Codecs;
use crate::pool::{Manager, Pool, Pooled};

pub use crate::config::keys::BUFFER_POOL;
/// A buffer that grew past this is dropped on return rather than kept.
pub const MAX_KEPT_BUFFER: usize = 64 * 1024;

/// Makes output buffers for the `render_buffers` pool.
#[derive(Debug, Default)]
pub struct BufferManager;

impl Manager for BufferManager {
    type Object = Vec<u8>;
    type Error = std::convert::Infallible;

    fn create(&self) -> Result<Vec<u8>, Self::Error> {
        Ok(Vec::new())
    }

    fn recycle(&self, buffer: &mut Vec<u8>) -> bool {
        buffer.clear();
        buffer.capacity() <= MAX_KEPT_BUFFER
    }

    fn size_of(&self, buffer: &Vec<u8>) -> Option<u64> {
        Some(buffer.capacity() as u64)
    }
}

/// The limits of one render.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest output, in bytes.
    pub max_output: u64,
    /// Instructions allowed (reported in the error; the environment enforces it).
    pub fuel: u64,
    /// Smallest output worth gzipping.
    pub min_compress: u64,
}

/// What renders borrow: output buffers and compressors, pooled or made per render.
#[derive(Clone, Debug)]
pub struct Resources {
    /// Compressors for the gzip copy.
    pub codecs: Codecs,
    /// Output buffers (`None`: a new one per render).
    pub buffers: Option<Pool<BufferManager>>,
}

impl Resources {
    /// Fresh buffers and compressors for every render.
    pub fn direct() -> Resources {
        Resources {
            codecs: Codecs::direct(),
            buffers: None,
        }
    }

    /// A pooled buffer if one is free now, else a fresh one: a render never waits for a
    /// buffer (the render workers bound how many run).
    fn buffer(&self) -> Buffer {
        match self.buffers.as_ref().map(Pool::try_acquire) {
            Some(Ok(buffer)) => Buffer::Pooled(buffer),
            _ => Buffer::Owned(Vec::new()),
        }
    }
}

enum Buffer {
    Pooled(Pooled<BufferManager>),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        match self {
            Buffer::Pooled(buffer) => buffer,
            Buffer::Owned(buffer) => buffer,
        }
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Buffer::Pooled(buffer) => buffer,
            Buffer::Owned(buffer) => buffer,
        }
    }
}

/// A rendered template, ready to send.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Rendered {
    /// The rendered bytes.
    pub body: Bytes,
    /// The body gzip-compressed, when asked for and at least 10% smaller.
    pub gzip: Option<Bytes>,
    /// Strong ETag of `body`, quoted.
    pub etag: String,
    /// Strong ETag of `gzip`, quoted.
    pub gzip_etag: Option<String>,
}

/// Why a render produced nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// No template has this name.
    #[error("no template named {0:?}")]
    NotFound(String),
    /// The template exists but could not be loaded, and no earlier version is in service.
    #[error("template {name:?} failed to load: {error}")]
    Broken {
        /// The template.
        name: String,
        /// Why it failed to load.
        error: TemplateError,
    },
    /// The render executed more instructions than `templates.max_fuel`.
    #[error("rendering {name:?} was stopped after {fuel} instructions (templates.max_fuel)")]
    OutOfFuel {
        /// The template.
        name: String,
        /// The instructions it was allowed.
        fuel: u64,
    },
    /// The output grew past `templates.max_output_bytes`.
    #[error(
        "rendering {name:?} was stopped at {limit} bytes of output (templates.max_output_bytes)"
    )]
    TooLarge {
        /// The template.
        name: String,
        /// The bytes of output it was allowed.
        limit: u64,
    },
    /// The template failed while rendering with this context (a type error, a missing
    /// include, an error raised by a filter).
    #[error("rendering {name:?} failed: {message}")]
    Failed {
        /// The template.
        name: String,
        /// minijinja's message (it may quote the source; it is logged, not sent).
        message: String,
    },
    /// The request's context is not usable (not a JSON object, too large, malformed).
    #[error("{0}")]
    BadContext(String),
    /// The store cannot render now (its render pool is closed).
    #[error("templates are unavailable: {0}")]
    Unavailable(String),
    /// Templates are switched off (`templates.enabled = false`).
    #[error(transparent)]
    Off(#[from] crate::off::Off),
}

/// One render asked for.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The template.
    pub name: &'a str,
    /// The variables it renders with.
    pub context: &'a minijinja::Value,
    /// Whether the client takes gzip.
    pub want_gzip: bool,
}

/// Renders `request.name` from `env` within `limits`; compresses when the request wants
/// gzip and the output has at least `limits.min_compress` bytes.
pub fn render(
    env: &Environment<'static>,
    request: &Request<'_>,
    limits: &Limits,
    resources: &Resources,
) -> Result<Rendered, RenderError> {
    let Request {
        name,
        context,
        want_gzip,
    } = *request;
    let Limits {
        max_output,
        fuel,
        min_compress,
    } = *limits;
    let template = env.get_template(name).map_err(|error| match error.kind() {
        ErrorKind::TemplateNotFound => RenderError::NotFound(name.to_owned()),
        _ => RenderError::Failed {
            name: name.to_owned(),
            message: describe(&error),
        },
    })?;
    let mut buffer = resources.buffer();
    let mut out = Bounded {
        bytes: &mut buffer,
        limit: max_output,
        exceeded: false,
    };
    let rendered = template
        .render_captured_to(context.clone(), &mut out)
        .map(drop);
    if out.exceeded {
        return Err(RenderError::TooLarge {
            name: name.to_owned(),
            limit: max_output,
        });
    }
    if let Err(error) = rendered {
        return Err(match error.kind() {
            ErrorKind::OutOfFuel => RenderError::OutOfFuel {
                name: name.to_owned(),
                fuel,
            },
            _ => RenderError::Failed {
                name: name.to_owned(),
                message: describe(&error),
            },
        });
    }
    let body = Bytes::copy_from_slice(&buffer);
    drop(buffer);
    let gzip = (want_gzip && body.len() as u64 >= min_compress)
        .then(|| resources.codecs.gzip_if_smaller(&body))
        .flatten();
    Ok(Rendered {
        etag: etag(&body),
        gzip_etag: gzip.as_deref().map(etag),
        body,
        gzip,
    })
}

/// A minijinja error with its cause chain, on one line.
fn describe(error: &minijinja::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A strong ETag: the xxh3 of the bytes, quoted.
pub fn etag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// Collects output up to a limit; past it every write fails, which stops the render.
struct Bounded<'a> {
    bytes: &'a mut Vec<u8>,
    limit: u64,
    exceeded: bool,
}

impl Write for Bounded<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if (self.bytes.len() + data.len()) as u64 > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(templates: &[(&'static str, &'static str)], fuel: u64) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_fuel(Some(fuel));
        for (name, source) in templates {
            env.add_template(name, source).unwrap();
        }
        env
    }

    /// Room for every test output, no fuel reported, gzip from the first byte.
    const LIMITS: Limits = Limits {
        max_output: 1 << 20,
        fuel: 0,
        min_compress: 0,
    };

    fn request<'a>(name: &'a str, context: &'a minijinja::Value) -> Request<'a> {
        Request {
            name,
            context,
            want_gzip: false,
        }
    }

    /// Renders with fresh buffers and compressors.
    fn render_direct(
        env: &Environment<'static>,
        request: Request<'_>,
        limits: Limits,
    ) -> Result<Rendered, RenderError> {
        render(env, &request, &limits, &Resources::direct())
    }

    #[test]
    fn templates_render_reuses_pooled_buffers_and_drops_grown_ones() {
        let env = env(
            &[
                ("small.txt", "{% for i in range(100) %}{{ i }},{% endfor %}"),
                (
                    "large.txt",
                    "{% for i in range(20000) %}{{ i }},{% endfor %}",
                ),
            ],
            10_000_000,
        );
        let buffers = Pool::new(
            "render_buffers",
            crate::pool::PoolSpec::new(2),
            BufferManager,
        )
        .unwrap();
        let resources = Resources {
            codecs: Codecs::direct(),
            buffers: Some(buffers.clone()),
        };
        let limits = Limits {
            max_output: 1 << 20,
            fuel: 0,
            min_compress: 0,
        };
        let none = ctx(serde_json::json!({}));
        let first = render(&env, &request("small.txt", &none), &limits, &resources).unwrap();
        let second = render(&env, &request("small.txt", &none), &limits, &resources).unwrap();
        assert_eq!(first.body, second.body);
        let stats = buffers.stats();
        assert_eq!((stats.created, stats.recycled, stats.idle), (1, 2, 1));
        assert!(
            stats.idle_bytes >= first.body.len() as u64,
            "capacity is kept"
        );
        let large = render(&env, &request("large.txt", &none), &limits, &resources).unwrap();
        assert!(large.body.len() > MAX_KEPT_BUFFER);
        let stats = buffers.stats();
        assert_eq!(stats.discarded(crate::pool::DiscardReason::Recycle), 1);
        assert_eq!(stats.idle, 0);
    }

    fn ctx(json: serde_json::Value) -> minijinja::Value {
        minijinja::Value::from(minijinja::value::Serde(&json))
    }

    #[test]
    fn templates_render_escapes_html_and_tags_the_bytes() {
        let env = env(&[("page.html", "<p>{{ who }}</p>")], 100_000);
        let who = ctx(serde_json::json!({"who": "<b>"}));
        let limits = Limits {
            max_output: 1024,
            ..LIMITS
        };
        let out = render_direct(&env, request("page.html", &who), limits).unwrap();
        assert_eq!(&out.body[..], b"<p>&lt;b&gt;</p>");
        assert_eq!(out.etag, etag(b"<p>&lt;b&gt;</p>"));
        assert!(out.gzip.is_none());
    }

    #[test]
    fn templates_render_stops_endless_loops_and_huge_output() {
        let env = env(
            &[
                (
                    "loop.txt",
                    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                ),
                (
                    "huge.txt",
                    "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
                ),
                ("bad.txt", "{% include 'nowhere.txt' %}"),
            ],
            200_000,
        );
        let none = ctx(serde_json::json!({}));
        assert!(matches!(
            render_direct(
                &env,
                request("loop.txt", &none),
                Limits {
                    fuel: 200_000,
                    ..LIMITS
                }
            ),
            Err(RenderError::OutOfFuel { fuel: 200_000, .. })
        ));
        let mut env = env;
        env.set_fuel(None);
        assert!(matches!(
            render_direct(&env, request("huge.txt", &none), LIMITS),
            Err(RenderError::TooLarge { limit: 1048576, .. })
        ));
        match render_direct(&env, request("bad.txt", &none), LIMITS) {
            Err(RenderError::Failed { name, message }) => {
                assert_eq!(name, "bad.txt");
                assert!(message.contains("nowhere.txt"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            render_direct(&env, request("missing.txt", &none), LIMITS).unwrap_err(),
            RenderError::NotFound("missing.txt".into())
        );
    }

    #[test]
    fn templates_render_compresses_when_it_pays() {
        let env = env(
            &[(
                "long.txt",
                "{% for i in range(500) %}line {{ i }}\n{% endfor %}",
            )],
            1_000_000,
        );
        let none = ctx(serde_json::json!({}));
        let out = render_direct(
            &env,
            Request {
                want_gzip: true,
                ..request("long.txt", &none)
            },
            Limits {
                min_compress: 1024,
                ..LIMITS
            },
        )
        .unwrap();
        let gzip = out.gzip.expect("compressible");
        assert!(gzip.len() < out.body.len() / 2);
        assert_ne!(out.gzip_etag.as_deref(), Some(out.etag.as_str()));
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut inflated)
            .unwrap();
        assert_eq!(inflated, out.body);
        // Under min_compress: no gzip.
        assert!(
            render_direct(
                &env,
                Request {
                    want_gzip: true,
                    ..request("long.txt", &none)
                },
                Limits {
                    min_compress: 1 << 20,
                    ..LIMITS
                }
            )
            .unwrap()
            .gzip
            .is_none()
        );
    }
}
