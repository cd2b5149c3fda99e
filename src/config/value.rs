//! Values: what a layer parsed ([`Value`]), kept with its source as a [`Setting`].

use std::fmt;

use super::Source;

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

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub value: Value,
    pub source: Source,
}
