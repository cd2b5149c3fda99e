//! [`TemplateError`]: why a template, the global context or a variable is not usable.
//!
//! Each variant keeps its context in typed fields; foreign causes (the operating system's,
//! minijinja's, a parser's) are kept as their message, since those types are neither
//! `Clone` nor comparable. The `Display` text is what `/admin/templates` lists and what
//! the log says; it serializes as that text.
//!
//! A `TemplateError` is as small as the `String` message it replaced (24 bytes, `Option`
//! and `Result<Arc<str>, _>` included): every template's listing and source hold one, so
//! messages are `Box<str>` and larger payloads are boxed.

use std::num::NonZeroU32;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use super::chain::ChainError;
use super::flatten::FlattenError;

/// Why a template, the global context or a variable cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A file could not be read; `reason` is the operating system's.
    #[error("{reason}")]
    Read {
        /// The operating system's message.
        reason: Box<str>,
    },
    /// A template file is larger than the engine reads.
    #[error("{bytes} bytes is over the {limit}-byte limit for a template")]
    TooLarge {
        /// The file's size.
        bytes: u64,
        /// The most the engine reads.
        limit: u64,
    },
    /// A template file is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// minijinja does not compile the source; `line` is where, when it says.
    #[error("{}", syntax_text(*line, message))]
    Syntax {
        /// The line, when minijinja says.
        line: Option<NonZeroU32>,
        /// minijinja's message.
        message: Box<str>,
    },
    /// The template's extends chain cannot be resolved.
    #[error(transparent)]
    Chain(Box<ChainError>),
    /// The flattener refused the chain: the template is served through minijinja's own
    /// inheritance.
    #[error("{reason}")]
    Unflattenable {
        /// Why.
        reason: Box<str>,
    },
    /// The flattened source does not compile (it always should); the template is served
    /// unflattened.
    #[error("the flattened source does not compile: {message}")]
    FlattenedSource {
        /// minijinja's message.
        message: Box<str>,
    },
    /// The global context file does not parse as TOML or JSON.
    #[error("{reason}")]
    ContextSyntax {
        /// The parser's message.
        reason: Box<str>,
    },
    /// The global context's top level is not a table of variables.
    #[error("the top level must be a table of variables")]
    ContextNotATable,
    /// A data file (`data/<name>.json`) cannot be read or is not JSON.
    #[error(transparent)]
    DataFile(Box<DataFileError>),
    /// A value the application computes could not be turned into a template value.
    #[error("{reason}")]
    Value {
        /// Why.
        reason: Box<str>,
    },
    /// minijinja panicked while rendering the template (it does on some templates, such
    /// as a `break` inside `with` inside `for` in 3.1); `message` is the panic's.
    #[error("the template engine panicked while rendering it: {message}")]
    RenderPanicked {
        /// The panic's message.
        message: Box<str>,
    },
}

/// Why a data file's value could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataFileError {
    /// The file could not be read; `reason` is the operating system's.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable {
        /// The data file (`data/<name>.json` under `templates.dir`).
        path: PathBuf,
        /// The operating system's answer.
        reason: String,
    },
    /// The file is not JSON; `reason` is the parser's.
    #[error("{} is not valid JSON: {reason}", path.display())]
    NotJson {
        /// The data file (`data/<name>.json` under `templates.dir`).
        path: PathBuf,
        /// The JSON parser's message.
        reason: String,
    },
}

impl TemplateError {
    /// A compile error of minijinja's, with its line when it has one.
    pub fn syntax(error: &minijinja::Error) -> TemplateError {
        TemplateError::Syntax {
            line: error
                .line()
                .and_then(|line| u32::try_from(line).ok())
                .and_then(NonZeroU32::new),
            message: error.to_string().into(),
        }
    }
}

impl From<ChainError> for TemplateError {
    fn from(error: ChainError) -> TemplateError {
        TemplateError::Chain(Box::new(error))
    }
}

impl From<DataFileError> for TemplateError {
    fn from(error: DataFileError) -> TemplateError {
        TemplateError::DataFile(Box::new(error))
    }
}

impl From<FlattenError> for TemplateError {
    fn from(error: FlattenError) -> TemplateError {
        match error {
            FlattenError::Chain(error) => error.into(),
            FlattenError::Unflattenable(why) => TemplateError::Unflattenable {
                reason: why.reason.into(),
            },
        }
    }
}

impl Serialize for TemplateError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn syntax_text(line: Option<NonZeroU32>, message: &str) -> String {
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_error_syntax_names_the_line() {
        let error = minijinja::Environment::new()
            .template_from_str("ok\n{% if %}")
            .unwrap_err();
        let typed = TemplateError::syntax(&error);
        assert!(matches!(typed, TemplateError::Syntax { line: Some(line), .. } if line.get() == 2));
        assert_eq!(typed.to_string(), format!("line 2: {error}"));
    }

    #[test]
    fn template_error_is_as_small_as_the_message_it_replaced() {
        use std::mem::size_of;
        use std::sync::Arc;
        assert_eq!(
            size_of::<Option<TemplateError>>(),
            size_of::<Option<String>>()
        );
        assert_eq!(
            size_of::<Result<Arc<str>, TemplateError>>(),
            size_of::<Result<Arc<str>, String>>()
        );
    }

    #[test]
    fn template_error_serializes_as_its_message() {
        let error = TemplateError::TooLarge { bytes: 9, limit: 4 };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            "9 bytes is over the 4-byte limit for a template"
        );
    }

    #[test]
    fn template_error_flatten_refusals_keep_their_reason() {
        let refusal = crate::templates::flatten::Unflattenable {
            template: "page.html".into(),
            reason: "has more than one {% extends %}".into(),
        };
        let error = TemplateError::from(FlattenError::Unflattenable(refusal));
        assert_eq!(error.to_string(), "has more than one {% extends %}");
    }
}
