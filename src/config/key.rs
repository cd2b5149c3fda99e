//! What a key is: its [`Kind`] (what is allowed, for checks, errors and the configuration
//! reference in docs/configuration.md), the untyped [`Key`] the layers parse against, and
//! the [`TypedKey`] that [`Opts`] is built through.
//!
//! A key's kind and the Rust type read from it must agree: an int key read as a `bool`
//! would always read `false`. So a kind is only ever named through a [`Typed`] constant or
//! function below (`BOOL: Typed<bool>`, `int(..): Typed<u64>`), and [`key`] and [`unset`]
//! carry its type into the key they make. A key with a compiled default reads as `T`; a
//! key unset by default reads as `Option<T>`, so the type says whether a value is always
//! there.
//!
//! [`Opts`]: super::Opts

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::keys::{BUILTIN_POOLS, pool_field_names};
use super::opts::AdminBind;
use super::value::{AlertSpec, PoolOverride};

/// The kind of a key's value and what is allowed.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    /// A whole number in `min..=max`, in `unit`.
    Int {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// Non-empty printable text (it may end up in a header).
    Text,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A list of words: comma-separated in the environment and flags, an array of strings
    /// in TOML.
    List,
    /// A list of words from a fixed set, each at most once (in the same forms as
    /// [`Kind::List`]); read as the words in their order.
    Words(&'static [&'static str]),
    /// A list of URL path patterns (in the same forms as [`Kind::List`]): each starts
    /// with `/`, and `*` is its only special character.
    Patterns,
    /// A bare file name: no slashes, not `.` or `..`.
    FileName,
    /// An `http://` or `https://` URL.
    Url,
    /// `[[monitoring.alerts]]` tables (config files only).
    Alerts,
    /// `[pools.overrides.<pool>]` tables (config files only).
    PoolOverrides,
    /// An `ip:port` socket address.
    Addr,
    /// Where a listener binds: an `ip:port`, `unix:PATH`, or `serving` (the serving
    /// listener).
    Listen,
    /// A filesystem path that must be an existing directory.
    Dir,
    /// A filesystem path (created when needed).
    Path,
}

impl Kind {
    /// What is allowed, for error messages and docs/configuration.md.
    pub fn allowed(self) -> String {
        match self {
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max, unit } => format!("a whole number of {unit} from {min} to {max}"),
            Kind::Text => "non-empty printable text".into(),
            Kind::Choice(words) => words.join(" or "),
            Kind::List => "a comma-separated list of words".into(),
            Kind::Words(words) => format!(
                "a comma-separated list of any of {}, each at most once",
                words.join(", ")
            ),
            Kind::Patterns => "a comma-separated list of paths starting with /, with * as the only wildcard and at least one *".into(),
            Kind::FileName => "a file name without slashes".into(),
            Kind::Url => "an http:// or https:// URL".into(),
            Kind::Alerts => "[[monitoring.alerts]] tables in a config file, each with a name and any of metric, comparison (> >= < <=), threshold, for, cooldown, over (seconds), severity (info, warning, critical), message, min_requests, enabled".into(),
            Kind::PoolOverrides => format!("[pools.overrides.<pool>] tables in a config file, <pool> one of {}, each with any of {}", BUILTIN_POOLS.join(", "), pool_field_names()),
            Kind::Addr => "an address:port such as 127.0.0.1:8080".into(),
            Kind::Listen => "an address:port such as 127.0.0.1:8081, unix:PATH for a Unix socket, or serving".into(),
            Kind::Dir => "a path to an existing directory".into(),
            Kind::Path => "a filesystem path".into(),
        }
    }
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// `section.name`, as written in the TOML files.
    pub path: &'static str,
    /// The environment variable that sets it.
    pub env: &'static str,
    pub kind: Kind,
    /// Compiled default, written as in an environment variable; `None`: unset by default.
    pub default: Option<&'static str>,
    /// Redacted when printed.
    pub secret: bool,
    pub help: &'static str,
}

/// A [`Kind`] together with the Rust type a key of that kind is read as.
pub(crate) struct Typed<T> {
    kind: Kind,
    read_as: PhantomData<fn() -> T>,
}

/// The only way to pair a kind with a type; private, so the pairs below are all there are.
const fn typed<T>(kind: Kind) -> Typed<T> {
    Typed {
        kind,
        read_as: PhantomData,
    }
}

pub(crate) const BOOL: Typed<bool> = typed(Kind::Bool);
pub(crate) const TEXT: Typed<String> = typed(Kind::Text);
pub(crate) const LIST: Typed<Vec<String>> = typed(Kind::List);
pub(crate) const PATTERNS: Typed<Vec<String>> = typed(Kind::Patterns);
pub(crate) const FILE_NAME: Typed<String> = typed(Kind::FileName);
pub(crate) const URL: Typed<String> = typed(Kind::Url);
pub(crate) const ALERTS: Typed<Vec<AlertSpec>> = typed(Kind::Alerts);
pub(crate) const POOL_OVERRIDES: Typed<Vec<PoolOverride>> = typed(Kind::PoolOverrides);
pub(crate) const ADDR: Typed<SocketAddr> = typed(Kind::Addr);
pub(crate) const LISTEN: Typed<AdminBind> = typed(Kind::Listen);
pub(crate) const DIR: Typed<PathBuf> = typed(Kind::Dir);
pub(crate) const PATH: Typed<PathBuf> = typed(Kind::Path);

/// A whole number in `min..=max`, in `unit`.
pub(crate) const fn int(min: u64, max: u64, unit: &'static str) -> Typed<u64> {
    typed(Kind::Int { min, max, unit })
}

/// Words from `words`, each at most once, in the order given.
pub(crate) const fn words(words: &'static [&'static str]) -> Typed<Vec<String>> {
    typed(Kind::Words(words))
}

/// One of the words of `T`, read as `T`.
pub(crate) const fn choice<T: Choice>() -> Typed<T> {
    typed(Kind::Choice(T::WORDS))
}

/// An enum a [`Kind::Choice`] key is read as.
pub(crate) trait Choice: Sized {
    /// Every word, in the order error messages and docs/configuration.md list them.
    const WORDS: &'static [&'static str];

    /// The value a word names; `Some` for each of [`Choice::WORDS`].
    fn from_word(word: &str) -> Option<Self>;
}

/// A key of the table, typed by what [`Opts`](super::Opts) reads from it: `T` when it has
/// a compiled default, `Option<T>` when it is unset by default. Only the table in
/// [`keys`](super::keys) makes them.
pub struct TypedKey<T> {
    pub(crate) key: Key,
    read_as: PhantomData<fn() -> T>,
}

impl<T> TypedKey<T> {
    /// `section.name`, as written in the TOML files.
    pub const fn path(&self) -> &'static str {
        self.key.path
    }

    /// The untyped key, as listed in [`KEYS`](super::KEYS).
    pub const fn key(&self) -> &Key {
        &self.key
    }

    /// The same key, redacted when printed.
    pub(crate) const fn secret(mut self) -> Self {
        self.key.secret = true;
        self
    }
}

/// A key with a compiled default, written as in an environment variable.
pub(crate) const fn key<T>(
    path: &'static str,
    env: &'static str,
    kind: Typed<T>,
    default: &'static str,
    help: &'static str,
) -> TypedKey<T> {
    TypedKey {
        key: Key {
            path,
            env,
            kind: kind.kind,
            default: Some(default),
            secret: false,
            help,
        },
        read_as: PhantomData,
    }
}

/// A key unset by default.
pub(crate) const fn unset<T>(
    path: &'static str,
    env: &'static str,
    kind: Typed<T>,
    help: &'static str,
) -> TypedKey<Option<T>> {
    TypedKey {
        key: Key {
            path,
            env,
            kind: kind.kind,
            default: None,
            secret: false,
            help,
        },
        read_as: PhantomData,
    }
}
