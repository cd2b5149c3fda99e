//! Values: what a layer parsed ([`Value`], kept with its source as a [`Setting`]) and the
//! typed reads [`Opts`](super::Opts) is built from ([`Values`]).
//!
//! Every value in the settings was parsed and checked against its key's kind, and a
//! [`TypedKey`] is read only as the type of its kind, so converting a [`Value`] back to
//! that type cannot fail; if it ever did, the read panics naming the key rather than
//! quietly reading 0, `false` or `""`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::Source;
use super::key::{Choice, Key, TypedKey};
use super::opts::AdminBind;

/// A parsed, checked value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(u64),
    Text(String),
    List(Vec<String>),
    Alerts(Vec<AlertSpec>),
    PoolOverrides(Vec<PoolOverride>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
            Value::List(words) => f.write_str(&words.join(",")),
            Value::PoolOverrides(overrides) => {
                let names: Vec<&str> = overrides.iter().map(|o| o.pool.as_str()).collect();
                write!(f, "{}", names.join(", "))
            }
            Value::Alerts(specs) => {
                let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
                write!(f, "{} rule(s): {}", specs.len(), names.join(", "))
            }
        }
    }
}

/// One `[pools.overrides.<pool>]` table: the values it changes, by `[pools]` key name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolOverride {
    pub pool: String,
    /// (field, value): whole numbers, and `autoscale` as 0 or 1.
    pub values: Vec<(&'static str, u64)>,
}

/// One `[[monitoring.alerts]]` table: changes to a default rule of the same name, or a new
/// rule (which then needs `metric`, `comparison` and `threshold`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertSpec {
    pub name: String,
    pub metric: Option<String>,
    pub comparison: Option<crate::alerts::Comparison>,
    pub threshold: Option<f64>,
    pub for_seconds: Option<u64>,
    pub cooldown_seconds: Option<u64>,
    pub over_seconds: Option<u64>,
    pub severity: Option<crate::alerts::Severity>,
    pub message: Option<String>,
    pub min_requests: Option<u64>,
    /// `false` removes the rule.
    pub enabled: Option<bool>,
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub value: Value,
    pub source: Source,
}

/// The winning settings, read through typed keys.
///
/// It remembers every key read (one set insert per key, once at start), so a test can
/// build [`Opts`](super::Opts) and name any key of the table that was never read.
pub(crate) struct Values<'a> {
    settings: &'a BTreeMap<&'static str, Setting>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Values<'a> {
    /// Reads `settings`, which hold every key with a compiled default.
    pub(crate) fn new(settings: &'a BTreeMap<&'static str, Setting>) -> Self {
        Values {
            settings,
            read: RefCell::default(),
        }
    }

    /// The value of `key`: `T` for a key with a compiled default, `Option<T>` for one
    /// unset by default.
    pub(crate) fn get<T: Read>(&self, key: &TypedKey<T>) -> T {
        self.read.borrow_mut().insert(key.path());
        T::read(&key.key, self.settings.get(key.path()).map(|s| &s.value))
    }

    /// The keys of the table not read so far.
    #[cfg(test)]
    pub(crate) fn unread(&self) -> Vec<&'static str> {
        let read = self.read.borrow();
        super::keys::KEYS
            .iter()
            .map(|key| key.path)
            .filter(|path| !read.contains(path))
            .collect()
    }
}

/// What a typed key reads as: a [`FromValue`] type when the key has a compiled default,
/// or an `Option` of one when it is unset by default.
pub(crate) trait Read: Sized {
    /// Converts `key`'s setting, `None` when it is unset.
    fn read(key: &Key, value: Option<&Value>) -> Self;
}

impl<T: FromValue> Read for T {
    fn read(key: &Key, value: Option<&Value>) -> Self {
        match value {
            Some(value) => convert(key, value),
            None => panic!("`{}` has a compiled default, so it is always set", key.path),
        }
    }
}

impl<T: FromValue> Read for Option<T> {
    fn read(key: &Key, value: Option<&Value>) -> Self {
        value.map(|value| convert(key, value))
    }
}

fn convert<T: FromValue>(key: &Key, value: &Value) -> T {
    T::from_value(value).unwrap_or_else(|| {
        panic!(
            "`{}` holds {value:?}, which its kind ({:?}) does not allow",
            key.path, key.kind
        )
    })
}

/// A type one kind of [`Value`] converts to.
pub(crate) trait FromValue: Sized {
    /// `None` when `value` is of another kind.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromValue for u64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<String> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::List(words) => Some(words.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<AlertSpec> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Alerts(specs) => Some(specs.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<PoolOverride> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::PoolOverrides(overrides) => Some(overrides.clone()),
            _ => None,
        }
    }
}

impl FromValue for SocketAddr {
    fn from_value(value: &Value) -> Option<Self> {
        String::from_value(value)?.parse().ok()
    }
}

impl FromValue for AdminBind {
    fn from_value(value: &Value) -> Option<Self> {
        AdminBind::parse(&String::from_value(value)?)
    }
}

impl FromValue for PathBuf {
    fn from_value(value: &Value) -> Option<Self> {
        String::from_value(value).map(PathBuf::from)
    }
}

impl<T: Choice> FromValue for T {
    fn from_value(value: &Value) -> Option<Self> {
        T::from_word(&String::from_value(value)?)
    }
}
