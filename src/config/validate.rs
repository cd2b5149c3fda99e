//! Validation beyond one value: options that must fit together do.

use std::collections::BTreeMap;

use super::opts::{AdminBind, Opts};
use super::value::Setting;
use super::{ConfigError, Profile, Source};

/// Refuses settings that leave the admin surface open: a listener reachable beyond this
/// machine without a token, or, in the prod profile, any TCP listener without one.
pub(super) fn check_admin(
    opts: &Opts,
    settings: &BTreeMap<&'static str, Setting>,
) -> Result<(), ConfigError> {
    if opts.admin.token.is_some() {
        return Ok(());
    }
    let source_of = |path: &str| {
        settings
            .get(path)
            .map_or(Source::Default, |s| s.source.clone())
    };
    let (bind, where_) = match &opts.admin.bind {
        AdminBind::Unix(_) => return Ok(()),
        AdminBind::Serving => (
            opts.server.bind,
            format!(
                "the admin surface shares the serving listener (admin.bind = {} from {}, server.bind = {} from {})",
                settings
                    .get("admin.bind")
                    .map_or_else(|| "serving".to_owned(), |s| s.value.to_string()),
                source_of("admin.bind"),
                opts.server.bind,
                source_of("server.bind"),
            ),
        ),
        AdminBind::Tcp(addr) => (
            *addr,
            format!(
                "the admin listener (admin.bind = {addr} from {})",
                source_of("admin.bind")
            ),
        ),
    };
    let remedy = "set admin.token (LEANSERVE_ADMIN_TOKEN), or bind admin.bind to unix:PATH";
    if !bind.ip().is_loopback() {
        return Err(ConfigError::Insecure {
            reason: format!(
                "{where_} is reachable beyond loopback and admin.token is not set; {remedy} or a loopback address"
            ),
        });
    }
    if opts.profile == Profile::Prod {
        return Err(ConfigError::Insecure {
            reason: format!(
                "the prod profile needs admin.token for an admin surface on TCP, even on loopback (a reverse proxy or sidecar on this host connects from loopback too), and {where_} has none; {remedy}"
            ),
        });
    }
    Ok(())
}

/// Checks every pool's options against each other (`min_idle <= max_size`, the scale
/// bounds around `max_size`); the error names the key that does not fit.
pub(super) fn check_pools(
    opts: &Opts,
    settings: &BTreeMap<&'static str, Setting>,
) -> Result<(), ConfigError> {
    let source_of = |path: &str| {
        settings
            .get(path)
            .map_or(Source::Default, |s| s.source.clone())
    };
    if let Err(error) = opts.pools.defaults.check() {
        let path = format!("pools.{}", error.field);
        return Err(ConfigError::Invalid {
            origin: source_of(&path),
            key: path,
            value: error.value,
            allowed: error.allowed,
        });
    }
    if opts.tuner.cache_floor > opts.tuner.cache_ceiling {
        let ceiling_key = if settings.contains_key("tuner.cache_ceiling_mb") {
            "tuner.cache_ceiling_mb"
        } else {
            "static_files.max_cache_size"
        };
        return Err(ConfigError::Invalid {
            origin: source_of("tuner.cache_floor_mb"),
            key: "tuner.cache_floor_mb".into(),
            value: (opts.tuner.cache_floor >> 20).to_string(),
            allowed: format!(
                "at most the cache ceiling ({} MiB, from {ceiling_key})",
                opts.tuner.cache_ceiling >> 20
            ),
        });
    }
    let limit = &opts.limiter.config.limit;
    if limit.min > limit.max {
        return Err(ConfigError::Invalid {
            origin: source_of("limiter.min_limit"),
            key: "limiter.min_limit".into(),
            value: limit.min.to_string(),
            allowed: format!("at most limiter.max_limit ({})", limit.max),
        });
    }
    for (pool, spec) in &opts.pools.overrides {
        if let Err(error) = spec.check() {
            return Err(ConfigError::Invalid {
                key: format!("pools.overrides.{pool}.{}", error.field),
                origin: source_of("pools.overrides"),
                value: error.value,
                allowed: error.allowed,
            });
        }
    }
    Ok(())
}
