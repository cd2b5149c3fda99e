//! Building [`Opts`] from the winning settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::keys::POOL_FIELDS;
use super::load::{compiled_defaults, describe, find_key};
use super::opts::{
    AdminBind, AdminOpts, Admission, ContextOptimizerOpts, LimiterOpts, MemoryOptimizerOpts,
    MonitoringOpts, Opts, PoolOpts, ProcessOpts, ProfilerOpts, ServerOpts, StaticFileOpts, Store,
    SupervisorOpts, TemplateOpts, TunerMode, TunerOpts,
};
use super::parse::invalid;
use super::value::{AlertSpec, Setting, Value};
use super::{ConfigError, DEFAULT_PROFILE, Profile, Source};

impl Default for Opts {
    /// The compiled defaults (dev profile), without reading files or the environment and
    /// without checking that the root folder exists.
    fn default() -> Self {
        let settings = compiled_defaults().expect("every compiled default is valid");
        let mut opts = Opts::build(DEFAULT_PROFILE, &settings);
        let profile = Setting {
            value: Value::Text(DEFAULT_PROFILE.name().to_owned()),
            source: Source::Default,
        };
        opts.described = describe(&profile, &settings, &opts);
        opts
    }
}

impl Opts {
    pub(super) fn resolve(
        profile: Profile,
        settings: &BTreeMap<&'static str, Setting>,
    ) -> Result<Opts, ConfigError> {
        let opts = Opts::build(profile, settings);
        let root = &opts.static_files.root_dir;
        if !root.is_dir() {
            let key = find_key("static_files.root_dir").expect("declared key");
            let source = settings
                .get(key.path)
                .map_or(Source::Default, |s| s.source.clone());
            return Err(invalid(key, &source, root.display().to_string()));
        }
        Ok(opts)
    }

    /// Builds options from checked settings; every key with a compiled default is present.
    pub(super) fn build(profile: Profile, settings: &BTreeMap<&'static str, Setting>) -> Opts {
        let int = |path: &str| match settings.get(path).map(|s| &s.value) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        let flag = |path: &str| {
            matches!(
                settings.get(path).map(|s| &s.value),
                Some(Value::Bool(true))
            )
        };
        let text = |path: &str| match settings.get(path).map(|s| &s.value) {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        };
        let secs = |path: &str| Duration::from_secs(int(path));
        let millis = |path: &str| Duration::from_millis(int(path));
        let workers = match settings.get("server.workers") {
            Some(_) => int("server.workers") as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let bind = text("server.bind")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        Opts {
            profile,
            server: ServerOpts {
                bind,
                workers,
                shutdown_timeout: secs("server.shutdown_timeout"),
                client_request_timeout: millis("server.client_request_timeout_ms"),
                keep_alive: secs("server.keep_alive_s"),
                client_disconnect_timeout: millis("server.client_disconnect_timeout_ms"),
                max_connections: int("server.max_connections") as usize,
                max_header_bytes: int("server.max_header_bytes") as usize,
            },
            admin: AdminOpts {
                bind: match text("admin.bind").as_deref().and_then(AdminBind::parse) {
                    Some(AdminBind::Tcp(addr)) if addr == bind && addr.port() != 0 => {
                        AdminBind::Serving
                    }
                    Some(admin) => admin,
                    None => AdminBind::Tcp(SocketAddr::from(([127, 0, 0, 1], 8081))),
                },
                token: text("admin.token"),
            },
            supervisor: SupervisorOpts {
                max_restarts: int("supervisor.max_restarts") as u32,
                period: secs("supervisor.period"),
                backoff: millis("supervisor.backoff_ms"),
                max_backoff: millis("supervisor.max_backoff_ms"),
                call_timeout: millis("supervisor.call_timeout_ms"),
            },
            static_files: StaticFileOpts {
                root_dir: PathBuf::from(text("static_files.root_dir").unwrap_or_default()),
                enable_cache: flag("static_files.enable_cache"),
                enable_compression: flag("static_files.enable_compression"),
                max_cache_size: int("static_files.max_cache_size"),
                cache_expiration: secs("static_files.cache_expiration"),
                max_file_size: int("static_files.max_file_size"),
                min_compress_size: int("static_files.min_compress_size"),
                compress_extensions: match settings
                    .get("static_files.compress_extensions")
                    .map(|s| &s.value)
                {
                    Some(Value::List(words)) => words
                        .iter()
                        .map(|word| word.trim_start_matches('.').to_ascii_lowercase())
                        .collect(),
                    _ => Vec::new(),
                },
                store: if text("static_files.store").as_deref() == Some("compressed-only") {
                    Store::CompressedOnly
                } else {
                    Store::Both
                },
                compression_workers: int("static_files.compression_workers") as usize,
                identity_copy_percent: int("static_files.identity_copy_percent"),
                admission: if text("static_files.admission").as_deref() == Some("lru") {
                    Admission::Lru
                } else {
                    Admission::TinyLfu
                },
                cache_control: text("static_files.cache_control").unwrap_or_default(),
                index_file: text("static_files.index_file").unwrap_or_default(),
                serve_hidden: flag("static_files.serve_hidden"),
            },
            process: ProcessOpts {
                sample_interval: secs("process.sample_interval"),
            },
            monitoring: {
                let interval = millis("monitoring.interval_ms").max(Duration::from_millis(100));
                let history = secs("monitoring.history_seconds");
                MonitoringOpts {
                    enabled: flag("monitoring.enabled"),
                    public_metrics: flag("monitoring.public_metrics"),
                    interval,
                    history_len: ((history.as_millis() / interval.as_millis()).max(2) as usize)
                        .min(10_000),
                    webhook_url: text("monitoring.webhook_url"),
                    webhook_timeout: millis("monitoring.webhook_timeout_ms"),
                    webhook_retries: int("monitoring.webhook_retries") as u32,
                    alerts: match settings.get("monitoring.alerts").map(|s| &s.value) {
                        Some(Value::Alerts(specs)) => {
                            alert_rules(int("profiler.memory_threshold_mb"), specs)
                        }
                        _ => alert_rules(int("profiler.memory_threshold_mb"), &[]),
                    },
                }
            },
            profiler: ProfilerOpts {
                memory_threshold_mb: int("profiler.memory_threshold_mb"),
                interval: secs("profiler.interval"),
                snapshots: int("profiler.snapshots") as usize,
                heap_profiling: flag("profiler.heap_profiling"),
                profiles_dir: PathBuf::from(text("profiler.profiles_dir").unwrap_or_default()),
            },
            templates: TemplateOpts {
                memory: MemoryOptimizerOpts {
                    enabled: flag("memory_optimizer.enabled"),
                    deduplication: flag("memory_optimizer.enable_deduplication"),
                    lazy_loading: flag("memory_optimizer.enable_lazy_loading"),
                    compression: flag("memory_optimizer.enable_compression"),
                    gc_hints: flag("memory_optimizer.enable_gc_hints"),
                },
                context: ContextOptimizerOpts {
                    enabled: flag("context_optimizer.enabled"),
                    deduplication: flag("context_optimizer.enable_deduplication"),
                    lazy_loading: flag("context_optimizer.enable_lazy_loading"),
                    compression: flag("context_optimizer.enable_compression"),
                },
                enabled: flag("templates.enabled"),
                dir: PathBuf::from(text("templates.dir").unwrap_or_default()),
                reload_interval: Some(secs("templates.reload_interval"))
                    .filter(|interval| !interval.is_zero()),
                render_workers: int("templates.render_workers") as usize,
                max_fuel: int("templates.max_fuel"),
                max_output_bytes: int("templates.max_output_bytes"),
                max_context_bytes: int("templates.max_context_bytes") as usize,
                max_inheritance_depth: int("templates.max_inheritance_depth") as usize,
                flatten_inheritance: flag("templates.flatten_inheritance"),
                cache_optimized_templates: flag("templates.cache_optimized_templates"),
            },
            pools: {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                let values: Vec<(&'static str, u64)> = POOL_FIELDS
                    .iter()
                    .filter_map(|field| {
                        let path = format!("pools.{field}");
                        match settings.get(path.as_str()).map(|s| &s.value) {
                            Some(Value::Int(n)) => Some((*field, *n)),
                            Some(Value::Bool(b)) => Some((*field, u64::from(*b))),
                            _ => None,
                        }
                    })
                    .collect();
                let defaults = pool_spec(crate::pool::PoolSpec::new(cpus), &values);
                let overrides = match settings.get("pools.overrides").map(|s| &s.value) {
                    Some(Value::PoolOverrides(overrides)) => overrides
                        .iter()
                        .map(|o| {
                            let mut merged = values.clone();
                            merged.extend(o.values.iter().copied());
                            (
                                o.pool.clone(),
                                pool_spec(crate::pool::PoolSpec::new(cpus), &merged),
                            )
                        })
                        .collect(),
                    _ => BTreeMap::new(),
                };
                PoolOpts {
                    enabled: flag("pools.enabled"),
                    defaults,
                    overrides,
                    maintenance_interval: millis("pools.maintenance_interval_ms"),
                }
            },
            limiter: LimiterOpts {
                enabled: flag("limiter.enabled"),
                config: crate::concurrency::LimiterConfig {
                    limit: crate::concurrency::LimitConfig {
                        initial: int("limiter.min_limit") as usize,
                        min: int("limiter.min_limit") as usize,
                        max: int("limiter.max_limit") as usize,
                        tolerance: int("limiter.latency_tolerance_percent") as f64 / 100.0,
                        grow_below: 1.0
                            + (int("limiter.latency_tolerance_percent") as f64 / 100.0 - 1.0) * 0.4,
                        ..crate::concurrency::LimitConfig::default()
                    },
                    queue_size: int("limiter.queue_size") as usize,
                    queue_timeout: millis("limiter.queue_timeout_ms"),
                    overload_timeout: millis("limiter.overload_timeout_ms"),
                    overload_after: millis("limiter.queue_timeout_ms"),
                },
            },
            tuner: TunerOpts {
                mode: match text("tuner.mode").as_deref() {
                    _ if !flag("tuner.enabled") => TunerMode::Off,
                    Some("off") => TunerMode::Off,
                    Some("recommend") => TunerMode::Recommend,
                    _ => TunerMode::Auto,
                },
                interval: secs("tuner.interval"),
                memory_limit: settings
                    .get("tuner.memory_limit_mb")
                    .map(|_| int("tuner.memory_limit_mb") << 20),
                target_share: int("tuner.target_memory_percent") as f64 / 100.0,
                cache_floor: int("tuner.cache_floor_mb") << 20,
                cache_ceiling: match settings.get("tuner.cache_ceiling_mb") {
                    Some(_) => int("tuner.cache_ceiling_mb") << 20,
                    None => int("static_files.max_cache_size"),
                },
            },
            described: Vec::new(),
        }
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
fn pool_spec(base: crate::pool::PoolSpec, values: &[(&'static str, u64)]) -> crate::pool::PoolSpec {
    let get = |field: &str| {
        values
            .iter()
            .rev()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| *v)
    };
    let mut spec = match get("max_size") {
        Some(max) => crate::pool::PoolSpec {
            scale_min: base.scale_min,
            ..crate::pool::PoolSpec::new(max as usize)
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
