//! Configuration: layered sources resolved once, at start, into validated [`Opts`].
//!
//! Precedence, highest first: command-line flags, environment variables,
//! `config/<profile>.toml`, `config/default.toml`, compiled defaults. The profile (dev,
//! test, prod; default dev) comes from `--env` or `LEANSERVE_ENV`.
//!
//! Every key is declared once, in [`keys`], with its kind, range, environment variable and
//! compiled default. Each layer is parsed and checked against that table as it is read, so
//! a bad value names its key, where it came from and what is allowed, whichever layer it
//! is in; the table also drives `leanserve config` (each value with its source) and the
//! configuration table of docs/configuration.md, which a test keeps in step. Options that
//! must fit together are checked once all layers are in, by the same functions
//! [`Opts::validate`] runs on options built in code, which the runtime calls before it
//! starts.
//!
//! # Why typed keys
//!
//! Each key is a constant such as [`keys::SERVER_WORKERS`], a [`TypedKey`]`<Option<u64>>`:
//! one typed kind fixes both what the layers accept and the Rust type read (`int(..)`
//! reads a `u64`, `BOOL` a `bool`, `LISTEN` an [`AdminBind`]), and a key without a
//! compiled default reads as an `Option`. [`Opts`] is built by
//! `values.get(&keys::SERVER_WORKERS)`, so a misspelt key is an unknown constant and a
//! read as the wrong type is a type error, both at compile time, where reading by string
//! gave 0, `false` or `""` without a word. The value store remembers every key read; a
//! test builds [`Opts`] and fails on any key of the table that was never read. A
//! `macro_rules!` table, not a derive on [`Opts`], because the struct does not mirror the
//! keys: several keys feed one field (`tuner.enabled` and `tuner.mode`), one key feeds
//! several (`limiter.min_limit` is both where a limit starts and its floor), and values change unit and shape on the way.
//!
//! # Layout
//!
//! - `key`: kinds, [`Key`], and [`TypedKey`], which ties a kind to the type read;
//! - [`keys`]: the key table, one typed constant per key, and [`KEYS`](keys::KEYS);
//! - `value`: parsed values, their sources, and typed reads that remember what was read;
//! - `parse`: one value from text or TOML, checked against its key;
//! - `load`: the layers, [`Config::load`] and the rows of `leanserve config`;
//! - `opts`: [`Opts`] and its parts, one per subsystem;
//! - `build`: [`Opts`] from the winning settings;
//! - `validate`: checks across keys, shared by [`Config::load`] and [`Opts::validate`];
//! - `tests`: the tests of all of the above, and docs/configuration.md's table.

mod build;
mod key;
pub mod keys;
mod load;
mod opts;
mod parse;
mod validate;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use key::TypedKey;
pub use keys::BUILTIN_POOLS;
pub use load::{Config, LoadOptions};
pub use opts::{
    AdminBind, AdminOpts, Admission, ContextOptimizerOpts, LimiterOpts, MemoryOptimizerOpts,
    MonitoringOpts, Opts, PoolOpts, ProcessOpts, ProfilerOpts, ServerOpts, StaticFileOpts, Store,
    SupervisorOpts, TemplateOpts, TunerMode, TunerOpts,
};

/// The profile used when neither `--env` nor `LEANSERVE_ENV` names one.
pub const DEFAULT_PROFILE: Profile = Profile::Dev;
/// Environment variable that selects the profile.
pub const PROFILE_ENV: &str = "LEANSERVE_ENV";
/// Folder of the configuration files, relative to the working directory.
pub const DEFAULT_CONFIG_DIR: &str = "config";

/// A deployment profile: selects `config/<profile>.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// Development: verbose, short intervals.
    Dev,
    /// The test suite's.
    Test,
    /// Production.
    Prod,
}

impl Profile {
    /// Every profile, in the order docs/configuration.md lists them.
    pub const ALL: [Profile; 3] = [Profile::Dev, Profile::Test, Profile::Prod];

    /// The profile as `--env` and `LEANSERVE_ENV` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Prod => "prod",
        }
    }

    fn parse(text: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == text)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Compiled into leanserve.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag, as written (`--bind`, `--set server.workers=4`).
    Flag(String),
    /// A field of an [`Opts`] set in code, found by [`Opts::validate`].
    Code,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("compiled default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Code => f.write_str("options set in code"),
        }
    }
}

/// A configuration mistake; start-up stops on any of them (the binary exits with code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value of the wrong type or out of range.
    #[error("invalid value for `{key}` from {origin}: {value:?} (allowed: {allowed})")]
    Invalid {
        /// The key, as `section.name`.
        key: String,
        /// Where the value came from.
        origin: Source,
        /// The value as given.
        value: String,
        /// What the key takes.
        allowed: String,
    },
    /// A `--set` flag or command-line override for a key that does not exist.
    #[error("unknown configuration key `{key}` from {origin}")]
    UnknownKey {
        /// The key as given.
        key: String,
        /// Where it came from.
        origin: Source,
    },
    /// A configuration file exists but cannot be read.
    #[error("cannot read {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        message: String,
    },
    /// A configuration file is not valid TOML.
    #[error("{} is not valid TOML: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// `--config` names a folder that does not exist.
    #[error("configuration folder {} (from {origin}) does not exist", path.display())]
    MissingDir {
        /// The folder.
        path: PathBuf,
        /// Where it was named.
        origin: Source,
    },
    /// Settings that would leave the admin surface open; `reason` names the keys.
    #[error("refusing to start: {reason}")]
    Insecure {
        /// Which keys, and what to set.
        reason: String,
    },
}
