//! [`Opts`]: the resolved options every part of leanserve starts from, one struct per
//! subsystem, plus the enums some keys are read as.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Profile;
use super::key::Choice;

/// HTTP server options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerOpts {
    /// `server.bind`: address and port the HTTP server listens on.
    pub bind: SocketAddr,
    /// `server.workers`: HTTP worker threads (unset: the number of CPUs).
    pub workers: usize,
    /// `server.shutdown_timeout`: time in-flight requests get to finish when the server
    /// stops (set in seconds).
    pub shutdown_timeout: Duration,
    /// `server.client_request_timeout_ms`: time a client gets to send a request head
    /// (zero: no limit).
    pub client_request_timeout: Duration,
    /// `server.keep_alive_s`: how long an idle keep-alive connection stays open (zero: no
    /// keep-alive).
    pub keep_alive: Duration,
    /// `server.client_disconnect_timeout_ms`: time a client gets to close its side of a
    /// finished connection.
    pub client_disconnect_timeout: Duration,
    /// `server.max_connections`: open connections per worker; past it the worker stops
    /// accepting until one closes.
    pub max_connections: usize,
    /// `server.max_header_bytes`: largest request head answered, in bytes (431 above).
    pub max_header_bytes: usize,
    /// `server.tls_cert` and `server.tls_key`: the certificate and key of HTTPS on the
    /// serving listener (`None`: cleartext).
    pub tls: Option<crate::tls::TlsFiles>,
    /// `server.tls_reload_interval_s`: how often the TLS files are read again (zero: on
    /// SIGHUP only).
    pub tls_reload_interval: Duration,
    /// `server.hsts_max_age_s`: `Strict-Transport-Security: max-age` with TLS (zero: no
    /// header).
    pub hsts_max_age: Duration,
    /// `server.redirect_bind`: a cleartext listener redirecting every request to HTTPS.
    pub redirect_bind: Option<SocketAddr>,
    /// `server.h2c`: cleartext HTTP/2 with prior knowledge beside HTTP/1.1.
    pub h2c: bool,
    /// `server.h2_stream_window`: HTTP/2 flow-control window, in bytes, a client gets for
    /// each request body it sends.
    pub h2_stream_window: u32,
    /// `server.h2_connection_window`: HTTP/2 flow-control window, in bytes, a client gets for
    /// all the request bodies of one connection.
    pub h2_connection_window: u32,
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
#[non_exhaustive]
pub struct AdminOpts {
    /// `admin.bind`: where the admin surface listens; never `Tcp` equal to `server.bind`
    /// (that is `Serving`).
    pub bind: AdminBind,
    /// `admin.token`: bearer token for the admin surface; `None`: loopback and Unix-socket
    /// peers only.
    pub token: Option<String>,
    /// `admin.tls_cert` and `admin.tls_key`: the certificate and key of HTTPS on the admin
    /// listener's own TCP address.
    pub tls: Option<crate::tls::TlsFiles>,
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
#[non_exhaustive]
pub struct SupervisorOpts {
    /// `supervisor.max_restarts`: restarts allowed within `period` before a supervisor gives
    /// up and escalates to its own supervisor.
    pub max_restarts: u32,
    /// `supervisor.period`: window of the restart intensity (set in seconds).
    pub period: Duration,
    /// `supervisor.backoff_ms`: delay before a restart, doubled per recent restart (zero: none).
    pub backoff: Duration,
    /// `supervisor.max_backoff_ms`: cap of the restart backoff.
    pub max_backoff: Duration,
    /// `supervisor.call_timeout_ms`: how long a call waits for a restarting actor.
    pub call_timeout: Duration,
}

/// What the file cache keeps of a compressible file (`static_files.store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Store {
    /// `both`: the identity bytes beside the compressed forms.
    Both,
    /// `compressed-only`: only the compressed forms; the rare client that accepts none of
    /// them gets them decoded.
    CompressedOnly,
}

impl Choice for Store {
    const WORDS: &'static [&'static str] = &["both", "compressed-only"];

    fn from_word(word: &str) -> Option<Self> {
        match word {
            "both" => Some(Store::Both),
            "compressed-only" => Some(Store::CompressedOnly),
            _ => None,
        }
    }
}

/// Which new files a full file cache takes in (`static_files.admission`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// TinyLFU: a file is cached only when it was read more often lately, per byte, than
    /// the files it would evict.
    TinyLfu,
    /// Every file, evicting the least recently used.
    Lru,
}

impl Choice for Admission {
    const WORDS: &'static [&'static str] = &["tinylfu", "lru"];

    fn from_word(word: &str) -> Option<Self> {
        match word {
            "tinylfu" => Some(Admission::TinyLfu),
            "lru" => Some(Admission::Lru),
            _ => None,
        }
    }
}

/// Static file options (the file cache and the static file routes use them).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaticFileOpts {
    /// `static_files.root_dir`: folder served at the site's root (`/` of its mount point).
    pub root_dir: PathBuf,
    /// `static_files.enable_cache`: keep served files in the in-memory cache.
    pub enable_cache: bool,
    /// `static_files.enable_compression`: serve compressed representations (`encodings`) to
    /// clients that accept them.
    pub enable_compression: bool,
    /// `static_files.max_cache_size`: byte budget of the cache (stored bytes plus a
    /// per-entry overhead estimate).
    pub max_cache_size: u64,
    /// `static_files.cache_expiration`: age after which a cached file is checked against
    /// the disk (set in seconds; zero: every request).
    pub cache_expiration: Duration,
    /// `static_files.max_file_size`: largest file read whole into the cache, in bytes;
    /// larger ones are streamed.
    pub max_file_size: u64,
    /// `static_files.min_compress_size`: smallest file worth compressing, in bytes.
    pub min_compress_size: u64,
    /// `static_files.compress_extensions`: extensions of the files served compressed,
    /// lower-case without the dot.
    pub compress_extensions: Vec<String>,
    /// `static_files.encodings`: the codings the cache builds, in the server's order of
    /// preference (empty: identity only).
    pub encodings: Vec<crate::http::encoding::Coding>,
    /// `static_files.dictionaries`: the dictionary codings sent (empty: no dictionaries at
    /// all).
    pub dictionaries: Vec<crate::http::dictionary::DictCoding>,
    /// `static_files.dictionary_size`: bytes of the site dictionary.
    pub dictionary_size: usize,
    /// `static_files.dictionary_assets`: path patterns of the assets served as
    /// dictionaries for their next version.
    pub dictionary_assets: Vec<String>,
    /// `static_files.gzip_level`: libdeflate level (1-12) of the gzip bytes the cache builds
    /// in the background (a first response is compressed at level 6).
    pub gzip_level: i32,
    /// `static_files.br_level`: brotli quality (0-11) of the br bytes the cache builds in
    /// the background (a first response is compressed at quality 5).
    pub br_level: i32,
    /// `static_files.zstd_level`: zstd level (1-22) of the zstd bytes the cache builds in
    /// the background (a first response is compressed at level 3).
    pub zstd_level: i32,
    /// `static_files.store`: what the cache keeps of a compressible file.
    pub store: Store,
    /// `static_files.compression_workers`: files the cache recompresses at once at the stored
    /// levels, in the background and hottest first.
    pub compression_workers: usize,
    /// `static_files.identity_copy_percent`: with [`Store::CompressedOnly`], the percentage of
    /// the cache budget for identity copies of files identity clients read often (0: always
    /// inflate).
    pub identity_copy_percent: u64,
    /// `static_files.admission`: which new files the full cache takes in.
    pub admission: Admission,
    /// `static_files.cache_control`: the `Cache-Control` header of static responses.
    pub cache_control: String,
    /// `static_files.index_file`: the file served for a directory path.
    pub index_file: String,
    /// `static_files.serve_hidden`: serve dotfiles (otherwise they are 404).
    pub serve_hidden: bool,
}

/// Process sampler options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessOpts {
    /// `process.sample_interval`: how often the process sampler reads RSS and CPU (set in
    /// seconds).
    pub sample_interval: Duration,
}

/// Monitor options.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MonitoringOpts {
    /// `monitoring.enabled`: per-request figures, the monitor, its alerts and the dashboard.
    pub enabled: bool,
    /// `monitoring.public_metrics`: `GET /metrics` on the serving listener too.
    pub public_metrics: bool,
    /// `monitoring.interval_ms`: how often the monitor collects figures and evaluates alerts
    /// (at least 100 ms).
    pub interval: Duration,
    /// Samples kept: `monitoring.history_seconds / interval`, at least 2 and at most
    /// 10,000.
    pub history_len: usize,
    /// `monitoring.webhook_url`: the Alertmanager-compatible receiver of firing and resolved
    /// alerts (`None`: no webhook).
    pub webhook_url: Option<String>,
    /// `monitoring.webhook_timeout_ms`: timeout of one webhook POST.
    pub webhook_timeout: Duration,
    /// `monitoring.webhook_retries`: retries of a failed webhook POST, with doubling delays.
    pub webhook_retries: u32,
    /// The default rules with the changes of `monitoring.alerts` applied.
    pub alerts: Vec<crate::alerts::Rule>,
}

/// Memory profiler options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfilerOpts {
    /// `profiler.memory_threshold_mb` (`MEMORY_THRESHOLD_MB`): resident memory, in MiB,
    /// above which the `memory_high` alert fires (`memory_critical` at 1.25x).
    pub memory_threshold_mb: u64,
    /// `profiler.interval`: time between snapshots (set in seconds).
    pub interval: Duration,
    /// `profiler.snapshots`: snapshots kept (the oldest go first).
    pub snapshots: usize,
    /// `profiler.heap_profiling`: heap sampling switched on at start (jemalloc only).
    pub heap_profiling: bool,
    /// `profiler.profiles_dir`: where captured heap profiles are written (created when needed).
    pub profiles_dir: PathBuf,
}

/// Template memory optimizer options (`[memory_optimizer]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryOptimizerOpts {
    /// `memory_optimizer.enabled`.
    pub enabled: bool,
    /// `memory_optimizer.enable_deduplication`.
    pub deduplication: bool,
    /// `memory_optimizer.enable_lazy_loading`.
    pub lazy_loading: bool,
    /// `memory_optimizer.enable_compression`.
    pub compression: bool,
    /// `memory_optimizer.enable_gc_hints`.
    pub gc_hints: bool,
}

/// Template context optimizer options (`[context_optimizer]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextOptimizerOpts {
    /// `context_optimizer.enabled`.
    pub enabled: bool,
    /// `context_optimizer.enable_deduplication`.
    pub deduplication: bool,
    /// `context_optimizer.enable_lazy_loading`.
    pub lazy_loading: bool,
    /// `context_optimizer.enable_compression`.
    pub compression: bool,
}

/// Template store options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemplateOpts {
    /// `[memory_optimizer]`.
    pub memory: MemoryOptimizerOpts,
    /// `[context_optimizer]`.
    pub context: ContextOptimizerOpts,
    /// `templates.enabled`.
    pub enabled: bool,
    /// `templates.dir`.
    pub dir: PathBuf,
    /// `templates.reload_interval`: how often changed template files are reloaded
    /// (`None`: only when asked).
    pub reload_interval: Option<Duration>,
    /// `templates.render_workers`.
    pub render_workers: usize,
    /// `templates.render_nice`: added to the render threads' nice value.
    pub render_nice: u8,
    /// `templates.max_fuel`.
    pub max_fuel: u64,
    /// `templates.max_output_bytes`.
    pub max_output_bytes: u64,
    /// `templates.max_context_bytes`.
    pub max_context_bytes: usize,
    /// `templates.max_inheritance_depth`.
    pub max_inheritance_depth: usize,
    /// `templates.flatten_inheritance`.
    pub flatten_inheritance: bool,
    /// `templates.cache_optimized_templates`.
    pub cache_optimized_templates: bool,
}

/// Resource pool options (`[pools]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolOpts {
    /// `pools.enabled` (`RESOURCE_POOL_MANAGER_ENABLED`); off, subsystems make their
    /// resources per use.
    pub enabled: bool,
    /// The `[pools]` keys: every pool's options unless overridden.
    pub defaults: crate::pool::PoolSpec,
    /// `[pools.overrides.<pool>]`, resolved over the defaults.
    pub overrides: BTreeMap<String, crate::pool::PoolSpec>,
    /// `pools.maintenance_interval_ms`: how often the pool manager reaps, refills, scans for
    /// leaks and autoscales.
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
#[non_exhaustive]
pub struct LimiterOpts {
    /// `limiter.enabled`: adaptive in-flight limits on static files and template renders
    /// (excess requests queue briefly, then get 503 with `Retry-After`).
    pub enabled: bool,
    /// The other `limiter.*` keys: the limit's bounds and latency tolerance, and the queue;
    /// static files and renders each get a limiter of this configuration.
    pub config: crate::concurrency::LimiterConfig,
}

/// What the tuner does each interval (`tuner.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TunerMode {
    /// Nothing: no tuner runs.
    Off,
    /// Compute and show recommendations.
    Recommend,
    /// Also apply the live ones.
    Auto,
}

impl TunerMode {
    /// The mode as `tuner.mode` spells it.
    pub fn name(self) -> &'static str {
        match self {
            TunerMode::Off => "off",
            TunerMode::Recommend => "recommend",
            TunerMode::Auto => "auto",
        }
    }
}

impl Choice for TunerMode {
    const WORDS: &'static [&'static str] = &["off", "recommend", "auto"];

    fn from_word(word: &str) -> Option<Self> {
        [TunerMode::Off, TunerMode::Recommend, TunerMode::Auto]
            .into_iter()
            .find(|mode| mode.name() == word)
    }
}

/// Configuration tuner options (`[tuner]`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TunerOpts {
    /// `tuner.mode`; `Off` when `tuner.enabled` is false or `tuner.mode = "off"`.
    pub mode: TunerMode,
    /// `tuner.interval`: how often the tuner reads its figures and decides (set in seconds).
    pub interval: Duration,
    /// `tuner.memory_limit_mb`, in bytes: the memory limit to stay under when no cgroup sets
    /// one (`None`: the machine's memory).
    pub memory_limit: Option<u64>,
    /// `tuner.target_memory_percent` as a fraction (0.85 for 85): share of the memory limit
    /// RSS is kept under.
    pub target_share: f64,
    /// `tuner.cache_floor_mb`, in bytes: the smallest file cache budget the tuner sets.
    pub cache_floor: u64,
    /// `tuner.cache_ceiling_mb`, in bytes: the largest file cache budget the tuner sets (unset:
    /// `static_files.max_cache_size`).
    pub cache_ceiling: u64,
}

/// The resolved, validated options every part of leanserve starts from.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Opts {
    /// The profile the options were loaded for (`dev`, `test`, `prod`).
    pub profile: Profile,
    /// `[server]`: listeners, workers and connection limits.
    pub server: ServerOpts,
    /// `[admin]`: where the admin surface listens and its token.
    pub admin: AdminOpts,
    /// `[supervisor]`: restart intensity, backoff and call timeout.
    pub supervisor: SupervisorOpts,
    /// `[static_files]`: the root, the file cache and compression.
    pub static_files: StaticFileOpts,
    /// `[process]`: the process sampler.
    pub process: ProcessOpts,
    /// `[profiler]`: memory snapshots and heap profiles.
    pub profiler: ProfilerOpts,
    /// `[templates]` and the template optimizers.
    pub templates: TemplateOpts,
    /// `[pools]`: the resource pools and their manager.
    pub pools: PoolOpts,
    /// `[limiter]`: the in-flight limits.
    pub limiter: LimiterOpts,
    /// `[tuner]`: the configuration tuner.
    pub tuner: TunerOpts,
    /// `[monitoring]`: metrics, history, alerts and the dashboard.
    pub monitoring: MonitoringOpts,
    /// Every key as (key, value, source), secrets redacted: what `leanserve config`
    /// prints and `GET /admin/config` answers.
    pub described: Vec<(String, String, String)>,
}
