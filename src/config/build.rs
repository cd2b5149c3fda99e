//! Building [`Opts`] from the winning settings: every key read once through its typed
//! constant, converted to the unit and shape its subsystem takes (seconds to
//! [`Duration`], MiB to bytes, `[pools]` values to a [`PoolSpec`]).

use std::time::Duration;

use super::keys as k;
use super::load::{compiled_defaults, describe};
use super::opts::{
    AdminBind, AdminOpts, ContextOptimizerOpts, LimiterOpts, MemoryOptimizerOpts, MonitoringOpts,
    Opts, PoolOpts, ProcessOpts, ProfilerOpts, ServerOpts, StaticFileOpts, SupervisorOpts,
    TemplateOpts, TunerMode, TunerOpts,
};
use super::value::{AlertSpec, Setting, Value, Values};
use super::{DEFAULT_PROFILE, Profile, Source};
use crate::concurrency::{LimitConfig, LimiterConfig};
use crate::pool::PoolSpec;

impl Default for Opts {
    /// The compiled defaults (dev profile), without reading files or the environment and
    /// without checking that the root folder exists.
    fn default() -> Self {
        let settings = compiled_defaults().expect("every compiled default is valid");
        let mut opts = Opts::build(DEFAULT_PROFILE, &Values::new(&settings));
        let profile = Setting {
            value: Value::Text(DEFAULT_PROFILE.name().to_owned()),
            source: Source::Default,
        };
        opts.described = describe(&profile, &settings, &opts);
        opts
    }
}

impl Opts {
    /// Builds options from checked settings; every key with a compiled default is present.
    pub(super) fn build(profile: Profile, values: &Values) -> Opts {
        let server = server(values);
        Opts {
            profile,
            admin: admin(values, server.bind),
            server,
            supervisor: supervisor(values),
            static_files: static_files(values),
            process: ProcessOpts {
                sample_interval: secs(values.get(&k::PROCESS_SAMPLE_INTERVAL)),
            },
            monitoring: monitoring(values),
            profiler: profiler(values),
            templates: templates(values),
            pools: pools(values),
            limiter: limiter(values),
            tuner: tuner(values),
            described: Vec::new(),
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn server(values: &Values) -> ServerOpts {
    ServerOpts {
        bind: values.get(&k::SERVER_BIND),
        workers: values
            .get(&k::SERVER_WORKERS)
            .map_or_else(cpus, |n| n as usize),
        shutdown_timeout: secs(values.get(&k::SERVER_SHUTDOWN_TIMEOUT)),
        client_request_timeout: millis(values.get(&k::SERVER_CLIENT_REQUEST_TIMEOUT_MS)),
        keep_alive: secs(values.get(&k::SERVER_KEEP_ALIVE_S)),
        client_disconnect_timeout: millis(values.get(&k::SERVER_CLIENT_DISCONNECT_TIMEOUT_MS)),
        max_connections: values.get(&k::SERVER_MAX_CONNECTIONS) as usize,
        max_header_bytes: values.get(&k::SERVER_MAX_HEADER_BYTES) as usize,
        tls: tls_files(
            values.get(&k::SERVER_TLS_CERT),
            values.get(&k::SERVER_TLS_KEY),
        ),
        tls_reload_interval: secs(values.get(&k::SERVER_TLS_RELOAD_INTERVAL_S)),
        hsts_max_age: secs(values.get(&k::SERVER_HSTS_MAX_AGE_S)),
        redirect_bind: values.get(&k::SERVER_REDIRECT_BIND),
        h2c: values.get(&k::SERVER_H2C),
        h2_stream_window: values.get(&k::SERVER_H2_STREAM_WINDOW) as u32,
        h2_connection_window: values.get(&k::SERVER_H2_CONNECTION_WINDOW) as u32,
    }
}

/// A certificate and a key, when both are set (one without the other is refused by
/// validation).
fn tls_files(
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Option<crate::tls::TlsFiles> {
    Some(crate::tls::TlsFiles {
        cert: cert?,
        key: key?,
    })
}

/// `admin.bind` equal to `server.bind` (and not an ephemeral port) is the serving listener.
fn admin(values: &Values, server_bind: std::net::SocketAddr) -> AdminOpts {
    AdminOpts {
        bind: match values.get(&k::ADMIN_BIND) {
            AdminBind::Tcp(addr) if addr == server_bind && addr.port() != 0 => AdminBind::Serving,
            admin => admin,
        },
        token: values.get(&k::ADMIN_TOKEN),
        tls: tls_files(
            values.get(&k::ADMIN_TLS_CERT),
            values.get(&k::ADMIN_TLS_KEY),
        ),
    }
}

fn supervisor(values: &Values) -> SupervisorOpts {
    SupervisorOpts {
        max_restarts: values.get(&k::SUPERVISOR_MAX_RESTARTS) as u32,
        period: secs(values.get(&k::SUPERVISOR_PERIOD)),
        backoff: millis(values.get(&k::SUPERVISOR_BACKOFF_MS)),
        max_backoff: millis(values.get(&k::SUPERVISOR_MAX_BACKOFF_MS)),
        call_timeout: millis(values.get(&k::SUPERVISOR_CALL_TIMEOUT_MS)),
    }
}

fn static_files(values: &Values) -> StaticFileOpts {
    StaticFileOpts {
        root_dir: values.get(&k::STATIC_FILES_ROOT_DIR),
        enable_cache: values.get(&k::STATIC_FILES_ENABLE_CACHE),
        enable_compression: values.get(&k::STATIC_FILES_ENABLE_COMPRESSION),
        max_cache_size: values.get(&k::STATIC_FILES_MAX_CACHE_SIZE),
        cache_expiration: secs(values.get(&k::STATIC_FILES_CACHE_EXPIRATION)),
        max_file_size: values.get(&k::STATIC_FILES_MAX_FILE_SIZE),
        min_compress_size: values.get(&k::STATIC_FILES_MIN_COMPRESS_SIZE),
        compress_extensions: values
            .get(&k::STATIC_FILES_COMPRESS_EXTENSIONS)
            .iter()
            .map(|word| word.trim_start_matches('.').to_ascii_lowercase())
            .collect(),
        encodings: values
            .get(&k::STATIC_FILES_ENCODINGS)
            .iter()
            .filter_map(|name| crate::http::encoding::Coding::from_name(name))
            .collect(),
        dictionaries: values
            .get(&k::STATIC_FILES_DICTIONARIES)
            .iter()
            .filter_map(|name| crate::http::dictionary::DictCoding::from_name(name))
            .collect(),
        dictionary_size: values.get(&k::STATIC_FILES_DICTIONARY_SIZE) as usize,
        dictionary_assets: values.get(&k::STATIC_FILES_DICTIONARY_ASSETS),
        gzip_level: values.get(&k::STATIC_FILES_GZIP_LEVEL) as i32,
        br_level: values.get(&k::STATIC_FILES_BR_LEVEL) as i32,
        zstd_level: values.get(&k::STATIC_FILES_ZSTD_LEVEL) as i32,
        store: values.get(&k::STATIC_FILES_STORE),
        compression_workers: values.get(&k::STATIC_FILES_COMPRESSION_WORKERS) as usize,
        identity_copy_percent: values.get(&k::STATIC_FILES_IDENTITY_COPY_PERCENT),
        admission: values.get(&k::STATIC_FILES_ADMISSION),
        cache_control: values.get(&k::STATIC_FILES_CACHE_CONTROL),
        index_file: values.get(&k::STATIC_FILES_INDEX_FILE),
        serve_hidden: values.get(&k::STATIC_FILES_SERVE_HIDDEN),
    }
}

/// The history holds `history_seconds / interval` samples, at least 2 and at most 10,000.
fn monitoring(values: &Values) -> MonitoringOpts {
    let interval = millis(values.get(&k::MONITORING_INTERVAL_MS)).max(Duration::from_millis(100));
    let history = secs(values.get(&k::MONITORING_HISTORY_SECONDS));
    let specs = values.get(&k::MONITORING_ALERTS).unwrap_or_default();
    MonitoringOpts {
        enabled: values.get(&k::MONITORING_ENABLED),
        public_metrics: values.get(&k::MONITORING_PUBLIC_METRICS),
        interval,
        history_len: ((history.as_millis() / interval.as_millis()).max(2) as usize).min(10_000),
        webhook_url: values.get(&k::MONITORING_WEBHOOK_URL),
        webhook_timeout: millis(values.get(&k::MONITORING_WEBHOOK_TIMEOUT_MS)),
        webhook_retries: values.get(&k::MONITORING_WEBHOOK_RETRIES) as u32,
        alerts: alert_rules(values.get(&k::PROFILER_MEMORY_THRESHOLD_MB), &specs),
    }
}

fn profiler(values: &Values) -> ProfilerOpts {
    ProfilerOpts {
        memory_threshold_mb: values.get(&k::PROFILER_MEMORY_THRESHOLD_MB),
        interval: secs(values.get(&k::PROFILER_INTERVAL)),
        snapshots: values.get(&k::PROFILER_SNAPSHOTS) as usize,
        heap_profiling: values.get(&k::PROFILER_HEAP_PROFILING),
        profiles_dir: values.get(&k::PROFILER_PROFILES_DIR),
    }
}

fn templates(values: &Values) -> TemplateOpts {
    TemplateOpts {
        memory: MemoryOptimizerOpts {
            enabled: values.get(&k::MEMORY_OPTIMIZER_ENABLED),
            deduplication: values.get(&k::MEMORY_OPTIMIZER_ENABLE_DEDUPLICATION),
            lazy_loading: values.get(&k::MEMORY_OPTIMIZER_ENABLE_LAZY_LOADING),
            compression: values.get(&k::MEMORY_OPTIMIZER_ENABLE_COMPRESSION),
            gc_hints: values.get(&k::MEMORY_OPTIMIZER_ENABLE_GC_HINTS),
        },
        context: ContextOptimizerOpts {
            enabled: values.get(&k::CONTEXT_OPTIMIZER_ENABLED),
            deduplication: values.get(&k::CONTEXT_OPTIMIZER_ENABLE_DEDUPLICATION),
            lazy_loading: values.get(&k::CONTEXT_OPTIMIZER_ENABLE_LAZY_LOADING),
            compression: values.get(&k::CONTEXT_OPTIMIZER_ENABLE_COMPRESSION),
        },
        enabled: values.get(&k::TEMPLATES_ENABLED),
        dir: values.get(&k::TEMPLATES_DIR),
        reload_interval: Some(secs(values.get(&k::TEMPLATES_RELOAD_INTERVAL)))
            .filter(|interval| !interval.is_zero()),
        render_workers: values.get(&k::TEMPLATES_RENDER_WORKERS) as usize,
        render_nice: values.get(&k::TEMPLATES_RENDER_NICE) as u8,
        max_fuel: values.get(&k::TEMPLATES_MAX_FUEL),
        max_output_bytes: values.get(&k::TEMPLATES_MAX_OUTPUT_BYTES),
        max_context_bytes: values.get(&k::TEMPLATES_MAX_CONTEXT_BYTES) as usize,
        max_inheritance_depth: values.get(&k::TEMPLATES_MAX_INHERITANCE_DEPTH) as usize,
        flatten_inheritance: values.get(&k::TEMPLATES_FLATTEN_INHERITANCE),
        cache_optimized_templates: values.get(&k::TEMPLATES_CACHE_OPTIMIZED_TEMPLATES),
    }
}

/// The `[pools]` values as the (field, value) pairs `[pools.overrides.<pool>]` tables
/// add to, in the order of [`POOL_FIELDS`](super::keys::POOL_FIELDS); unset keys are left
/// out, so they follow `max_size`.
fn pool_values(values: &Values) -> Vec<(&'static str, u64)> {
    [
        ("max_size", values.get(&k::POOLS_MAX_SIZE)),
        ("min_idle", Some(values.get(&k::POOLS_MIN_IDLE))),
        (
            "autoscale",
            Some(u64::from(values.get(&k::POOLS_AUTOSCALE))),
        ),
        ("scale_min", Some(values.get(&k::POOLS_SCALE_MIN))),
        ("scale_max", values.get(&k::POOLS_SCALE_MAX)),
        ("wait_target_ms", Some(values.get(&k::POOLS_WAIT_TARGET_MS))),
        (
            "acquire_timeout_ms",
            Some(values.get(&k::POOLS_ACQUIRE_TIMEOUT_MS)),
        ),
        ("idle_timeout", Some(values.get(&k::POOLS_IDLE_TIMEOUT))),
        ("max_lifetime", Some(values.get(&k::POOLS_MAX_LIFETIME))),
        ("validate_after", Some(values.get(&k::POOLS_VALIDATE_AFTER))),
        (
            "leak_threshold_ms",
            Some(values.get(&k::POOLS_LEAK_THRESHOLD_MS)),
        ),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field, value?)))
    .collect()
}

fn pools(values: &Values) -> PoolOpts {
    let fields = pool_values(values);
    let overrides = values
        .get(&k::POOLS_OVERRIDES)
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            let mut merged = fields.clone();
            merged.extend(o.values.iter().copied());
            (o.pool, pool_spec(PoolSpec::new(cpus()), &merged))
        })
        .collect();
    PoolOpts {
        enabled: values.get(&k::POOLS_ENABLED),
        defaults: pool_spec(PoolSpec::new(cpus()), &fields),
        overrides,
        maintenance_interval: millis(values.get(&k::POOLS_MAINTENANCE_INTERVAL_MS)),
    }
}

/// Each limit starts at `min_limit`; a limit grows again below 40% of the tolerance.
fn limiter(values: &Values) -> LimiterOpts {
    let min = values.get(&k::LIMITER_MIN_LIMIT) as usize;
    let tolerance = values.get(&k::LIMITER_LATENCY_TOLERANCE_PERCENT) as f64 / 100.0;
    LimiterOpts {
        enabled: values.get(&k::LIMITER_ENABLED),
        config: LimiterConfig {
            limit: LimitConfig {
                initial: min,
                min,
                max: values.get(&k::LIMITER_MAX_LIMIT) as usize,
                tolerance,
                grow_below: 1.0 + (tolerance - 1.0) * 0.4,
                ..LimitConfig::default()
            },
            queue_size: values.get(&k::LIMITER_QUEUE_SIZE) as usize,
            queue_timeout: millis(values.get(&k::LIMITER_QUEUE_TIMEOUT_MS)),
            overload_timeout: millis(values.get(&k::LIMITER_OVERLOAD_TIMEOUT_MS)),
            overload_after: millis(values.get(&k::LIMITER_OVERLOAD_AFTER_MS)),
        },
    }
}

/// The tuner is off when `tuner.enabled` is false, whatever `tuner.mode` says; an unset
/// ceiling is the file cache budget.
fn tuner(values: &Values) -> TunerOpts {
    let mode = values.get(&k::TUNER_MODE);
    let cache_budget = values.get(&k::STATIC_FILES_MAX_CACHE_SIZE);
    TunerOpts {
        mode: if values.get(&k::TUNER_ENABLED) {
            mode
        } else {
            TunerMode::Off
        },
        interval: secs(values.get(&k::TUNER_INTERVAL)),
        memory_limit: values.get(&k::TUNER_MEMORY_LIMIT_MB).map(|mb| mb << 20),
        target_share: values.get(&k::TUNER_TARGET_MEMORY_PERCENT) as f64 / 100.0,
        cache_floor: values.get(&k::TUNER_CACHE_FLOOR_MB) << 20,
        cache_ceiling: values
            .get(&k::TUNER_CACHE_CEILING_MB)
            .map_or(cache_budget, |mb| mb << 20),
    }
}

/// Applies `[[monitoring.alerts]]` to the default rules.
fn alert_rules(memory_threshold_mb: u64, specs: &[AlertSpec]) -> Vec<crate::alerts::Rule> {
    let mut rules = crate::alerts::default_rules(memory_threshold_mb);
    for spec in specs {
        if spec.enabled == Some(false) {
            rules.retain(|rule| rule.name != spec.name);
            continue;
        }
        let index = match rules.iter().position(|rule| rule.name == spec.name) {
            Some(index) => index,
            None => {
                rules.push(crate::alerts::Rule {
                    name: spec.name.clone(),
                    metric: String::new(),
                    comparison: crate::alerts::Comparison::Above,
                    threshold: 0.0,
                    for_duration: Duration::ZERO,
                    cooldown: Duration::from_secs(15 * 60),
                    severity: crate::alerts::Severity::Warning,
                    message: format!("alert `{}`", spec.name),
                    over: None,
                    min_requests: None,
                });
                rules.len() - 1
            }
        };
        let rule = &mut rules[index];
        if let Some(metric) = &spec.metric {
            rule.metric = metric.clone();
        }
        if let Some(comparison) = spec.comparison {
            rule.comparison = comparison;
        }
        if let Some(threshold) = spec.threshold {
            rule.threshold = threshold;
        }
        if let Some(secs) = spec.for_seconds {
            rule.for_duration = Duration::from_secs(secs);
        }
        if let Some(secs) = spec.cooldown_seconds {
            rule.cooldown = Duration::from_secs(secs);
        }
        if let Some(secs) = spec.over_seconds {
            rule.over = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(severity) = spec.severity {
            rule.severity = severity;
        }
        if let Some(message) = &spec.message {
            rule.message = message.clone();
        }
        if let Some(min) = spec.min_requests {
            rule.min_requests = (min > 0).then_some(min);
        }
    }
    rules
}

/// A pool spec from `[pools]` field values applied in order over `base`: `max_size`
/// first, so an unset `scale_max` follows it (4 x max_size).
fn pool_spec(base: PoolSpec, values: &[(&'static str, u64)]) -> PoolSpec {
    let get = |field: &str| {
        values
            .iter()
            .rev()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| *v)
    };
    let mut spec = match get("max_size") {
        Some(max) => PoolSpec {
            scale_min: base.scale_min,
            ..PoolSpec::new(max as usize)
        },
        None => base,
    };
    let seconds = |n: u64| (n > 0).then(|| Duration::from_secs(n));
    for (field, value) in values {
        match *field {
            "min_idle" => spec.min_idle = *value as usize,
            "autoscale" => spec.autoscale = *value != 0,
            "scale_min" => spec.scale_min = *value as usize,
            "scale_max" => spec.scale_max = *value as usize,
            "wait_target_ms" => spec.wait_target = Duration::from_millis(*value),
            "acquire_timeout_ms" => spec.acquire_timeout = Duration::from_millis(*value),
            "idle_timeout" => spec.idle_timeout = seconds(*value),
            "max_lifetime" => spec.max_lifetime = seconds(*value),
            "validate_after" => spec.validate_after = seconds(*value),
            "leak_threshold_ms" => {
                spec.leak_threshold = (*value > 0).then(|| Duration::from_millis(*value))
            }
            _ => {}
        }
    }
    if !spec.autoscale {
        spec.scale_min = spec.scale_min.min(spec.max_size);
        spec.scale_max = spec.scale_max.max(spec.max_size);
    }
    spec
}
