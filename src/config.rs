//! Configuration: layered sources resolved once, at start, into validated [`Opts`].
//!
//! Precedence, highest first: command-line flags, environment variables,
//! `config/<profile>.toml`, `config/default.toml`, compiled defaults. The profile (dev,
//! test, prod; default dev) comes from `--env` or `LEANSERVE_ENV`.
//!
//! Every key is declared once in [`KEYS`] with its kind, range, environment variable and
//! compiled default. Each layer is parsed and checked against that table as it is read, so
//! a bad value names its key, where it came from and what is allowed, whichever layer it
//! is in; the table also drives `leanserve config` (each value with its source) and the
//! README's configuration table, which a test keeps in step.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The profile used when neither `--env` nor `LEANSERVE_ENV` names one.
pub const DEFAULT_PROFILE: Profile = Profile::Dev;
/// Environment variable that selects the profile.
pub const PROFILE_ENV: &str = "LEANSERVE_ENV";
/// Folder of the configuration files, relative to the working directory.
pub const DEFAULT_CONFIG_DIR: &str = "config";

/// A deployment profile: selects `config/<profile>.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Test,
    Prod,
}

impl Profile {
    /// Every profile, in the order the README lists them.
    pub const ALL: [Profile; 3] = [Profile::Dev, Profile::Test, Profile::Prod];

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
pub enum Source {
    /// Compiled into leanserve.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag, as written (`--bind`, `--set server.workers=4`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("compiled default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration mistake; start-up stops on any of them (the binary exits with code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value of the wrong type or out of range.
    #[error("invalid value for `{key}` from {origin}: {value:?} (allowed: {allowed})")]
    Invalid {
        key: String,
        origin: Source,
        value: String,
        allowed: String,
    },
    /// A `--set` flag or command-line override for a key that does not exist.
    #[error("unknown configuration key `{key}` from {origin}")]
    UnknownKey { key: String, origin: Source },
    /// A configuration file exists but cannot be read.
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A configuration file is not valid TOML.
    #[error("{} is not valid TOML: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// `--config` names a folder that does not exist.
    #[error("configuration folder {} (from {origin}) does not exist", path.display())]
    MissingDir { path: PathBuf, origin: Source },
    /// Settings that would leave the admin surface open; `reason` names the keys.
    #[error("refusing to start: {reason}")]
    Insecure { reason: String },
}

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

const fn key(
    path: &'static str,
    env: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key {
        path,
        env,
        kind,
        default,
        secret: false,
        help,
    }
}

const fn int(min: u64, max: u64, unit: &'static str) -> Kind {
    Kind::Int { min, max, unit }
}

/// Every configuration key leanserve knows.
pub const KEYS: &[Key] = &[
    key(
        "server.bind",
        "LEANSERVE_BIND",
        Kind::Addr,
        Some("127.0.0.1:8080"),
        "address and port the HTTP server listens on",
    ),
    key(
        "server.workers",
        "LEANSERVE_WORKERS",
        int(1, 1024, "threads"),
        None,
        "HTTP worker threads (default: number of CPUs)",
    ),
    key(
        "server.shutdown_timeout",
        "LEANSERVE_SHUTDOWN_TIMEOUT",
        int(0, 3600, "seconds"),
        Some("30"),
        "time in-flight requests get to finish on SIGINT/SIGTERM",
    ),
    key(
        "server.client_request_timeout_ms",
        "LEANSERVE_CLIENT_REQUEST_TIMEOUT_MS",
        int(0, 600_000, "milliseconds"),
        Some("5000"),
        "time a client gets to send a request's head (line and headers) before the connection is closed (408 if anything arrived); 0: no limit",
    ),
    key(
        "server.keep_alive_s",
        "LEANSERVE_KEEP_ALIVE_S",
        int(0, 3600, "seconds"),
        Some("5"),
        "how long an idle keep-alive connection stays open; 0: one request per connection",
    ),
    key(
        "server.client_disconnect_timeout_ms",
        "LEANSERVE_CLIENT_DISCONNECT_TIMEOUT_MS",
        int(0, 600_000, "milliseconds"),
        Some("1000"),
        "time a client gets to close its side once the server is done with a connection",
    ),
    key(
        "server.max_connections",
        "LEANSERVE_MAX_CONNECTIONS",
        int(1, 1_000_000, "connections"),
        Some("25000"),
        "open connections per worker; past it the worker stops accepting until one closes",
    ),
    key(
        "server.max_header_bytes",
        "LEANSERVE_MAX_HEADER_BYTES",
        int(1024, 131_072, "bytes"),
        Some("32768"),
        "largest request head (line and headers) answered; larger gets 431 (actix-http refuses heads over 128 KiB itself)",
    ),
    key(
        "admin.bind",
        "LEANSERVE_ADMIN_BIND",
        Kind::Listen,
        Some("127.0.0.1:8081"),
        "where the admin surface listens (/admin, /debug, /metrics, /monitoring, /dashboard; the serving listener answers those paths 404); a Unix socket is created owner-only; serving shares server.bind",
    ),
    Key {
        secret: true,
        ..key(
            "admin.token",
            "LEANSERVE_ADMIN_TOKEN",
            Kind::Text,
            None,
            "bearer token for the admin surface; unset: it answers loopback and Unix-socket peers only; required when admin.bind is not loopback or a Unix socket, and in the prod profile unless it is a Unix socket",
        )
    },
    key(
        "supervisor.max_restarts",
        "LEANSERVE_SUPERVISOR_MAX_RESTARTS",
        int(0, 1000, "restarts"),
        Some("3"),
        "restarts allowed within supervisor.period before a supervisor gives up",
    ),
    key(
        "supervisor.period",
        "LEANSERVE_SUPERVISOR_PERIOD",
        int(1, 86_400, "seconds"),
        Some("5"),
        "window of the restart intensity",
    ),
    key(
        "supervisor.backoff_ms",
        "LEANSERVE_SUPERVISOR_BACKOFF_MS",
        int(0, 60_000, "milliseconds"),
        Some("0"),
        "delay before a restart, doubled per recent restart (0: none)",
    ),
    key(
        "supervisor.max_backoff_ms",
        "LEANSERVE_SUPERVISOR_MAX_BACKOFF_MS",
        int(0, 600_000, "milliseconds"),
        Some("30000"),
        "cap of the restart backoff",
    ),
    key(
        "supervisor.call_timeout_ms",
        "LEANSERVE_SUPERVISOR_CALL_TIMEOUT_MS",
        int(1, 60_000, "milliseconds"),
        Some("2000"),
        "how long a call waits for a restarting actor",
    ),
    key(
        "static_files.root_dir",
        "STATIC_FILE_ROOT_DIR",
        Kind::Dir,
        Some("static"),
        "folder served at /",
    ),
    key(
        "static_files.enable_cache",
        "STATIC_FILE_CACHE_ENABLED",
        Kind::Bool,
        Some("true"),
        "keep served files in the in-memory cache",
    ),
    key(
        "static_files.enable_compression",
        "STATIC_FILE_COMPRESSION_ENABLED",
        Kind::Bool,
        Some("true"),
        "serve gzip to clients that accept it",
    ),
    key(
        "static_files.max_cache_size",
        "STATIC_FILE_MAX_CACHE_SIZE",
        int(0, 1 << 40, "bytes"),
        Some("104857600"),
        "byte budget of the file cache",
    ),
    key(
        "static_files.cache_expiration",
        "STATIC_FILE_CACHE_EXPIRATION",
        int(0, 31_536_000, "seconds"),
        Some("3600"),
        "age after which a cached file is revalidated against the disk",
    ),
    key(
        "static_files.max_file_size",
        "STATIC_FILE_MAX_FILE_SIZE",
        int(0, 1 << 34, "bytes"),
        Some("8388608"),
        "largest file held in the cache; larger ones are streamed from disk",
    ),
    key(
        "static_files.min_compress_size",
        "STATIC_FILE_MIN_COMPRESS_SIZE",
        int(0, 1 << 30, "bytes"),
        Some("1024"),
        "smallest file worth compressing",
    ),
    key(
        "static_files.compress_extensions",
        "STATIC_FILE_COMPRESS_EXTENSIONS",
        Kind::List,
        Some("html,htm,css,js,mjs,json,map,xml,txt,md,svg,csv,wasm"),
        "extensions stored gzip-compressed as well",
    ),
    key(
        "static_files.store",
        "STATIC_FILE_STORE",
        Kind::Choice(&["both", "compressed-only"]),
        Some("both"),
        "what the cache keeps of a compressible file: both representations, or only gzip (inflated for the rare client without gzip)",
    ),
    key(
        "static_files.compression_workers",
        "STATIC_FILE_COMPRESSION_WORKERS",
        int(1, 64, "files"),
        Some("1"),
        "files the cache gzips at once, in the background and hottest first (a miss is answered from the bytes read, never waits for compression)",
    ),
    key(
        "static_files.identity_copy_percent",
        "STATIC_FILE_IDENTITY_COPY_PERCENT",
        int(0, 100, "percent"),
        Some("10"),
        "with store = compressed-only: share of the budget for identity copies of files identity clients read often (0: always inflate)",
    ),
    key(
        "static_files.admission",
        "STATIC_FILE_ADMISSION",
        Kind::Choice(&["tinylfu", "lru"]),
        Some("tinylfu"),
        "which new files the full cache takes in: tinylfu (only files read more often lately, per byte, than those they would evict) or lru (every file)",
    ),
    key(
        "static_files.cache_control",
        "STATIC_FILE_CACHE_CONTROL",
        Kind::Text,
        Some("no-cache"),
        "Cache-Control header of static responses",
    ),
    key(
        "static_files.index_file",
        "STATIC_FILE_INDEX_FILE",
        Kind::FileName,
        Some("index.html"),
        "file served for a directory path",
    ),
    key(
        "static_files.serve_hidden",
        "STATIC_FILE_SERVE_HIDDEN",
        Kind::Bool,
        Some("false"),
        "serve dotfiles (otherwise they are 404)",
    ),
    key(
        "monitoring.enabled",
        "LEANSERVE_MONITORING_ENABLED",
        Kind::Bool,
        Some("true"),
        "per-request figures, the monitor, its alerts and the dashboard",
    ),
    key(
        "monitoring.public_metrics",
        "LEANSERVE_MONITORING_PUBLIC_METRICS",
        Kind::Bool,
        Some("false"),
        "also answer GET /metrics on the serving listener, for scrapers that cannot reach the admin listener (it reveals memory figures and thresholds)",
    ),
    key(
        "monitoring.interval_ms",
        "LEANSERVE_MONITORING_INTERVAL_MS",
        int(100, 3_600_000, "milliseconds"),
        Some("5000"),
        "how often the monitor collects figures and evaluates alerts",
    ),
    key(
        "monitoring.history_seconds",
        "LEANSERVE_MONITORING_HISTORY_SECONDS",
        int(10, 86_400, "seconds"),
        Some("3600"),
        "how much history the monitor keeps (at most 10,000 samples)",
    ),
    key(
        "monitoring.webhook_url",
        "LEANSERVE_MONITORING_WEBHOOK_URL",
        Kind::Url,
        None,
        "Alertmanager-compatible receiver of firing and resolved alerts",
    ),
    key(
        "monitoring.webhook_timeout_ms",
        "LEANSERVE_MONITORING_WEBHOOK_TIMEOUT_MS",
        int(100, 60_000, "milliseconds"),
        Some("2000"),
        "timeout of one webhook POST",
    ),
    key(
        "monitoring.webhook_retries",
        "LEANSERVE_MONITORING_WEBHOOK_RETRIES",
        int(0, 10, "retries"),
        Some("3"),
        "retries of a failed webhook POST, with doubling delays",
    ),
    key(
        "monitoring.alerts",
        "LEANSERVE_MONITORING_ALERTS",
        Kind::Alerts,
        None,
        "changes to the default alert rules, and new ones",
    ),
    key(
        "process.sample_interval",
        "LEANSERVE_PROCESS_SAMPLE_INTERVAL",
        int(1, 3600, "seconds"),
        Some("5"),
        "how often the process sampler reads RSS and CPU",
    ),
    key(
        "profiler.memory_threshold_mb",
        "MEMORY_THRESHOLD_MB",
        int(1, 1 << 20, "MiB"),
        Some("512"),
        "resident memory above which memory_high fires (memory_critical at 1.25x)",
    ),
    key(
        "profiler.interval",
        "PROFILE_INTERVAL_SECONDS",
        int(1, 86_400, "seconds"),
        Some("300"),
        "how often the profiler takes a memory snapshot",
    ),
    key(
        "profiler.snapshots",
        "LEANSERVE_PROFILER_SNAPSHOTS",
        int(2, 10_000, "snapshots"),
        Some("100"),
        "snapshots kept (the oldest go first)",
    ),
    key(
        "profiler.heap_profiling",
        "LEANSERVE_PROFILER_HEAP_PROFILING",
        Kind::Bool,
        Some("true"),
        "sample the heap (one sample per 512 KiB allocated) so heap profiles can be taken",
    ),
    key(
        "profiler.profiles_dir",
        "LEANSERVE_PROFILER_PROFILES_DIR",
        Kind::Path,
        Some("profiles"),
        "where captured heap profiles are written (created when needed)",
    ),
    key(
        "templates.enabled",
        "TEMPLATES_ENABLED",
        Kind::Bool,
        Some("true"),
        "load templates and render them at /templates/{name}",
    ),
    key(
        "templates.dir",
        "TEMPLATES_DIR",
        Kind::Path,
        Some("templates"),
        "folder of Jinja templates (missing: no templates, with a warning)",
    ),
    key(
        "templates.reload_interval",
        "TEMPLATE_RELOAD_INTERVAL",
        int(0, 3600, "seconds"),
        Some("2"),
        "how often changed template files are reloaded (0: only on POST /admin/templates/reload)",
    ),
    key(
        "templates.render_workers",
        "LEANSERVE_TEMPLATES_RENDER_WORKERS",
        int(1, 256, "threads"),
        Some("2"),
        "renders (and template optimizations) running at once on the blocking pool",
    ),
    key(
        "templates.max_fuel",
        "LEANSERVE_TEMPLATES_MAX_FUEL",
        int(1_000, 10_000_000_000, "instructions"),
        Some("5000000"),
        "instructions one render may execute before it is stopped",
    ),
    key(
        "templates.max_output_bytes",
        "LEANSERVE_TEMPLATES_MAX_OUTPUT_BYTES",
        int(1_024, 1 << 30, "bytes"),
        Some("8388608"),
        "largest output one render may produce",
    ),
    key(
        "templates.max_context_bytes",
        "LEANSERVE_TEMPLATES_MAX_CONTEXT_BYTES",
        int(2, 64 << 20, "bytes"),
        Some("262144"),
        "largest JSON body a POST render accepts",
    ),
    key(
        "templates.max_inheritance_depth",
        "MAX_INHERITANCE_DEPTH",
        int(1, 64, "templates"),
        Some("3"),
        "longest extends chain served without flattening (chains over 64 are load errors)",
    ),
    key(
        "templates.flatten_inheritance",
        "FLATTEN_INHERITANCE",
        Kind::Bool,
        Some("true"),
        "serve every extends chain flattened into one template",
    ),
    key(
        "templates.cache_optimized_templates",
        "CACHE_OPTIMIZED_TEMPLATES",
        Kind::Bool,
        Some("true"),
        "keep flattened templates across reloads until their chain changes",
    ),
    key(
        "memory_optimizer.enabled",
        "MEMORY_OPTIMIZER_ENABLED",
        Kind::Bool,
        Some("true"),
        "template memory optimizer: the four options below",
    ),
    key(
        "memory_optimizer.enable_deduplication",
        "MEMORY_OPTIMIZER_DEDUPLICATION",
        Kind::Bool,
        Some("true"),
        "compile identical templates once and hold static sections repeated across templates once",
    ),
    key(
        "memory_optimizer.enable_lazy_loading",
        "MEMORY_OPTIMIZER_LAZY_LOADING",
        Kind::Bool,
        Some("true"),
        "compile a template on its first render, not at load",
    ),
    key(
        "memory_optimizer.enable_compression",
        "MEMORY_OPTIMIZER_COMPRESSION",
        Kind::Bool,
        Some("false"),
        "hold not-yet-compiled templates gzip-compressed (with lazy loading)",
    ),
    key(
        "memory_optimizer.enable_gc_hints",
        "MEMORY_OPTIMIZER_GC_HINTS",
        Kind::Bool,
        Some("true"),
        "return freed pages to the OS after each template load (jemalloc)",
    ),
    key(
        "context_optimizer.enabled",
        "CONTEXT_OPTIMIZER_ENABLED",
        Kind::Bool,
        Some("true"),
        "template context optimizer: variable analysis, usage tracking and the options below",
    ),
    key(
        "context_optimizer.enable_deduplication",
        "CONTEXT_OPTIMIZER_DEDUPLICATION",
        Kind::Bool,
        Some("true"),
        "hold equal context strings once (interning)",
    ),
    key(
        "context_optimizer.enable_lazy_loading",
        "CONTEXT_OPTIMIZER_LAZY_LOADING",
        Kind::Bool,
        Some("true"),
        "load templates/data/*.json only when a render reads them",
    ),
    key(
        "context_optimizer.enable_compression",
        "CONTEXT_OPTIMIZER_COMPRESSION",
        Kind::Bool,
        Some("false"),
        "keep no data file in memory: read it on each render that uses it",
    ),
    key(
        "pools.enabled",
        "RESOURCE_POOL_MANAGER_ENABLED",
        Kind::Bool,
        Some("true"),
        "resource pool manager: pooled compressors, inflaters and render buffers, /admin/pools (off: made per use)",
    ),
    key(
        "pools.max_size",
        "LEANSERVE_POOLS_MAX_SIZE",
        int(1, 4096, "objects"),
        None,
        "most objects a pool holds at the start (default: number of CPUs)",
    ),
    key(
        "pools.min_idle",
        "LEANSERVE_POOLS_MIN_IDLE",
        int(0, 4096, "objects"),
        Some("0"),
        "objects a pool keeps idle and ready",
    ),
    key(
        "pools.autoscale",
        "LEANSERVE_POOLS_AUTOSCALE",
        Kind::Bool,
        Some("true"),
        "move each pool's maximum between scale_min and scale_max from its acquire wait and utilization",
    ),
    key(
        "pools.scale_min",
        "LEANSERVE_POOLS_SCALE_MIN",
        int(1, 4096, "objects"),
        Some("1"),
        "lowest maximum the autoscaler sets",
    ),
    key(
        "pools.scale_max",
        "LEANSERVE_POOLS_SCALE_MAX",
        int(1, 4096, "objects"),
        None,
        "highest maximum the autoscaler sets (default: 4 x max_size)",
    ),
    key(
        "pools.wait_target_ms",
        "LEANSERVE_POOLS_WAIT_TARGET_MS",
        int(1, 60_000, "milliseconds"),
        Some("5"),
        "p99 acquire wait above which a pool at its maximum grows",
    ),
    key(
        "pools.acquire_timeout_ms",
        "LEANSERVE_POOLS_ACQUIRE_TIMEOUT_MS",
        int(1, 600_000, "milliseconds"),
        Some("5000"),
        "how long an acquire waits for an object",
    ),
    key(
        "pools.idle_timeout",
        "LEANSERVE_POOLS_IDLE_TIMEOUT",
        int(0, 86_400, "seconds"),
        Some("60"),
        "idle objects above min_idle older than this are dropped (0: kept)",
    ),
    key(
        "pools.max_lifetime",
        "LEANSERVE_POOLS_MAX_LIFETIME",
        int(0, 604_800, "seconds"),
        Some("1800"),
        "objects older than this are replaced, less up to a tenth at random (0: no limit)",
    ),
    key(
        "pools.validate_after",
        "LEANSERVE_POOLS_VALIDATE_AFTER",
        int(0, 86_400, "seconds"),
        Some("30"),
        "objects idle longer than this are validated before reuse (0: never)",
    ),
    key(
        "pools.leak_threshold_ms",
        "LEANSERVE_POOLS_LEAK_THRESHOLD_MS",
        int(0, 86_400_000, "milliseconds"),
        Some("30000"),
        "a hold longer than this is logged once with where it was acquired, and counted (0: off)",
    ),
    key(
        "pools.maintenance_interval_ms",
        "LEANSERVE_POOLS_MAINTENANCE_INTERVAL_MS",
        int(100, 60_000, "milliseconds"),
        Some("1000"),
        "how often the pool manager reaps, refills, scans for leaks and autoscales",
    ),
    key(
        "pools.overrides",
        "LEANSERVE_POOLS_OVERRIDES",
        Kind::PoolOverrides,
        None,
        "per-pool changes to the [pools] values",
    ),
    key(
        "limiter.enabled",
        "LEANSERVE_LIMITER_ENABLED",
        Kind::Bool,
        Some("true"),
        "adaptive in-flight limits on static files and template renders (excess requests queue briefly, then get 503 with Retry-After)",
    ),
    key(
        "limiter.min_limit",
        "LEANSERVE_LIMITER_MIN_LIMIT",
        int(1, 100_000, "requests"),
        Some("4"),
        "lowest in-flight limit, and where each limit starts",
    ),
    key(
        "limiter.max_limit",
        "LEANSERVE_LIMITER_MAX_LIMIT",
        int(1, 100_000, "requests"),
        Some("1000"),
        "highest in-flight limit",
    ),
    key(
        "limiter.latency_tolerance_percent",
        "LEANSERVE_LIMITER_LATENCY_TOLERANCE_PERCENT",
        int(101, 1000, "percent"),
        Some("125"),
        "median latency, as a percentage of the no-load latency, above which a limit shrinks",
    ),
    key(
        "limiter.queue_size",
        "LEANSERVE_LIMITER_QUEUE_SIZE",
        int(0, 100_000, "requests"),
        Some("128"),
        "requests that may wait for a slot; more are refused at once",
    ),
    key(
        "limiter.queue_timeout_ms",
        "LEANSERVE_LIMITER_QUEUE_TIMEOUT_MS",
        int(1, 60_000, "milliseconds"),
        Some("100"),
        "longest wait for a slot while the queue drains",
    ),
    key(
        "limiter.overload_timeout_ms",
        "LEANSERVE_LIMITER_OVERLOAD_TIMEOUT_MS",
        int(1, 60_000, "milliseconds"),
        Some("5"),
        "wait for a slot once no request has found a free slot for queue_timeout_ms (a standing queue, served newest first)",
    ),
    key(
        "tuner.enabled",
        "CONFIG_TUNER_ENABLED",
        Kind::Bool,
        Some("true"),
        "configuration tuner: cache budget under the memory limit, allocator decay, pool maximums, worker recommendations",
    ),
    key(
        "tuner.mode",
        "LEANSERVE_TUNER_MODE",
        Kind::Choice(&["off", "recommend", "auto"]),
        Some("auto"),
        "recommend: compute and show; auto: also apply the live knobs every interval",
    ),
    key(
        "tuner.interval",
        "LEANSERVE_TUNER_INTERVAL",
        int(1, 86_400, "seconds"),
        Some("30"),
        "how often the tuner reads its figures and decides",
    ),
    key(
        "tuner.memory_limit_mb",
        "LEANSERVE_TUNER_MEMORY_LIMIT_MB",
        int(1, 1_048_576, "MiB"),
        None,
        "memory limit to stay under when no cgroup sets one (default: the machine's memory)",
    ),
    key(
        "tuner.target_memory_percent",
        "LEANSERVE_TUNER_TARGET_MEMORY_PERCENT",
        int(10, 99, "percent"),
        Some("85"),
        "share of the memory limit RSS is kept under",
    ),
    key(
        "tuner.cache_floor_mb",
        "LEANSERVE_TUNER_CACHE_FLOOR_MB",
        int(0, 1_048_576, "MiB"),
        Some("8"),
        "smallest file cache budget the tuner sets",
    ),
    key(
        "tuner.cache_ceiling_mb",
        "LEANSERVE_TUNER_CACHE_CEILING_MB",
        int(1, 1_048_576, "MiB"),
        None,
        "largest file cache budget the tuner sets (default: static_files.max_cache_size)",
    ),
];

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

/// leanserve's own pools, the names `[pools.overrides.<pool>]` takes.
pub const BUILTIN_POOLS: [&str; 3] = [
    crate::codec::GZIP_POOL,
    crate::codec::INFLATE_POOL,
    crate::templates::render::BUFFER_POOL,
];

/// The fields of a `[pools.overrides.<pool>]` table: the `[pools]` keys a pool can change.
const POOL_FIELDS: [&str; 11] = [
    "max_size",
    "min_idle",
    "autoscale",
    "scale_min",
    "scale_max",
    "wait_target_ms",
    "acquire_timeout_ms",
    "idle_timeout",
    "max_lifetime",
    "validate_after",
    "leak_threshold_ms",
];

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

/// What the caller knows before configuration is read: the binary fills it from its
/// flags and the process environment; tests fill it directly.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config DIR`; `None` uses `config/` if it exists.
    pub config_dir: Option<PathBuf>,
    /// `--env PROFILE`.
    pub profile: Option<String>,
    /// The environment variables to consult.
    pub env: HashMap<String, String>,
    /// Command-line overrides in order: (key path, value, flag as written).
    pub flags: Vec<(String, String, String)>,
    /// Do not require `static_files.root_dir` to exist (for commands that only talk to a
    /// running server).
    pub skip_root_check: bool,
}

impl LoadOptions {
    /// Options that read the real process environment.
    pub fn from_process_env() -> Self {
        LoadOptions {
            env: std::env::vars().collect(),
            ..LoadOptions::default()
        }
    }
}

/// The resolved configuration: every key's winning value with its source, the profile,
/// warnings for unknown keys, and the typed [`Opts`].
#[derive(Clone, Debug)]
pub struct Config {
    pub profile: Setting,
    pub settings: BTreeMap<&'static str, Setting>,
    /// Unknown keys found in files, to be logged once a logger exists.
    pub warnings: Vec<String>,
    pub opts: Opts,
}

impl Config {
    /// Reads every layer, checks every value and resolves [`Opts`].
    pub fn load(options: &LoadOptions) -> Result<Config, ConfigError> {
        let (profile_value, profile) = resolve_profile(options)?;
        let mut settings = BTreeMap::new();
        for key in KEYS {
            if let Some(default) = key.default {
                let value = parse_text(key, default, &Source::Default)?;
                settings.insert(
                    key.path,
                    Setting {
                        value,
                        source: Source::Default,
                    },
                );
            }
        }
        let mut warnings = Vec::new();
        if let Some(dir) = config_dir(options)? {
            for file in ["default.toml".to_owned(), format!("{profile_value}.toml")] {
                let path = dir.join(file);
                if path.is_file() {
                    read_file(&path, &mut settings, &mut warnings)?;
                }
            }
        }
        for key in KEYS {
            if let Some(text) = options.env.get(key.env) {
                let source = Source::Env(key.env);
                let value = parse_text(key, text, &source)?;
                settings.insert(key.path, Setting { value, source });
            }
        }
        for (path, text, flag) in &options.flags {
            let source = Source::Flag(flag.clone());
            let key = find_key(path).ok_or_else(|| ConfigError::UnknownKey {
                key: path.clone(),
                origin: source.clone(),
            })?;
            let value = parse_text(key, text, &source)?;
            settings.insert(key.path, Setting { value, source });
        }
        let mut opts = if options.skip_root_check {
            Opts::build(profile_value, &settings)
        } else {
            Opts::resolve(profile_value, &settings)?
        };
        fit_default_cache_floor(&mut opts, &settings);
        check_pools(&opts, &settings)?;
        check_admin(&opts, &settings)?;
        opts.described = describe(&profile, &settings, &opts);
        Ok(Config {
            profile,
            settings,
            warnings,
            opts,
        })
    }

    /// Every key with its value (secrets redacted, unset keys as `(unset)`) and source.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        self.opts.described.clone()
    }
}

/// The rows of [`Config::describe`]: (key, value, source), the profile first.
fn describe(
    profile: &Setting,
    settings: &BTreeMap<&'static str, Setting>,
    opts: &Opts,
) -> Vec<(String, String, String)> {
    let mut rows = vec![(
        "env".to_owned(),
        profile.value.to_string(),
        profile.source.to_string(),
    )];
    for key in KEYS {
        let row = match settings.get(key.path) {
            Some(setting) if key.secret => ("<redacted>".to_owned(), setting.source.to_string()),
            Some(setting) => (setting.value.to_string(), setting.source.to_string()),
            None if key.path == "server.workers" => {
                (opts.server.workers.to_string(), "number of CPUs".to_owned())
            }
            None => ("(unset)".to_owned(), Source::Default.to_string()),
        };
        rows.push((key.path.to_owned(), row.0, row.1));
    }
    rows
}

fn resolve_profile(options: &LoadOptions) -> Result<(Profile, Setting), ConfigError> {
    let (text, source) = if let Some(flag) = &options.profile {
        (flag.clone(), Source::Flag("--env".into()))
    } else if let Some(env) = options.env.get(PROFILE_ENV) {
        (env.clone(), Source::Env(PROFILE_ENV))
    } else {
        (DEFAULT_PROFILE.name().to_owned(), Source::Default)
    };
    match Profile::parse(&text) {
        Some(profile) => Ok((
            profile,
            Setting {
                value: Value::Text(text),
                source,
            },
        )),
        None => Err(ConfigError::Invalid {
            key: "env".into(),
            origin: source,
            value: text,
            allowed: "dev, test or prod".into(),
        }),
    }
}

fn config_dir(options: &LoadOptions) -> Result<Option<PathBuf>, ConfigError> {
    match &options.config_dir {
        Some(dir) if dir.is_dir() => Ok(Some(dir.clone())),
        Some(dir) => Err(ConfigError::MissingDir {
            path: dir.clone(),
            origin: Source::Flag("--config".into()),
        }),
        None => {
            let dir = PathBuf::from(DEFAULT_CONFIG_DIR);
            Ok(dir.is_dir().then_some(dir))
        }
    }
}

fn find_key(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

/// Reads one TOML file into `settings`, checking each value against its key.
fn read_file(
    path: &Path,
    settings: &mut BTreeMap<&'static str, Setting>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|error: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.message().to_owned(),
        })?;
    let source = Source::File(path.to_owned());
    for (section, body) in &table {
        let Some(body) = body.as_table() else {
            warnings.push(format!(
                "unknown key `{section}` in {} (ignored)",
                path.display()
            ));
            continue;
        };
        for (name, raw) in body {
            let dotted = format!("{section}.{name}");
            let Some(key) = find_key(&dotted) else {
                warnings.push(format!(
                    "unknown key `{dotted}` in {} (ignored)",
                    path.display()
                ));
                continue;
            };
            let value = parse_toml(key, raw, &source)?;
            settings.insert(
                key.path,
                Setting {
                    value,
                    source: source.clone(),
                },
            );
        }
    }
    Ok(())
}

fn invalid(key: &Key, source: &Source, value: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.path.to_owned(),
        origin: source.clone(),
        value: value.into(),
        allowed: key.kind.allowed(),
    }
}

/// Parses a value written as text (environment, flag, compiled default).
fn parse_text(key: &Key, text: &str, source: &Source) -> Result<Value, ConfigError> {
    let trimmed = text.trim();
    let value = match key.kind {
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(invalid(key, source, text)),
        },
        Kind::Int { .. } => Value::Int(trimmed.parse().map_err(|_| invalid(key, source, text))?),
        Kind::List => Value::List(split_list(trimmed)),
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
fn parse_toml(key: &Key, raw: &toml::Value, source: &Source) -> Result<Value, ConfigError> {
    let value = match (key.kind, raw) {
        (Kind::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (Kind::Int { .. }, toml::Value::Integer(n)) => {
            Value::Int(u64::try_from(*n).map_err(|_| invalid(key, source, raw.to_string()))?)
        }
        (Kind::List, toml::Value::Array(items)) => {
            let words: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(|word| word.trim().to_owned()))
                .collect();
            Value::List(words.ok_or_else(|| invalid(key, source, raw.to_string()))?)
        }
        (Kind::List, toml::Value::String(s)) => Value::List(split_list(s)),
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
        let Some(name) = POOL_FIELDS.iter().find(|name| **name == field.as_str()) else {
            return Err(field_error(
                field,
                value.to_string(),
                format!("one of the fields {}", POOL_FIELDS.join(", ")),
            ));
        };
        let pools_key =
            find_key(&format!("pools.{name}")).expect("every pool field is a [pools] key");
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
fn check(key: &Key, value: Value, source: &Source) -> Result<Value, ConfigError> {
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
        _ => true,
    };
    if ok {
        Ok(value)
    } else {
        Err(invalid(key, source, value.to_string()))
    }
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

/// Refuses settings that leave the admin surface open: a listener reachable beyond this
/// machine without a token, or, in the prod profile, any TCP listener without one.
fn check_admin(opts: &Opts, settings: &BTreeMap<&'static str, Setting>) -> Result<(), ConfigError> {
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

/// A cache budget smaller than the tuner's default floor (8 MiB) lowers the floor to the
/// budget: only a floor the user chose (in a profile file, the environment or a flag) is
/// held against the ceiling and refused when above it.
fn fit_default_cache_floor(opts: &mut Opts, settings: &BTreeMap<&'static str, Setting>) {
    let chosen = match settings.get("tuner.cache_floor_mb").map(|s| &s.source) {
        None | Some(Source::Default) => false,
        Some(Source::File(path)) => path.file_name() != Some(std::ffi::OsStr::new("default.toml")),
        Some(_) => true,
    };
    if !chosen && opts.tuner.cache_floor > opts.tuner.cache_ceiling {
        opts.tuner.cache_floor = opts.tuner.cache_ceiling;
    }
}

/// Checks every pool's options against each other (`min_idle <= max_size`, the scale
/// bounds around `max_size`); the error names the key that does not fit.
fn check_pools(opts: &Opts, settings: &BTreeMap<&'static str, Setting>) -> Result<(), ConfigError> {
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

// ---- typed options ---------------------------------------------------------------------

/// HTTP server options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOpts {
    pub bind: SocketAddr,
    pub workers: usize,
    /// Time in-flight requests get to finish when the server stops.
    pub shutdown_timeout: Duration,
    /// Time a client gets to send a request head (zero: no limit).
    pub client_request_timeout: Duration,
    /// How long an idle keep-alive connection stays open (zero: no keep-alive).
    pub keep_alive: Duration,
    /// Time a client gets to close its side of a finished connection.
    pub client_disconnect_timeout: Duration,
    /// Open connections per worker.
    pub max_connections: usize,
    /// Largest request head answered (431 above).
    pub max_header_bytes: usize,
}

/// Where the admin surface listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminBind {
    /// On the serving listener (`serving`, or `admin.bind` equal to `server.bind`).
    Serving,
    /// Its own TCP listener.
    Tcp(SocketAddr),
    /// A Unix socket, created owner-only.
    Unix(PathBuf),
}

impl AdminBind {
    /// `serving`, `unix:PATH` or `ip:port`.
    pub fn parse(text: &str) -> Option<AdminBind> {
        if text == "serving" {
            return Some(AdminBind::Serving);
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return (!path.is_empty() && !path.contains('\0'))
                .then(|| AdminBind::Unix(PathBuf::from(path)));
        }
        text.parse().ok().map(AdminBind::Tcp)
    }

    /// Whether only this machine can reach it without a token: a loopback address or a
    /// Unix socket.
    pub fn is_local(&self, server: SocketAddr) -> bool {
        match self {
            AdminBind::Serving => server.ip().is_loopback(),
            AdminBind::Tcp(addr) => addr.ip().is_loopback(),
            AdminBind::Unix(_) => true,
        }
    }
}

impl fmt::Display for AdminBind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminBind::Serving => f.write_str("serving"),
            AdminBind::Tcp(addr) => write!(f, "{addr}"),
            AdminBind::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Admin surface options.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminOpts {
    /// Where the admin surface listens; never `Tcp` equal to `server.bind` (that is
    /// `Serving`).
    pub bind: AdminBind,
    /// Bearer token for the admin surface; `None`: loopback and Unix-socket peers only.
    pub token: Option<String>,
}

impl fmt::Debug for AdminOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self.token.as_ref().map(|_| "<redacted>");
        f.debug_struct("AdminOpts")
            .field("bind", &self.bind)
            .field("token", &token)
            .finish()
    }
}

/// Options of the root supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorOpts {
    pub max_restarts: u32,
    pub period: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub call_timeout: Duration,
}

/// What the file cache keeps of a compressible file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// Identity and gzip bytes.
    Both,
    /// Only the gzip bytes; a client that does not accept gzip gets them inflated.
    CompressedOnly,
}

/// Which new files a full file cache takes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// TinyLFU: a file is cached only when it was read more often lately, per byte, than
    /// the files it would evict.
    TinyLfu,
    /// Every file, evicting the least recently used.
    Lru,
}

/// Static file options (the file cache and the static file routes use them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFileOpts {
    pub root_dir: PathBuf,
    pub enable_cache: bool,
    pub enable_compression: bool,
    /// Byte budget of the cache (stored bytes plus a per-entry overhead estimate).
    pub max_cache_size: u64,
    /// Age after which a cached file is checked against the disk (zero: every request).
    pub cache_expiration: Duration,
    /// Largest file read whole into the cache; larger ones are streamed.
    pub max_file_size: u64,
    pub min_compress_size: u64,
    /// Lower-case extensions without the dot.
    pub compress_extensions: Vec<String>,
    pub store: Store,
    pub compression_workers: usize,
    pub identity_copy_percent: u64,
    pub admission: Admission,
    pub cache_control: String,
    pub index_file: String,
    pub serve_hidden: bool,
}

/// Process sampler options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessOpts {
    pub sample_interval: Duration,
}

/// Monitor options.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitoringOpts {
    pub enabled: bool,
    /// `GET /metrics` on the serving listener too.
    pub public_metrics: bool,
    pub interval: Duration,
    /// Samples kept: `history_seconds / interval`, at most 10,000.
    pub history_len: usize,
    pub webhook_url: Option<String>,
    pub webhook_timeout: Duration,
    pub webhook_retries: u32,
    /// The default rules with the configured changes applied.
    pub alerts: Vec<crate::alerts::Rule>,
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

/// Memory profiler options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfilerOpts {
    /// `MEMORY_THRESHOLD_MB`.
    pub memory_threshold_mb: u64,
    /// Time between snapshots.
    pub interval: Duration,
    /// Snapshots kept.
    pub snapshots: usize,
    /// Heap sampling switched on at start (jemalloc only).
    pub heap_profiling: bool,
    pub profiles_dir: PathBuf,
}

/// Template memory optimizer options (`[memory_optimizer]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryOptimizerOpts {
    pub enabled: bool,
    pub deduplication: bool,
    pub lazy_loading: bool,
    pub compression: bool,
    pub gc_hints: bool,
}

/// Template context optimizer options (`[context_optimizer]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextOptimizerOpts {
    pub enabled: bool,
    pub deduplication: bool,
    pub lazy_loading: bool,
    pub compression: bool,
}

/// Template store options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateOpts {
    pub memory: MemoryOptimizerOpts,
    pub context: ContextOptimizerOpts,
    pub enabled: bool,
    pub dir: PathBuf,
    /// `None`: reload only when asked.
    pub reload_interval: Option<Duration>,
    pub render_workers: usize,
    pub max_fuel: u64,
    pub max_output_bytes: u64,
    pub max_context_bytes: usize,
    pub max_inheritance_depth: usize,
    pub flatten_inheritance: bool,
    pub cache_optimized_templates: bool,
}

/// Resource pool options (`[pools]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOpts {
    /// `RESOURCE_POOL_MANAGER_ENABLED`; off, subsystems make their resources per use.
    pub enabled: bool,
    /// Every pool's options unless overridden.
    pub defaults: crate::pool::PoolSpec,
    /// `[pools.overrides.<pool>]`, resolved over the defaults.
    pub overrides: BTreeMap<String, crate::pool::PoolSpec>,
    pub maintenance_interval: Duration,
}

impl PoolOpts {
    /// The options of the pool named `name`.
    pub fn spec(&self, name: &str) -> crate::pool::PoolSpec {
        self.overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }
}

/// Concurrency limiter options (`[limiter]`).
#[derive(Clone, Debug, PartialEq)]
pub struct LimiterOpts {
    pub enabled: bool,
    pub config: crate::concurrency::LimiterConfig,
}

/// What the tuner does each interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunerMode {
    /// Nothing: no tuner runs.
    Off,
    /// Compute and show recommendations.
    Recommend,
    /// Also apply the live ones.
    Auto,
}

impl TunerMode {
    pub fn name(self) -> &'static str {
        match self {
            TunerMode::Off => "off",
            TunerMode::Recommend => "recommend",
            TunerMode::Auto => "auto",
        }
    }
}

/// Configuration tuner options (`[tuner]`).
#[derive(Clone, Debug, PartialEq)]
pub struct TunerOpts {
    /// `Off` when `tuner.enabled` is false or `tuner.mode = "off"`.
    pub mode: TunerMode,
    pub interval: Duration,
    pub memory_limit: Option<u64>,
    /// Share of the limit RSS is kept under.
    pub target_share: f64,
    pub cache_floor: u64,
    pub cache_ceiling: u64,
}

/// The resolved, validated options every part of leanserve starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    pub profile: Profile,
    pub server: ServerOpts,
    pub admin: AdminOpts,
    pub supervisor: SupervisorOpts,
    pub static_files: StaticFileOpts,
    pub process: ProcessOpts,
    pub profiler: ProfilerOpts,
    pub templates: TemplateOpts,
    pub pools: PoolOpts,
    pub limiter: LimiterOpts,
    pub tuner: TunerOpts,
    pub monitoring: MonitoringOpts,
    /// Every key as (key, value, source), secrets redacted: what `leanserve config`
    /// prints and `GET /admin/config` answers.
    pub described: Vec<(String, String, String)>,
}

impl Default for Opts {
    /// The compiled defaults (dev profile), without reading files or the environment and
    /// without checking that the root folder exists.
    fn default() -> Self {
        let settings = KEYS
            .iter()
            .filter_map(|key| {
                let value = parse_text(key, key.default?, &Source::Default).ok()?;
                Some((
                    key.path,
                    Setting {
                        value,
                        source: Source::Default,
                    },
                ))
            })
            .collect();
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
    fn resolve(
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
    fn build(profile: Profile, settings: &BTreeMap<&'static str, Setting>) -> Opts {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A config folder with the given files and a `site/` folder to serve.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(files: &[(&str, &str)]) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("site")).unwrap();
            for (name, text) in files {
                std::fs::write(dir.path().join(name), text).unwrap();
            }
            Fixture { dir }
        }

        fn options(&self) -> LoadOptions {
            let root = self.dir.path().join("site").display().to_string();
            LoadOptions {
                config_dir: Some(self.dir.path().to_owned()),
                env: HashMap::from([("STATIC_FILE_ROOT_DIR".to_owned(), root)]),
                ..LoadOptions::default()
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    fn flag(key: &str, value: &str) -> (String, String, String) {
        (key.into(), value.into(), format!("--set {key}={value}"))
    }

    #[test]
    fn config_each_layer_overrides_the_one_below() {
        let fixture = Fixture::new(&[
            (
                "default.toml",
                "[server]\nshutdown_timeout = 10\nworkers = 2\nbind = \"127.0.0.1:9000\"\n[supervisor]\nmax_restarts = 7\n",
            ),
            ("dev.toml", "[server]\nshutdown_timeout = 20\nworkers = 3\n"),
        ]);
        let mut options = fixture.options();
        options
            .env
            .insert("LEANSERVE_SHUTDOWN_TIMEOUT".into(), "30".into());
        options.env.insert("LEANSERVE_WORKERS".into(), "5".into());
        options.flags.push(flag("server.shutdown_timeout", "40"));
        let config = Config::load(&options).unwrap();
        let source = |key: &str| config.settings[key].source.clone();

        assert_eq!(config.opts.server.shutdown_timeout, Duration::from_secs(40));
        assert_eq!(
            source("server.shutdown_timeout"),
            Source::Flag("--set server.shutdown_timeout=40".into())
        );
        assert_eq!(config.opts.server.workers, 5);
        assert_eq!(source("server.workers"), Source::Env("LEANSERVE_WORKERS"));
        assert_eq!(config.opts.server.bind, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            source("server.bind"),
            Source::File(fixture.path("default.toml"))
        );
        assert_eq!(config.opts.supervisor.max_restarts, 7);
        assert_eq!(config.opts.supervisor.call_timeout, Duration::from_secs(2));
        assert_eq!(source("supervisor.call_timeout_ms"), Source::Default);

        // The profile file beats default.toml.
        options.env.remove("LEANSERVE_WORKERS");
        let config = Config::load(&options).unwrap();
        assert_eq!(config.opts.server.workers, 3);
        assert_eq!(
            config.settings["server.workers"].source,
            Source::File(fixture.path("dev.toml"))
        );
    }

    #[test]
    fn config_profile_comes_from_flag_then_env_then_default() {
        let fixture = Fixture::new(&[
            ("test.toml", "[server]\nshutdown_timeout = 1\n"),
            ("prod.toml", "[server]\nshutdown_timeout = 2\n"),
        ]);
        let mut options = fixture.options();
        assert_eq!(Config::load(&options).unwrap().opts.profile, Profile::Dev);
        options.env.insert(PROFILE_ENV.into(), "test".into());
        let config = Config::load(&options).unwrap();
        assert_eq!(
            (
                config.opts.profile,
                config.opts.server.shutdown_timeout.as_secs()
            ),
            (Profile::Test, 1)
        );
        options.profile = Some("prod".into());
        // prod wants a token for a TCP admin listener...
        let refused = Config::load(&options).unwrap_err().to_string();
        assert!(
            refused.contains("prod profile") && refused.contains("admin.token"),
            "{refused}"
        );
        // ...or the admin surface on a Unix socket.
        options.env.insert(
            "LEANSERVE_ADMIN_BIND".into(),
            "unix:/run/leanserve.sock".into(),
        );
        let config = Config::load(&options).unwrap();
        assert_eq!(
            (
                config.opts.profile,
                config.opts.server.shutdown_timeout.as_secs()
            ),
            (Profile::Prod, 2)
        );
        assert_eq!(
            config.opts.admin.bind,
            AdminBind::Unix("/run/leanserve.sock".into())
        );
        assert_eq!(config.profile.source, Source::Flag("--env".into()));
    }

    #[test]
    fn config_unparsable_number_names_key_source_and_range() {
        let fixture = Fixture::new(&[]);
        let mut options = fixture.options();
        options
            .env
            .insert("STATIC_FILE_MAX_CACHE_SIZE".into(), "100MB".into());
        let error = Config::load(&options).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value for `static_files.max_cache_size` from env STATIC_FILE_MAX_CACHE_SIZE: \
             \"100MB\" (allowed: a whole number of bytes from 0 to 1099511627776)"
        );
    }

    #[test]
    fn config_out_of_range_value_in_a_file_is_rejected() {
        let fixture = Fixture::new(&[("default.toml", "[server]\nworkers = 0\n")]);
        let error = Config::load(&fixture.options()).unwrap_err();
        let ConfigError::Invalid {
            key, origin, value, ..
        } = error
        else {
            panic!("{error}")
        };
        assert_eq!((key.as_str(), value.as_str()), ("server.workers", "0"));
        assert_eq!(origin, Source::File(fixture.path("default.toml")));
    }

    #[test]
    fn config_wrong_type_in_a_file_is_rejected() {
        let fixture = Fixture::new(&[("dev.toml", "[static_files]\nenable_cache = \"yes\"\n")]);
        let error = Config::load(&fixture.options()).unwrap_err().to_string();
        assert!(
            error.contains("`static_files.enable_cache`") && error.contains("dev.toml"),
            "{error}"
        );
        assert!(error.contains("true or false"), "{error}");
    }

    #[test]
    fn config_unknown_profile_is_rejected() {
        let fixture = Fixture::new(&[]);
        let mut options = fixture.options();
        options.env.insert(PROFILE_ENV.into(), "staging".into());
        let error = Config::load(&options).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid value for `env` from env LEANSERVE_ENV: \"staging\" (allowed: dev, test or prod)"
        );
    }

    #[test]
    fn config_missing_root_dir_is_rejected() {
        let fixture = Fixture::new(&[]);
        let mut options = fixture.options();
        options.flags.push((
            "static_files.root_dir".into(),
            "/no/such/dir".into(),
            "--root".into(),
        ));
        let error = Config::load(&options).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "invalid value for `static_files.root_dir` from flag --root: \"/no/such/dir\""
            ),
            "{error}"
        );
    }

    #[test]
    fn config_bad_values_of_each_kind_are_rejected() {
        let fixture = Fixture::new(&[]);
        for (env, value) in [
            ("LEANSERVE_BIND", "localhost"),
            ("STATIC_FILE_CACHE_ENABLED", "maybe"),
            ("LEANSERVE_WORKERS", "-1"),
            ("MEMORY_THRESHOLD_MB", "0"),
            ("LEANSERVE_ADMIN_TOKEN", "  "),
        ] {
            let mut options = fixture.options();
            options.env.insert(env.into(), value.into());
            let error = Config::load(&options).unwrap_err().to_string();
            assert!(error.contains(&format!("from env {env}")), "{env}: {error}");
        }
    }

    #[test]
    fn config_unknown_keys_in_files_warn_and_unknown_flags_fail() {
        let fixture =
            Fixture::new(&[("default.toml", "[server]\nbnd = \"x\"\n[nonsense]\na = 1\n")]);
        let config = Config::load(&fixture.options()).unwrap();
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(
            config.warnings[0].contains("`nonsense.a`")
                || config.warnings[1].contains("`nonsense.a`")
        );
        assert!(config.warnings.iter().any(|w| w.contains("`server.bnd`")));

        let mut options = fixture.options();
        options.flags.push(flag("server.bnd", "1"));
        let error = Config::load(&options).unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown configuration key `server.bnd` from flag --set server.bnd=1"
        );
    }

    #[test]
    fn config_missing_config_dir_flag_is_rejected() {
        let options = LoadOptions {
            config_dir: Some("/no/such/config".into()),
            ..LoadOptions::default()
        };
        assert!(matches!(
            Config::load(&options),
            Err(ConfigError::MissingDir { .. })
        ));
    }

    #[test]
    fn config_describe_redacts_the_admin_token() {
        let fixture = Fixture::new(&[]);
        let mut options = fixture.options();
        options
            .env
            .insert("LEANSERVE_ADMIN_TOKEN".into(), "s3cret-token".into());
        let config = Config::load(&options).unwrap();
        let rows = config.describe();
        let token = rows.iter().find(|row| row.0 == "admin.token").unwrap();
        assert_eq!(
            (token.1.as_str(), token.2.as_str()),
            ("<redacted>", "env LEANSERVE_ADMIN_TOKEN")
        );
        assert!(!format!("{rows:?}{:?}", config.opts).contains("s3cret"));
    }

    /// REDbot flags `public` on responses to requests without credentials as
    /// unnecessary; the shipped profiles must not send it.
    #[test]
    fn config_shipped_profiles_send_no_unneeded_public_cache_control() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for profile in ["dev", "test", "prod"] {
            let options = LoadOptions {
                config_dir: Some(shipped.clone()),
                profile: Some(profile.into()),
                env: HashMap::from([
                    (
                        "STATIC_FILE_ROOT_DIR".to_owned(),
                        shipped.display().to_string(),
                    ),
                    (
                        "LEANSERVE_ADMIN_BIND".to_owned(),
                        "unix:/run/l.sock".to_owned(),
                    ),
                ]),
                ..LoadOptions::default()
            };
            let control = Config::load(&options)
                .unwrap()
                .opts
                .static_files
                .cache_control;
            assert!(!control.contains("public"), "{profile}: {control}");
        }
    }

    #[test]
    fn config_shipped_default_toml_matches_compiled_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let options = LoadOptions {
            config_dir: Some(shipped.clone()),
            profile: Some("dev".into()),
            env: HashMap::from([(
                "STATIC_FILE_ROOT_DIR".to_owned(),
                shipped.display().to_string(),
            )]),
            ..LoadOptions::default()
        };
        let config = Config::load(&options).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let mut defaults = BTreeMap::new();
        read_file(
            &shipped.join("default.toml"),
            &mut defaults,
            &mut Vec::new(),
        )
        .unwrap();
        for key in KEYS {
            let compiled = key
                .default
                .map(|text| parse_text(key, text, &Source::Default).unwrap());
            let shipped = defaults.get(key.path).map(|setting| setting.value.clone());
            assert_eq!(
                compiled, shipped,
                "config/default.toml disagrees on `{}`",
                key.path
            );
        }
        for profile in Profile::ALL {
            let mut options = options.clone();
            options.profile = Some(profile.name().into());
            // prod refuses a TCP admin listener without a token.
            options
                .env
                .insert("LEANSERVE_ADMIN_TOKEN".into(), "t".into());
            assert!(
                Config::load(&options).unwrap().warnings.is_empty(),
                "{profile}.toml"
            );
        }
    }

    #[test]
    fn config_alert_rules_change_defaults_add_and_remove() {
        let fixture = Fixture::new(&[(
            "default.toml",
            "[[monitoring.alerts]]\nname = \"low_hit_ratio\"\nthreshold = 0.3\nfor = 120\n\n\
             [[monitoring.alerts]]\nname = \"busy\"\nmetric = \"requests_per_second\"\ncomparison = \">=\"\nthreshold = 1000\nseverity = \"critical\"\n\n\
             [[monitoring.alerts]]\nname = \"memory_critical\"\nenabled = false\n",
        )]);
        let rules = Config::load(&fixture.options())
            .unwrap()
            .opts
            .monitoring
            .alerts;
        let low = rules.iter().find(|r| r.name == "low_hit_ratio").unwrap();
        assert_eq!(
            (low.threshold, low.for_duration, low.min_requests),
            (0.3, Duration::from_secs(120), Some(100))
        );
        let busy = rules.iter().find(|r| r.name == "busy").unwrap();
        assert_eq!(busy.comparison, crate::alerts::Comparison::AtLeast);
        assert_eq!(busy.severity, crate::alerts::Severity::Critical);
        assert!(rules.iter().all(|r| r.name != "memory_critical"));
        assert_eq!(rules.len(), 8);
    }

    #[test]
    fn config_bad_alert_rules_name_the_field() {
        for (rule, field) in [
            (
                "name = \"low_hit_ratio\"\ncomparison = \"==\"",
                "monitoring.alerts[0].comparison",
            ),
            (
                "name = \"x\"\nmetric = \"cache_bytes\"\ncomparison = \">\"",
                "monitoring.alerts[0].threshold",
            ),
            (
                "name = \"low_hit_ratio\"\nthreshold = \"high\"",
                "monitoring.alerts[0].threshold",
            ),
            (
                "name = \"low_hit_ratio\"\nseverity = \"page\"",
                "monitoring.alerts[0].severity",
            ),
            (
                "name = \"low_hit_ratio\"\nfor = -5",
                "monitoring.alerts[0].for",
            ),
            (
                "name = \"low_hit_ratio\"\nthresold = 1",
                "monitoring.alerts[0].thresold",
            ),
            ("threshold = 1", "monitoring.alerts[0].name"),
        ] {
            let fixture =
                Fixture::new(&[("dev.toml", &format!("[[monitoring.alerts]]\n{rule}\n"))]);
            let error = Config::load(&fixture.options()).unwrap_err().to_string();
            assert!(
                error.contains(&format!("`{field}`")) && error.contains("dev.toml"),
                "{rule}: {error}"
            );
        }
        let fixture = Fixture::new(&[]);
        let mut options = fixture.options();
        options
            .env
            .insert("LEANSERVE_MONITORING_ALERTS".into(), "x".into());
        let error = Config::load(&options).unwrap_err().to_string();
        assert!(error.contains("in a config file"), "{error}");
    }

    #[test]
    fn config_monitoring_history_follows_the_interval() {
        let fixture = Fixture::new(&[]);
        let mut options = fixture.options();
        options
            .env
            .insert("LEANSERVE_MONITORING_INTERVAL_MS".into(), "500".into());
        options
            .env
            .insert("LEANSERVE_MONITORING_HISTORY_SECONDS".into(), "60".into());
        let monitoring = Config::load(&options).unwrap().opts.monitoring;
        assert_eq!(
            (monitoring.interval, monitoring.history_len),
            (Duration::from_millis(500), 120)
        );
        options
            .env
            .insert("LEANSERVE_MONITORING_WEBHOOK_URL".into(), "ftp://x".into());
        assert!(
            Config::load(&options)
                .unwrap_err()
                .to_string()
                .contains("http:// or https:// URL")
        );
    }

    #[test]
    fn config_every_key_has_a_unique_path_and_env_var() {
        let mut paths = std::collections::HashSet::new();
        let mut envs = std::collections::HashSet::new();
        for key in KEYS {
            assert!(
                paths.insert(key.path) && envs.insert(key.env),
                "{}",
                key.path
            );
            assert_eq!(key.path.matches('.').count(), 1, "{}", key.path);
        }
    }
}

/// The README's configuration table, generated from [`KEYS`] and the shipped profile
/// files, so a test can keep the README true.
#[cfg(test)]
pub(crate) fn readme_table(config_dir: &Path) -> String {
    let mut profiles = Vec::new();
    for profile in Profile::ALL {
        let mut settings = BTreeMap::new();
        let path = config_dir.join(format!("{profile}.toml"));
        read_file(&path, &mut settings, &mut Vec::new()).expect("shipped profile file reads");
        profiles.push(settings);
    }
    let mut table = String::from(
        "| key | environment variable | default | dev | test | prod | meaning |\n|---|---|---|---|---|---|---|\n",
    );
    for key in KEYS {
        let default = key
            .default
            .map_or("(unset)".to_owned(), |d| format!("`{d}`"));
        let per_profile: Vec<String> = profiles
            .iter()
            .map(|settings| {
                settings
                    .get(key.path)
                    .map_or("".to_owned(), |s| format!("`{}`", s.value))
            })
            .collect();
        let allowed = key.kind.allowed();
        table.push_str(&format!(
            "| `{}` | `{}` | {default} | {} | {} | {} | {}; {allowed} |\n",
            key.path, key.env, per_profile[0], per_profile[1], per_profile[2], key.help
        ));
    }
    table
}

#[cfg(test)]
mod readme {
    #[test]
    fn readme_configuration_table_lists_every_key() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let expected = super::readme_table(&root.join("config"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        assert!(
            readme.contains(&expected),
            "README.md's configuration table is out of date; it should read:\n\n{expected}"
        );
    }
}
