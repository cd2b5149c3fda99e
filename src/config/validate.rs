//! Validation beyond one value: the static root exists, options that must fit together
//! do, and (for options set in code) each whole number is in its key's range.
//!
//! [`Config::load`](super::Config::load) checks each value as it parses it and then runs
//! the checks here with the loaded settings as [`Origins`], so an error says which layer
//! the offending value came from. [`Opts::validate`] runs the same checks on options
//! built or changed in code, where no layer is known: the error names the same key with
//! [`Source::Code`] as its origin. Before the cross-key checks it checks every whole
//! number against its key's range with the same function the layers use, because only
//! parsing did that for loaded options; a zero interval set in code is refused here
//! rather than left to panic a timer.
//!
//! Only values that map back to one key exactly are range-checked: `server.workers`
//! (from the machine when unset), `monitoring.history_seconds` (kept as a sample count)
//! and `tuner.cache_ceiling_mb` (the cache budget, in bytes, when unset) are not, so
//! every loaded [`Opts`] passes [`Opts::validate`] unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use super::key::TypedKey;
use super::keys as k;
use super::opts::{AdminBind, Opts};
use super::parse::{check, invalid};
use super::value::{Setting, Value};
use super::{ConfigError, Profile, Source};

impl Opts {
    /// Checks options built or changed in code as [`Config::load`](super::Config::load)
    /// checks loaded ones: the static root is a directory, every whole number is in its
    /// key's range (no zero intervals), and options that depend on each other fit (pool
    /// sizes, the tuner's cache floor and ceiling, the limiter's bounds, an admin token
    /// where the admin surface needs one). The error names the key, as a loaded value's
    /// would, with [`Source::Code`](crate::Source::Code) as its origin. [`Runtime`](crate::Runtime)
    /// calls it before starting anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_root_dir(self, &Origins::Code)?;
        check_ranges(self)?;
        check_across_keys(self, &Origins::Code)
    }
}

/// Where the values being checked came from.
pub(super) enum Origins<'a> {
    /// The winning settings of [`Config::load`](super::Config::load).
    Loaded(&'a BTreeMap<&'static str, Setting>),
    /// Options set in code.
    Code,
}

impl Origins<'_> {
    /// The source of `key`'s value.
    fn source<T>(&self, key: &TypedKey<T>) -> Source {
        self.source_of(key.path())
    }

    /// The source of the value at `path`.
    fn source_of(&self, path: &str) -> Source {
        match self {
            Origins::Loaded(settings) => settings
                .get(path)
                .map_or(Source::Default, |s| s.source.clone()),
            Origins::Code => Source::Code,
        }
    }

    /// `key`'s value as written, when it was loaded.
    fn written<T>(&self, key: &TypedKey<T>) -> Option<String> {
        match self {
            Origins::Loaded(settings) => settings.get(key.path()).map(|s| s.value.to_string()),
            Origins::Code => None,
        }
    }

    /// Whether `key` holds a value of its own (in code every field does).
    fn is_set<T>(&self, key: &TypedKey<T>) -> bool {
        match self {
            Origins::Loaded(settings) => settings.contains_key(key.path()),
            Origins::Code => true,
        }
    }
}

/// Refuses a static root that is not a directory.
pub(super) fn check_root_dir(opts: &Opts, origins: &Origins) -> Result<(), ConfigError> {
    let root = &opts.static_files.root_dir;
    if root.is_dir() {
        return Ok(());
    }
    let key = &k::STATIC_FILES_ROOT_DIR;
    Err(invalid(
        &key.key,
        &origins.source(key),
        root.display().to_string(),
    ))
}

/// The checks across keys, in the order [`Config::load`](super::Config::load) runs them.
pub(super) fn check_across_keys(opts: &Opts, origins: &Origins) -> Result<(), ConfigError> {
    check_pools(opts, origins)?;
    check_dictionary_assets(opts, origins)?;
    check_tls(opts, origins)?;
    check_admin(opts, origins)
}

/// A certificate needs its key and a key its certificate; the admin surface takes TLS
/// only on a TCP address of its own (on the serving listener it has the server's, on a
/// Unix socket none).
fn check_tls(opts: &Opts, origins: &Origins) -> Result<(), ConfigError> {
    let pairs = [
        (
            &k::SERVER_TLS_CERT,
            &k::SERVER_TLS_KEY,
            opts.server.tls.is_some(),
        ),
        (
            &k::ADMIN_TLS_CERT,
            &k::ADMIN_TLS_KEY,
            opts.admin.tls.is_some(),
        ),
    ];
    for (cert, key, both) in pairs {
        if both {
            continue;
        }
        let (set, missing) = match (origins.is_set(cert), origins.is_set(key)) {
            (true, false) => (cert, key),
            (false, true) => (key, cert),
            _ => continue,
        };
        return Err(ConfigError::Invalid {
            origin: origins.source(set),
            key: missing.path().into(),
            value: "(unset)".into(),
            allowed: format!("a path, since {} is set", set.path()),
        });
    }
    let server = &opts.server;
    if server.h2c && server.tls.is_some() {
        return Err(ConfigError::Invalid {
            origin: origins.source(&k::SERVER_H2C),
            key: k::SERVER_H2C.path().into(),
            value: "true".into(),
            allowed: "false while server.tls_cert is set (over TLS, ALPN offers h2)".into(),
        });
    }
    if let Some(redirect) = server.redirect_bind {
        let allowed = if server.tls.is_none() {
            Some("unset unless server.tls_cert is set (it redirects to HTTPS)")
        } else if redirect == server.bind && redirect.port() != 0 {
            Some("an address other than server.bind")
        } else {
            None
        };
        if let Some(allowed) = allowed {
            return Err(ConfigError::Invalid {
                origin: origins.source(&k::SERVER_REDIRECT_BIND),
                key: k::SERVER_REDIRECT_BIND.path().into(),
                value: redirect.to_string(),
                allowed: allowed.into(),
            });
        }
    }
    if opts.admin.tls.is_some() && !matches!(opts.admin.bind, crate::config::AdminBind::Tcp(_)) {
        return Err(ConfigError::Invalid {
            origin: origins.source(&k::ADMIN_TLS_CERT),
            key: k::ADMIN_TLS_CERT.path().into(),
            value: opts.admin.tls.as_ref().map_or_else(String::new, |tls| tls.cert.display().to_string()),
            allowed: "unset unless admin.bind is a TCP address of its own (on the serving listener the admin surface has server.tls_cert; a Unix socket has no TLS)".into(),
        });
    }
    Ok(())
}

/// Each `static_files.dictionary_assets` pattern is a path with `*` as its only special
/// character (what the browser reads as a URLPattern means the same to leanserve).
fn check_dictionary_assets(opts: &Opts, origins: &Origins) -> Result<(), ConfigError> {
    for pattern in &opts.static_files.dictionary_assets {
        if let Err(reason) = crate::http::dictionary::check_pattern(pattern) {
            return Err(ConfigError::Invalid {
                origin: origins.source(&k::STATIC_FILES_DICTIONARY_ASSETS),
                key: k::STATIC_FILES_DICTIONARY_ASSETS.path().into(),
                value: pattern.clone(),
                allowed: format!(
                    "paths from the mount point with * as the only wildcard ({reason})"
                ),
            });
        }
    }
    Ok(())
}

/// Checks each whole number set in code against its key's range, as parsing checks a
/// loaded one.
fn check_ranges(opts: &Opts) -> Result<(), ConfigError> {
    let secs = |duration: Duration| duration.as_secs();
    let millis = |duration: Duration| duration.as_millis().try_into().unwrap_or(u64::MAX);
    let percent = |share: f64| (share * 100.0).round() as u64;
    let (server, supervisor, files) = (&opts.server, &opts.supervisor, &opts.static_files);
    let (monitoring, profiler, templates) = (&opts.monitoring, &opts.profiler, &opts.templates);
    let (limit, limiter, tuner) = (
        &opts.limiter.config.limit,
        &opts.limiter.config,
        &opts.tuner,
    );
    let ranged: Vec<(&TypedKey<u64>, u64)> = vec![
        (&k::SERVER_SHUTDOWN_TIMEOUT, secs(server.shutdown_timeout)),
        (
            &k::SERVER_CLIENT_REQUEST_TIMEOUT_MS,
            millis(server.client_request_timeout),
        ),
        (&k::SERVER_KEEP_ALIVE_S, secs(server.keep_alive)),
        (
            &k::SERVER_CLIENT_DISCONNECT_TIMEOUT_MS,
            millis(server.client_disconnect_timeout),
        ),
        (&k::SERVER_MAX_CONNECTIONS, server.max_connections as u64),
        (&k::SERVER_MAX_HEADER_BYTES, server.max_header_bytes as u64),
        (&k::SERVER_HSTS_MAX_AGE_S, secs(server.hsts_max_age)),
        (
            &k::SERVER_TLS_RELOAD_INTERVAL_S,
            secs(server.tls_reload_interval),
        ),
        (
            &k::SERVER_H2_STREAM_WINDOW,
            u64::from(server.h2_stream_window),
        ),
        (
            &k::SERVER_H2_CONNECTION_WINDOW,
            u64::from(server.h2_connection_window),
        ),
        (
            &k::SUPERVISOR_MAX_RESTARTS,
            u64::from(supervisor.max_restarts),
        ),
        (&k::SUPERVISOR_PERIOD, secs(supervisor.period)),
        (&k::SUPERVISOR_BACKOFF_MS, millis(supervisor.backoff)),
        (
            &k::SUPERVISOR_MAX_BACKOFF_MS,
            millis(supervisor.max_backoff),
        ),
        (
            &k::SUPERVISOR_CALL_TIMEOUT_MS,
            millis(supervisor.call_timeout),
        ),
        (&k::STATIC_FILES_MAX_CACHE_SIZE, files.max_cache_size),
        (
            &k::STATIC_FILES_CACHE_EXPIRATION,
            secs(files.cache_expiration),
        ),
        (&k::STATIC_FILES_MAX_FILE_SIZE, files.max_file_size),
        (&k::STATIC_FILES_MIN_COMPRESS_SIZE, files.min_compress_size),
        (
            &k::STATIC_FILES_DICTIONARY_SIZE,
            files.dictionary_size as u64,
        ),
        (
            &k::STATIC_FILES_COMPRESSION_WORKERS,
            files.compression_workers as u64,
        ),
        (
            &k::STATIC_FILES_IDENTITY_COPY_PERCENT,
            files.identity_copy_percent,
        ),
        (&k::MONITORING_INTERVAL_MS, millis(monitoring.interval)),
        (
            &k::MONITORING_WEBHOOK_TIMEOUT_MS,
            millis(monitoring.webhook_timeout),
        ),
        (
            &k::MONITORING_WEBHOOK_RETRIES,
            u64::from(monitoring.webhook_retries),
        ),
        (
            &k::PROCESS_SAMPLE_INTERVAL,
            secs(opts.process.sample_interval),
        ),
        (
            &k::PROFILER_MEMORY_THRESHOLD_MB,
            profiler.memory_threshold_mb,
        ),
        (&k::PROFILER_INTERVAL, secs(profiler.interval)),
        (&k::PROFILER_SNAPSHOTS, profiler.snapshots as u64),
        (
            &k::TEMPLATES_RELOAD_INTERVAL,
            templates.reload_interval.map_or(0, secs),
        ),
        (
            &k::TEMPLATES_RENDER_WORKERS,
            templates.render_workers as u64,
        ),
        (&k::TEMPLATES_RENDER_NICE, u64::from(templates.render_nice)),
        (&k::TEMPLATES_MAX_FUEL, templates.max_fuel),
        (&k::TEMPLATES_MAX_OUTPUT_BYTES, templates.max_output_bytes),
        (
            &k::TEMPLATES_MAX_CONTEXT_BYTES,
            templates.max_context_bytes as u64,
        ),
        (
            &k::TEMPLATES_MAX_INHERITANCE_DEPTH,
            templates.max_inheritance_depth as u64,
        ),
        (
            &k::POOLS_MAINTENANCE_INTERVAL_MS,
            millis(opts.pools.maintenance_interval),
        ),
        (&k::LIMITER_MIN_LIMIT, limit.min as u64),
        (&k::LIMITER_MAX_LIMIT, limit.max as u64),
        (
            &k::LIMITER_LATENCY_TOLERANCE_PERCENT,
            percent(limit.tolerance),
        ),
        (&k::LIMITER_QUEUE_SIZE, limiter.queue_size as u64),
        (&k::LIMITER_QUEUE_TIMEOUT_MS, millis(limiter.queue_timeout)),
        (
            &k::LIMITER_OVERLOAD_AFTER_MS,
            millis(limiter.overload_after),
        ),
        (
            &k::LIMITER_OVERLOAD_TIMEOUT_MS,
            millis(limiter.overload_timeout),
        ),
        (&k::TUNER_INTERVAL, secs(tuner.interval)),
        (&k::TUNER_TARGET_MEMORY_PERCENT, percent(tuner.target_share)),
        (&k::TUNER_CACHE_FLOOR_MB, tuner.cache_floor >> 20),
    ];
    let limit_mb = tuner.memory_limit.map(|bytes| bytes >> 20);
    let ranged = ranged.into_iter().map(|(key, value)| (key.key(), value));
    for (key, value) in ranged.chain(limit_mb.map(|mb| (k::TUNER_MEMORY_LIMIT_MB.key(), mb))) {
        check(key, Value::Int(value), &Source::Code)?;
    }
    Ok(())
}

/// Checks every pool's options against each other (`min_idle <= max_size`, the scale
/// bounds around `max_size`), the tuner's cache floor against its ceiling and the
/// limiter's bounds; the error names the key that does not fit.
fn check_pools(opts: &Opts, origins: &Origins) -> Result<(), ConfigError> {
    if let Err(error) = opts.pools.defaults.check() {
        let path = format!("pools.{}", error.field);
        return Err(ConfigError::Invalid {
            origin: origins.source_of(&path),
            key: path,
            value: error.value,
            allowed: error.allowed,
        });
    }
    if opts.tuner.cache_floor > opts.tuner.cache_ceiling {
        let ceiling_key = if origins.is_set(&k::TUNER_CACHE_CEILING_MB) {
            k::TUNER_CACHE_CEILING_MB.path()
        } else {
            k::STATIC_FILES_MAX_CACHE_SIZE.path()
        };
        return Err(ConfigError::Invalid {
            origin: origins.source(&k::TUNER_CACHE_FLOOR_MB),
            key: k::TUNER_CACHE_FLOOR_MB.path().into(),
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
            origin: origins.source(&k::LIMITER_MIN_LIMIT),
            key: k::LIMITER_MIN_LIMIT.path().into(),
            value: limit.min.to_string(),
            allowed: format!("at most limiter.max_limit ({})", limit.max),
        });
    }
    for (pool, spec) in &opts.pools.overrides {
        if let Err(error) = spec.check() {
            return Err(ConfigError::Invalid {
                key: format!("pools.overrides.{pool}.{}", error.field),
                origin: origins.source(&k::POOLS_OVERRIDES),
                value: error.value,
                allowed: error.allowed,
            });
        }
    }
    Ok(())
}

/// Refuses settings that leave the admin surface open: a listener reachable beyond this
/// machine without a token, or, in the prod profile, any TCP listener without one.
fn check_admin(opts: &Opts, origins: &Origins) -> Result<(), ConfigError> {
    if opts.admin.token.is_some() {
        return Ok(());
    }
    let (bind, where_) = match &opts.admin.bind {
        AdminBind::Unix(_) => return Ok(()),
        AdminBind::Serving => (
            opts.server.bind,
            format!(
                "the admin surface shares the serving listener (admin.bind = {} from {}, server.bind = {} from {})",
                origins
                    .written(&k::ADMIN_BIND)
                    .unwrap_or_else(|| "serving".to_owned()),
                origins.source(&k::ADMIN_BIND),
                opts.server.bind,
                origins.source(&k::SERVER_BIND),
            ),
        ),
        AdminBind::Tcp(addr) => (
            *addr,
            format!(
                "the admin listener (admin.bind = {addr} from {})",
                origins.source(&k::ADMIN_BIND)
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
