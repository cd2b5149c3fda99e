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
    /// The certificate and key of HTTPS on the serving listener (None: cleartext).
    pub tls: Option<crate::tls::TlsFiles>,
    /// How often the TLS files are read again (zero: on SIGHUP only).
    pub tls_reload_interval: Duration,
    /// `Strict-Transport-Security: max-age` with TLS (zero: no header).
    pub hsts_max_age: Duration,
    /// A cleartext listener redirecting to HTTPS.
    pub redirect_bind: Option<SocketAddr>,
    /// Cleartext HTTP/2 with prior knowledge beside HTTP/1.1.
    pub h2c: bool,
    /// HTTP/2 receive windows: per stream, per connection.
    pub h2_stream_window: u32,
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
pub struct AdminOpts {
    /// Where the admin surface listens; never `Tcp` equal to `server.bind` (that is
    /// `Serving`).
    pub bind: AdminBind,
    /// Bearer token for the admin surface; `None`: loopback and Unix-socket peers only.
    pub token: Option<String>,
    /// The certificate and key of HTTPS on the admin listener's own TCP address.
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

/// Which new files a full file cache takes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The codings the cache builds, in the server's order of preference (empty: none).
    pub encodings: Vec<crate::http::encoding::Coding>,
    /// The dictionary codings sent (empty: no dictionaries at all).
    pub dictionaries: Vec<crate::http::dictionary::DictCoding>,
    /// Bytes of the site dictionary.
    pub dictionary_size: usize,
    /// Patterns of the assets served as dictionaries for their next version.
    pub dictionary_assets: Vec<String>,
    /// Levels of the representations the cache keeps: gzip (libdeflate 1-12), br (0-11),
    /// zstd (1-22).
    pub gzip_level: i32,
    pub br_level: i32,
    pub zstd_level: i32,
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
pub struct TemplateOpts {
    /// `[memory_optimizer]`.
    pub memory: MemoryOptimizerOpts,
    /// `[context_optimizer]`.
    pub context: ContextOptimizerOpts,
    /// `templates.enabled`.
    pub enabled: bool,
    /// `templates.dir`.
    pub dir: PathBuf,
    /// `None`: reload only when asked.
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
