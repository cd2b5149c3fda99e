//! What a key is: its [`Kind`] (what is allowed, for checks, errors and the README) and
//! the [`Key`] the layers parse against.

use super::keys::{BUILTIN_POOLS, POOL_FIELDS};

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
    /// What is allowed, for error messages and the README.
    pub fn allowed(self) -> String {
        match self {
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max, unit } => format!("a whole number of {unit} from {min} to {max}"),
            Kind::Text => "non-empty printable text".into(),
            Kind::Choice(words) => words.join(" or "),
            Kind::List => "a comma-separated list of words".into(),
            Kind::FileName => "a file name without slashes".into(),
            Kind::Url => "an http:// or https:// URL".into(),
            Kind::Alerts => "[[monitoring.alerts]] tables in a config file, each with a name and any of metric, comparison (> >= < <=), threshold, for, cooldown, over (seconds), severity (info, warning, critical), message, min_requests, enabled".into(),
            Kind::PoolOverrides => format!("[pools.overrides.<pool>] tables in a config file, <pool> one of {}, each with any of {}", BUILTIN_POOLS.join(", "), POOL_FIELDS.join(", ")),
            Kind::Addr => "an address:port such as 127.0.0.1:8080".into(),
            Kind::Listen => "an address:port such as 127.0.0.1:8081, unix:PATH for a Unix socket, or serving".into(),
            Kind::Dir => "a path to an existing directory".into(),
            Kind::Path => "a filesystem path".into(),
        }
    }
}

/// One configuration key.
#[derive(Debug)]
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
