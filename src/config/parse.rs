//! Parsing one value, from text (environment, flag, compiled default) or from TOML, and
//! checking it against its key's kind and range, the same way in every layer.

use std::net::SocketAddr;

use super::key::{Key, Kind};
use super::keys::{BUILTIN_POOLS, POOL_FIELDS, pool_field_names};
use super::opts::AdminBind;
use super::value::{AlertSpec, PoolOverride, Value};
use super::{ConfigError, Source};

pub(super) fn invalid(key: &Key, source: &Source, value: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.path.to_owned(),
        origin: source.clone(),
        value: value.into(),
        allowed: key.kind.allowed(),
    }
}

/// Parses a value written as text (environment, flag, compiled default).
pub(super) fn parse_text(key: &Key, text: &str, source: &Source) -> Result<Value, ConfigError> {
    let trimmed = text.trim();
    let value = match key.kind {
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(invalid(key, source, text)),
        },
        Kind::Int { .. } => Value::Int(trimmed.parse().map_err(|_| invalid(key, source, text))?),
        Kind::List | Kind::Words(_) | Kind::Patterns => Value::List(split_list(trimmed)),
        Kind::Text
        | Kind::Choice(_)
        | Kind::FileName
        | Kind::Addr
        | Kind::Listen
        | Kind::Dir
        | Kind::Path
        | Kind::Url => Value::Text(trimmed.to_owned()),
        Kind::Alerts | Kind::PoolOverrides => return Err(invalid(key, source, text)),
    };
    check(key, value, source)
}

/// Parses a value from a TOML file, where types are explicit.
pub(super) fn parse_toml(
    key: &Key,
    raw: &toml::Value,
    source: &Source,
) -> Result<Value, ConfigError> {
    let value = match (key.kind, raw) {
        (Kind::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (Kind::Int { .. }, toml::Value::Integer(n)) => {
            Value::Int(u64::try_from(*n).map_err(|_| invalid(key, source, raw.to_string()))?)
        }
        (Kind::List | Kind::Words(_) | Kind::Patterns, toml::Value::Array(items)) => {
            let words: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(|word| word.trim().to_owned()))
                .collect();
            Value::List(words.ok_or_else(|| invalid(key, source, raw.to_string()))?)
        }
        (Kind::List | Kind::Words(_) | Kind::Patterns, toml::Value::String(s)) => {
            Value::List(split_list(s))
        }
        (
            Kind::Text
            | Kind::Choice(_)
            | Kind::FileName
            | Kind::Addr
            | Kind::Listen
            | Kind::Dir
            | Kind::Path
            | Kind::Url,
            toml::Value::String(s),
        ) => Value::Text(s.clone()),
        (Kind::PoolOverrides, toml::Value::Table(tables)) => Value::PoolOverrides(
            tables
                .iter()
                .map(|(pool, table)| parse_pool_override(key, pool, table, source))
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Alerts, toml::Value::Array(tables)) => Value::Alerts(
            tables
                .iter()
                .enumerate()
                .map(|(index, table)| parse_alert(key, index, table, source))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(invalid(key, source, raw.to_string())),
    };
    check(key, value, source)
}

/// Parses one `[pools.overrides.<pool>]` table; errors name the field
/// (`pools.overrides.gzip.max_size`).
fn parse_pool_override(
    key: &Key,
    pool: &str,
    raw: &toml::Value,
    source: &Source,
) -> Result<PoolOverride, ConfigError> {
    let field_error = |field: &str, value: String, allowed: String| ConfigError::Invalid {
        key: format!(
            "{}.{pool}{}",
            key.path,
            if field.is_empty() {
                String::new()
            } else {
                format!(".{field}")
            }
        ),
        origin: source.clone(),
        value,
        allowed,
    };
    if !BUILTIN_POOLS.contains(&pool) {
        return Err(field_error(
            "",
            pool.to_owned(),
            format!(
                "one of leanserve's pools: {} (a host application's pools take their options in code)",
                BUILTIN_POOLS.join(", ")
            ),
        ));
    }
    let Some(table) = raw.as_table() else {
        return Err(field_error(
            "",
            raw.to_string(),
            "a table of pool options".into(),
        ));
    };
    let mut values = Vec::new();
    for (field, value) in table {
        let Some((name, pools_key)) = POOL_FIELDS.iter().find(|(name, _)| *name == field.as_str())
        else {
            return Err(field_error(
                field,
                value.to_string(),
                format!("one of the fields {}", pool_field_names()),
            ));
        };
        let number = match (pools_key.kind, value) {
            (Kind::Bool, toml::Value::Boolean(b)) => Some(u64::from(*b)),
            (Kind::Int { min, max, .. }, toml::Value::Integer(n)) => {
                u64::try_from(*n).ok().filter(|n| (min..=max).contains(n))
            }
            _ => None,
        };
        let number = number
            .ok_or_else(|| field_error(field, value.to_string(), pools_key.kind.allowed()))?;
        values.push((*name, number));
    }
    Ok(PoolOverride {
        pool: pool.to_owned(),
        values,
    })
}

/// Parses one `[[monitoring.alerts]]` table; errors name the field
/// (`monitoring.alerts[2].threshold`).
fn parse_alert(
    key: &Key,
    index: usize,
    raw: &toml::Value,
    source: &Source,
) -> Result<AlertSpec, ConfigError> {
    use crate::alerts::{Comparison, Severity};
    let field_error = |field: &str, value: &toml::Value, allowed: &str| ConfigError::Invalid {
        key: format!("{}[{index}].{field}", key.path),
        origin: source.clone(),
        value: value.to_string(),
        allowed: allowed.to_owned(),
    };
    let Some(table) = raw.as_table() else {
        return Err(invalid(key, source, raw.to_string()));
    };
    let text = |field: &str| -> Result<Option<String>, ConfigError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(field_error(field, other, "non-empty text")),
        }
    };
    let whole = |field: &str, max: u64| -> Result<Option<u64>, ConfigError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (0..=max as i64).contains(n) => Ok(Some(*n as u64)),
            Some(other) => Err(field_error(
                field,
                other,
                &format!("a whole number from 0 to {max}"),
            )),
        }
    };
    let name =
        text("name")?.ok_or_else(|| field_error("name", raw, "every alert rule needs a name"))?;
    let mut spec = AlertSpec {
        metric: text("metric")?,
        message: text("message")?,
        for_seconds: whole("for", 86_400)?,
        cooldown_seconds: whole("cooldown", 7 * 86_400)?,
        over_seconds: whole("over", 86_400)?,
        min_requests: whole("min_requests", u64::from(u32::MAX))?,
        ..AlertSpec::default()
    };
    if let Some(raw) = table.get("comparison") {
        spec.comparison = Some(
            raw.as_str()
                .and_then(Comparison::parse)
                .ok_or_else(|| field_error("comparison", raw, "one of >, >=, <, <="))?,
        );
    }
    if let Some(raw) = table.get("severity") {
        spec.severity = Some(
            raw.as_str()
                .and_then(Severity::parse)
                .ok_or_else(|| field_error("severity", raw, "info, warning or critical"))?,
        );
    }
    if let Some(raw) = table.get("threshold") {
        let number = match raw {
            toml::Value::Integer(n) => Some(*n as f64),
            toml::Value::Float(x) if x.is_finite() => Some(*x),
            _ => None,
        };
        spec.threshold =
            Some(number.ok_or_else(|| field_error("threshold", raw, "a finite number"))?);
    }
    if let Some(raw) = table.get("enabled") {
        spec.enabled = Some(
            raw.as_bool()
                .ok_or_else(|| field_error("enabled", raw, "true or false"))?,
        );
    }
    const FIELDS: [&str; 11] = [
        "name",
        "metric",
        "comparison",
        "threshold",
        "for",
        "cooldown",
        "over",
        "severity",
        "message",
        "min_requests",
        "enabled",
    ];
    if let Some(unknown) = table.keys().find(|field| !FIELDS.contains(&field.as_str())) {
        return Err(field_error(
            unknown,
            &table[unknown],
            &format!("one of the fields {}", FIELDS.join(", ")),
        ));
    }
    let known = crate::alerts::default_rules(1)
        .iter()
        .any(|rule| rule.name == name);
    if !known && spec.enabled != Some(false) {
        for (field, present) in [
            ("metric", spec.metric.is_some()),
            ("comparison", spec.comparison.is_some()),
            ("threshold", spec.threshold.is_some()),
        ] {
            if !present {
                return Err(field_error(
                    field,
                    raw,
                    &format!(
                        "`{field}` (the rule `{name}` is not a default rule, so it needs metric, comparison and threshold)"
                    ),
                ));
            }
        }
    }
    spec.name = name;
    Ok(spec)
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Range and shape checks shared by every layer.
pub(super) fn check(key: &Key, value: Value, source: &Source) -> Result<Value, ConfigError> {
    let ok = match (&value, key.kind) {
        (Value::Int(n), Kind::Int { min, max, .. }) => (min..=max).contains(n),
        (Value::Text(t), Kind::Addr) => t.parse::<SocketAddr>().is_ok(),
        (Value::Text(t), Kind::Listen) => AdminBind::parse(t).is_some(),
        (Value::Text(t), Kind::Text) => {
            !t.is_empty() && t.chars().all(|c| c == ' ' || c.is_ascii_graphic())
        }
        (Value::Text(t), Kind::Dir | Kind::Path) => !t.is_empty() && !t.contains('\0'),
        (Value::Text(t), Kind::Url) => {
            (t.starts_with("http://") || t.starts_with("https://"))
                && t.len() > 8
                && !t.contains(char::is_whitespace)
        }
        (Value::Text(t), Kind::Choice(words)) => words.contains(&t.as_str()),
        (Value::Text(t), Kind::FileName) => {
            !t.is_empty() && t != "." && t != ".." && !t.contains(['/', '\\', '\0'])
        }
        (Value::List(words), Kind::List) => words.iter().all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        }),
        (Value::List(patterns), Kind::Patterns) => patterns
            .iter()
            .all(|pattern| crate::http::dictionary::check_pattern(pattern).is_ok()),
        (Value::List(words), Kind::Words(allowed)) => words
            .iter()
            .enumerate()
            .all(|(i, w)| allowed.contains(&w.as_str()) && !words[..i].contains(w)),
        _ => true,
    };
    if ok {
        Ok(value)
    } else {
        Err(invalid(key, source, value.to_string()))
    }
}
