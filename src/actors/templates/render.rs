//! One render, with its limits: minijinja's fuel bounds the instructions a render may
//! execute (a template that loops forever stops with [`RenderError::OutOfFuel`]), and a
//! counting writer bounds its output (one that renders gigabytes stops at
//! `max_output_bytes` with [`RenderError::TooLarge`]). The rendered bytes get a strong
//! ETag (xxh3 of the bytes) and, when the client takes gzip and compression pays, a gzip
//! copy. Blocking: the caller runs it on the blocking pool.

use std::io::{self, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use minijinja::{Environment, ErrorKind};

/// A rendered template, ready to send.
#[derive(Clone, Debug)]
pub struct Rendered {
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
pub enum RenderError {
    /// No template has this name.
    #[error("no template named {0:?}")]
    NotFound(String),
    /// The template exists but could not be loaded, and no earlier version is in service.
    #[error("template {name:?} failed to load: {message}")]
    Broken { name: String, message: String },
    /// The render executed more instructions than `templates.max_fuel`.
    #[error("rendering {name:?} was stopped after {fuel} instructions (templates.max_fuel)")]
    OutOfFuel { name: String, fuel: u64 },
    /// The output grew past `templates.max_output_bytes`.
    #[error(
        "rendering {name:?} was stopped at {limit} bytes of output (templates.max_output_bytes)"
    )]
    TooLarge { name: String, limit: u64 },
    /// The template failed while rendering with this context (a type error, a missing
    /// include, an error raised by a filter).
    #[error("rendering {name:?} failed: {message}")]
    Failed { name: String, message: String },
    /// The request's context is not usable (not a JSON object, too large, malformed).
    #[error("{0}")]
    BadContext(String),
    /// Templates are switched off or their store is gone.
    #[error("templates are unavailable: {0}")]
    Unavailable(String),
}

/// Renders `name` from `env` with `context`, stopping at `max_output` bytes; compresses
/// when `want_gzip` and the output has at least `min_compress` bytes.
pub fn render(
    env: &Environment<'static>,
    name: &str,
    context: &minijinja::Value,
    max_output: u64,
    fuel: u64,
    want_gzip: bool,
    min_compress: u64,
) -> Result<Rendered, RenderError> {
    let template = env.get_template(name).map_err(|error| match error.kind() {
        ErrorKind::TemplateNotFound => RenderError::NotFound(name.to_owned()),
        _ => RenderError::Failed {
            name: name.to_owned(),
            message: describe(&error),
        },
    })?;
    let mut out = Bounded {
        bytes: Vec::new(),
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
    let mut body = out.bytes;
    body.shrink_to_fit();
    let gzip = (want_gzip && body.len() as u64 >= min_compress)
        .then(|| compress(&body))
        .flatten();
    Ok(Rendered {
        etag: etag(&body),
        gzip_etag: gzip.as_deref().map(etag),
        body: Bytes::from(body),
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

fn compress(body: &[u8]) -> Option<Bytes> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::default());
    encoder.write_all(body).ok()?;
    let mut gzip = encoder.finish().ok()?;
    gzip.shrink_to_fit();
    ((gzip.len() as u64) * 10 <= (body.len() as u64) * 9).then(|| Bytes::from(gzip))
}

/// A strong ETag: the xxh3 of the bytes, quoted.
pub fn etag(bytes: &[u8]) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// Collects output up to a limit; past it every write fails, which stops the render.
struct Bounded {
    bytes: Vec<u8>,
    limit: u64,
    exceeded: bool,
}

impl Write for Bounded {
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

    fn ctx(json: serde_json::Value) -> minijinja::Value {
        minijinja::Value::from(minijinja::value::Serde(&json))
    }

    #[test]
    fn templates_render_escapes_html_and_tags_the_bytes() {
        let env = env(&[("page.html", "<p>{{ who }}</p>")], 100_000);
        let out = render(
            &env,
            "page.html",
            &ctx(serde_json::json!({"who": "<b>"})),
            1024,
            0,
            false,
            0,
        )
        .unwrap();
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
            render(&env, "loop.txt", &none, 1 << 20, 200_000, false, 0),
            Err(RenderError::OutOfFuel { fuel: 200_000, .. })
        ));
        let mut env = env;
        env.set_fuel(None);
        assert!(matches!(
            render(&env, "huge.txt", &none, 1 << 20, 0, false, 0),
            Err(RenderError::TooLarge { limit: 1048576, .. })
        ));
        match render(&env, "bad.txt", &none, 1 << 20, 0, false, 0) {
            Err(RenderError::Failed { name, message }) => {
                assert_eq!(name, "bad.txt");
                assert!(message.contains("nowhere.txt"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            render(&env, "missing.txt", &none, 1 << 20, 0, false, 0).unwrap_err(),
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
        let out = render(&env, "long.txt", &none, 1 << 20, 0, true, 1024).unwrap();
        let gzip = out.gzip.expect("compressible");
        assert!(gzip.len() < out.body.len() / 2);
        assert_ne!(out.gzip_etag.as_deref(), Some(out.etag.as_str()));
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut inflated)
            .unwrap();
        assert_eq!(inflated, out.body);
        // Under min_compress: no gzip.
        assert!(
            render(&env, "long.txt", &none, 1 << 20, 0, true, 1 << 20)
                .unwrap()
                .gzip
                .is_none()
        );
    }
}
