//! The key table: every configuration key leanserve knows, once, as a typed constant.
//!
//! `key_table!` turns the table into one constant per key, which is how
//! [`Opts`](super::Opts) reads it, and into [`KEYS`], the untyped list the layers, the
//! `leanserve config` rows and docs/configuration.md's table walk in this order. A constant is named
//! after its path (`server.workers` is `SERVER_WORKERS`), which a test checks, and its
//! type says what it reads as:
//!
//! (These examples reach the table through `leanserve::internals`, the crate's door for
//! its own tools; inside the crate it is `config::keys`.)
//!
//! ```
//! use leanserve::internals::{TypedKey, keys};
//!
//! // No compiled default (the number of CPUs is used), so it reads as an Option.
//! let workers: TypedKey<Option<u64>> = keys::SERVER_WORKERS;
//! assert_eq!(workers.path(), "server.workers");
//! ```
//!
//! A misspelt key is not a constant, so code reading it does not compile:
//!
//! ```compile_fail,E0425
//! let workers = leanserve::internals::keys::SERVER_WROKERS;
//! ```
//!
//! nor does code reading a key as another type than its kind's:
//!
//! ```compile_fail,E0308
//! let workers: leanserve::internals::TypedKey<bool> = leanserve::internals::keys::SERVER_WORKERS;
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use super::key::{
    ADDR, ALERTS, BOOL, DIR, FILE_NAME, Key, LIST, LISTEN, PATH, PATTERNS, POOL_OVERRIDES, TEXT,
    TypedKey, URL, choice, int, key, unset, words,
};
use super::opts::{AdminBind, Admission, Store, TunerMode};
use super::value::{AlertSpec, PoolOverride};

/// Declares each key as a typed constant and lists them all in [`KEYS`].
macro_rules! key_table {
    ($($name:ident: $read_as:ty = $make:ident($path:literal, $($rest:tt)*) $(.$then:ident())*;)*) => {
        $(
            #[doc = concat!("`", $path, "`.")]
            pub const $name: TypedKey<$read_as> = $make($path, $($rest)*) $(.$then())*;
        )*

        /// Every configuration key leanserve knows.
        pub const KEYS: &[Key] = &[$($name.key),*];

        /// The name of each key's constant, in the order of [`KEYS`].
        #[cfg(test)]
        pub(super) const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

key_table! {
    SERVER_BIND: SocketAddr = key(
        "server.bind",
        "LEANSERVE_BIND",
        ADDR,
        "127.0.0.1:8080",
        "address and port the HTTP server listens on",
    );
    SERVER_WORKERS: Option<u64> = unset(
        "server.workers",
        "LEANSERVE_WORKERS",
        int(1, 1024, "threads"),
        "HTTP worker threads (default: number of CPUs)",
    );
    SERVER_SHUTDOWN_TIMEOUT: u64 = key(
        "server.shutdown_timeout",
        "LEANSERVE_SHUTDOWN_TIMEOUT",
        int(0, 3600, "seconds"),
        "30",
        "time in-flight requests get to finish on SIGINT/SIGTERM",
    );
    SERVER_CLIENT_REQUEST_TIMEOUT_MS: u64 = key(
        "server.client_request_timeout_ms",
        "LEANSERVE_CLIENT_REQUEST_TIMEOUT_MS",
        int(0, 600_000, "milliseconds"),
        "5000",
        "time a client gets to send a request's head (line and headers) before the connection is closed (408 if anything arrived); 0: no limit",
    );
    SERVER_KEEP_ALIVE_S: u64 = key(
        "server.keep_alive_s",
        "LEANSERVE_KEEP_ALIVE_S",
        int(0, 3600, "seconds"),
        "5",
        "how long an idle keep-alive connection stays open; 0: one request per connection",
    );
    SERVER_CLIENT_DISCONNECT_TIMEOUT_MS: u64 = key(
        "server.client_disconnect_timeout_ms",
        "LEANSERVE_CLIENT_DISCONNECT_TIMEOUT_MS",
        int(0, 600_000, "milliseconds"),
        "1000",
        "time a client gets to close its side once the server is done with a connection",
    );
    SERVER_MAX_CONNECTIONS: u64 = key(
        "server.max_connections",
        "LEANSERVE_MAX_CONNECTIONS",
        int(1, 1_000_000, "connections"),
        "25000",
        "open connections per worker; past it the worker stops accepting until one closes",
    );
    SERVER_MAX_HEADER_BYTES: u64 = key(
        "server.max_header_bytes",
        "LEANSERVE_MAX_HEADER_BYTES",
        int(1024, 131_072, "bytes"),
        "32768",
        "largest request head (line and headers) answered; larger gets 431 (actix-http refuses heads over 128 KiB itself)",
    );
    SERVER_TLS_CERT: Option<PathBuf> = unset(
        "server.tls_cert",
        "LEANSERVE_TLS_CERT",
        PATH,
        "PEM certificate chain (leaf first) of the serving listener; with server.tls_key it serves HTTPS, with ALPN offering h2 and http/1.1",
    );
    SERVER_TLS_KEY: Option<PathBuf> = unset(
        "server.tls_key",
        "LEANSERVE_TLS_KEY",
        PATH,
        "PEM private key (PKCS#8, RSA or EC) of server.tls_cert's certificate",
    );
    SERVER_TLS_RELOAD_INTERVAL_S: u64 = key(
        "server.tls_reload_interval_s",
        "LEANSERVE_TLS_RELOAD_INTERVAL_S",
        int(0, 86_400, "seconds"),
        "60",
        "how often the TLS listeners read their certificate and key files again, new handshakes taking renewed ones (0: only on SIGHUP, which always does)",
    );
    SERVER_HSTS_MAX_AGE_S: u64 = key(
        "server.hsts_max_age_s",
        "LEANSERVE_HSTS_MAX_AGE_S",
        int(0, 63_072_000, "seconds"),
        "0",
        "with TLS: Strict-Transport-Security max-age on every response of the serving listener (0: no header; browsers then keep to HTTPS for that long, so raise it once HTTPS works)",
    );
    SERVER_REDIRECT_BIND: Option<SocketAddr> = unset(
        "server.redirect_bind",
        "LEANSERVE_REDIRECT_BIND",
        ADDR,
        "with TLS: a cleartext listener answering every request with a 308 to the same path over HTTPS on server.bind's port",
    );
    SERVER_H2C: bool = key(
        "server.h2c",
        "LEANSERVE_H2C",
        BOOL,
        "false",
        "cleartext HTTP/2 with prior knowledge on the serving listener, beside HTTP/1.1, for proxies that speak it to upstreams (not with TLS, where ALPN chooses)",
    );
    SERVER_H2_STREAM_WINDOW: u64 = key(
        "server.h2_stream_window",
        "LEANSERVE_H2_STREAM_WINDOW",
        int(65_535, 1 << 30, "bytes"),
        "1048576",
        "HTTP/2 flow-control window a client gets for each request body it sends",
    );
    SERVER_H2_CONNECTION_WINDOW: u64 = key(
        "server.h2_connection_window",
        "LEANSERVE_H2_CONNECTION_WINDOW",
        int(65_535, 1 << 30, "bytes"),
        "2097152",
        "HTTP/2 flow-control window a client gets for all the request bodies of one connection",
    );
    ADMIN_BIND: AdminBind = key(
        "admin.bind",
        "LEANSERVE_ADMIN_BIND",
        LISTEN,
        "127.0.0.1:8081",
        "where the admin surface listens (/admin, /debug, /metrics, /monitoring, /dashboard; the serving listener answers those paths 404); a Unix socket is created owner-only; serving shares server.bind",
    );
    ADMIN_TOKEN: Option<String> = unset(
        "admin.token",
        "LEANSERVE_ADMIN_TOKEN",
        TEXT,
        "bearer token for the admin surface; unset: it answers loopback and Unix-socket peers only; required when admin.bind is not loopback or a Unix socket, and in the prod profile unless it is a Unix socket",
    )
    .secret();
    ADMIN_TLS_CERT: Option<PathBuf> = unset(
        "admin.tls_cert",
        "LEANSERVE_ADMIN_TLS_CERT",
        PATH,
        "PEM certificate chain of the admin listener when it has a TCP address of its own; with admin.tls_key it serves HTTPS",
    );
    ADMIN_TLS_KEY: Option<PathBuf> = unset(
        "admin.tls_key",
        "LEANSERVE_ADMIN_TLS_KEY",
        PATH,
        "PEM private key (PKCS#8, RSA or EC) of admin.tls_cert's certificate",
    );
    SUPERVISOR_MAX_RESTARTS: u64 = key(
        "supervisor.max_restarts",
        "LEANSERVE_SUPERVISOR_MAX_RESTARTS",
        int(0, 1000, "restarts"),
        "3",
        "restarts allowed within supervisor.period before a supervisor gives up",
    );
    SUPERVISOR_PERIOD: u64 = key(
        "supervisor.period",
        "LEANSERVE_SUPERVISOR_PERIOD",
        int(1, 86_400, "seconds"),
        "5",
        "window of the restart intensity",
    );
    SUPERVISOR_BACKOFF_MS: u64 = key(
        "supervisor.backoff_ms",
        "LEANSERVE_SUPERVISOR_BACKOFF_MS",
        int(0, 60_000, "milliseconds"),
        "0",
        "delay before a restart, doubled per recent restart (0: none)",
    );
    SUPERVISOR_MAX_BACKOFF_MS: u64 = key(
        "supervisor.max_backoff_ms",
        "LEANSERVE_SUPERVISOR_MAX_BACKOFF_MS",
        int(0, 600_000, "milliseconds"),
        "30000",
        "cap of the restart backoff",
    );
    SUPERVISOR_CALL_TIMEOUT_MS: u64 = key(
        "supervisor.call_timeout_ms",
        "LEANSERVE_SUPERVISOR_CALL_TIMEOUT_MS",
        int(1, 60_000, "milliseconds"),
        "2000",
        "how long a call waits for a restarting actor",
    );
    STATIC_FILES_ROOT_DIR: PathBuf = key(
        "static_files.root_dir",
        "STATIC_FILE_ROOT_DIR",
        DIR,
        "static",
        "folder served at /",
    );
    STATIC_FILES_ENABLE_CACHE: bool = key(
        "static_files.enable_cache",
        "STATIC_FILE_CACHE_ENABLED",
        BOOL,
        "true",
        "keep served files in the in-memory cache",
    );
    STATIC_FILES_ENABLE_COMPRESSION: bool = key(
        "static_files.enable_compression",
        "STATIC_FILE_COMPRESSION_ENABLED",
        BOOL,
        "true",
        "serve compressed representations (static_files.encodings) to clients that accept them",
    );
    STATIC_FILES_ENCODINGS: Vec<String> = key(
        "static_files.encodings",
        "STATIC_FILE_ENCODINGS",
        words(&["br", "zstd", "gzip"]),
        "br,zstd,gzip",
        "content codings the cache builds and stores, in the server's order of preference when a client weighs several alike (an empty list: identity only)",
    );
    STATIC_FILES_DICTIONARIES: Vec<String> = key(
        "static_files.dictionaries",
        "STATIC_FILE_DICTIONARIES",
        words(&["dcz", "dcb"]),
        "dcz,dcb",
        "dictionary codings (RFC 9842) sent to clients that hold one of the cache's dictionaries, in the server's order of preference (an empty list: no dictionaries are built, offered or used)",
    );
    STATIC_FILES_DICTIONARY_SIZE: u64 = key(
        "static_files.dictionary_size",
        "STATIC_FILE_DICTIONARY_SIZE",
        int(1024, 4 << 20, "bytes"),
        "262144",
        "bytes of the site dictionary, trained on a sample of the site's HTML pages at start and when many pages changed",
    );
    STATIC_FILES_DICTIONARY_ASSETS: Vec<String> = key(
        "static_files.dictionary_assets",
        "STATIC_FILE_DICTIONARY_ASSETS",
        PATTERNS,
        "",
        "path patterns (from the mount point, * as the wildcard) of versioned assets each served as a dictionary for its next version, such as /assets/app-*.js",
    );
    STATIC_FILES_GZIP_LEVEL: u64 = key(
        "static_files.gzip_level",
        "STATIC_FILE_GZIP_LEVEL",
        int(1, 12, "levels"),
        "6",
        "libdeflate level of the gzip bytes the cache builds in the background (a first response is compressed at level 6)",
    );
    STATIC_FILES_BR_LEVEL: u64 = key(
        "static_files.br_level",
        "STATIC_FILE_BR_LEVEL",
        int(0, 11, "levels"),
        "11",
        "brotli quality of the br bytes the cache builds in the background (a first response is compressed at quality 5)",
    );
    STATIC_FILES_ZSTD_LEVEL: u64 = key(
        "static_files.zstd_level",
        "STATIC_FILE_ZSTD_LEVEL",
        int(1, 22, "levels"),
        "19",
        "zstd level of the zstd bytes the cache builds in the background (a first response is compressed at level 3)",
    );
    STATIC_FILES_MAX_CACHE_SIZE: u64 = key(
        "static_files.max_cache_size",
        "STATIC_FILE_MAX_CACHE_SIZE",
        int(0, 1 << 40, "bytes"),
        "104857600",
        "byte budget of the file cache",
    );
    STATIC_FILES_CACHE_EXPIRATION: u64 = key(
        "static_files.cache_expiration",
        "STATIC_FILE_CACHE_EXPIRATION",
        int(0, 31_536_000, "seconds"),
        "3600",
        "age after which a cached file is revalidated against the disk",
    );
    STATIC_FILES_MAX_FILE_SIZE: u64 = key(
        "static_files.max_file_size",
        "STATIC_FILE_MAX_FILE_SIZE",
        int(0, 1 << 34, "bytes"),
        "8388608",
        "largest file held in the cache; larger ones are streamed from disk",
    );
    STATIC_FILES_MIN_COMPRESS_SIZE: u64 = key(
        "static_files.min_compress_size",
        "STATIC_FILE_MIN_COMPRESS_SIZE",
        int(0, 1 << 30, "bytes"),
        "1024",
        "smallest file worth compressing",
    );
    STATIC_FILES_COMPRESS_EXTENSIONS: Vec<String> = key(
        "static_files.compress_extensions",
        "STATIC_FILE_COMPRESS_EXTENSIONS",
        LIST,
        "html,htm,css,js,mjs,json,map,xml,txt,md,svg,csv,wasm",
        "extensions of the files served compressed",
    );
    STATIC_FILES_STORE: Store = key(
        "static_files.store",
        "STATIC_FILE_STORE",
        choice::<Store>(),
        "both",
        "what the cache keeps of a compressible file: identity beside its compressed forms (both), or only the compressed forms (compressed-only: decoded for the rare client that takes none of them)",
    );
    STATIC_FILES_COMPRESSION_WORKERS: u64 = key(
        "static_files.compression_workers",
        "STATIC_FILE_COMPRESSION_WORKERS",
        int(1, 64, "files"),
        "1",
        "files the cache recompresses at once at the stored levels, in the background and hottest first",
    );
    STATIC_FILES_IDENTITY_COPY_PERCENT: u64 = key(
        "static_files.identity_copy_percent",
        "STATIC_FILE_IDENTITY_COPY_PERCENT",
        int(0, 100, "percent"),
        "10",
        "with store = compressed-only: share of the budget for identity copies of files identity clients read often (0: always inflate)",
    );
    STATIC_FILES_ADMISSION: Admission = key(
        "static_files.admission",
        "STATIC_FILE_ADMISSION",
        choice::<Admission>(),
        "tinylfu",
        "which new files the full cache takes in: tinylfu (only files read more often lately, per byte, than those they would evict) or lru (every file)",
    );
    STATIC_FILES_CACHE_CONTROL: String = key(
        "static_files.cache_control",
        "STATIC_FILE_CACHE_CONTROL",
        TEXT,
        "no-cache",
        "Cache-Control header of static responses",
    );
    STATIC_FILES_INDEX_FILE: String = key(
        "static_files.index_file",
        "STATIC_FILE_INDEX_FILE",
        FILE_NAME,
        "index.html",
        "file served for a directory path",
    );
    STATIC_FILES_SERVE_HIDDEN: bool = key(
        "static_files.serve_hidden",
        "STATIC_FILE_SERVE_HIDDEN",
        BOOL,
        "false",
        "serve dotfiles (otherwise they are 404)",
    );
    MONITORING_ENABLED: bool = key(
        "monitoring.enabled",
        "LEANSERVE_MONITORING_ENABLED",
        BOOL,
        "true",
        "per-request figures, the monitor, its alerts and the dashboard",
    );
    MONITORING_PUBLIC_METRICS: bool = key(
        "monitoring.public_metrics",
        "LEANSERVE_MONITORING_PUBLIC_METRICS",
        BOOL,
        "false",
        "also answer GET /metrics on the serving listener, for scrapers that cannot reach the admin listener (it reveals memory figures and thresholds)",
    );
    MONITORING_INTERVAL_MS: u64 = key(
        "monitoring.interval_ms",
        "LEANSERVE_MONITORING_INTERVAL_MS",
        int(100, 3_600_000, "milliseconds"),
        "5000",
        "how often the monitor collects figures and evaluates alerts",
    );
    MONITORING_HISTORY_SECONDS: u64 = key(
        "monitoring.history_seconds",
        "LEANSERVE_MONITORING_HISTORY_SECONDS",
        int(10, 86_400, "seconds"),
        "3600",
        "how much history the monitor keeps (at most 10,000 samples)",
    );
    MONITORING_WEBHOOK_URL: Option<String> = unset(
        "monitoring.webhook_url",
        "LEANSERVE_MONITORING_WEBHOOK_URL",
        URL,
        "Alertmanager-compatible receiver of firing and resolved alerts",
    );
    MONITORING_WEBHOOK_TIMEOUT_MS: u64 = key(
        "monitoring.webhook_timeout_ms",
        "LEANSERVE_MONITORING_WEBHOOK_TIMEOUT_MS",
        int(100, 60_000, "milliseconds"),
        "2000",
        "timeout of one webhook POST",
    );
    MONITORING_WEBHOOK_RETRIES: u64 = key(
        "monitoring.webhook_retries",
        "LEANSERVE_MONITORING_WEBHOOK_RETRIES",
        int(0, 10, "retries"),
        "3",
        "retries of a failed webhook POST, with doubling delays",
    );
    MONITORING_ALERTS: Option<Vec<AlertSpec>> = unset(
        "monitoring.alerts",
        "LEANSERVE_MONITORING_ALERTS",
        ALERTS,
        "changes to the default alert rules, and new ones",
    );
    PROCESS_SAMPLE_INTERVAL: u64 = key(
        "process.sample_interval",
        "LEANSERVE_PROCESS_SAMPLE_INTERVAL",
        int(1, 3600, "seconds"),
        "5",
        "how often the process sampler reads RSS and CPU",
    );
    PROFILER_MEMORY_THRESHOLD_MB: u64 = key(
        "profiler.memory_threshold_mb",
        "MEMORY_THRESHOLD_MB",
        int(1, 1 << 20, "MiB"),
        "512",
        "resident memory above which memory_high fires (memory_critical at 1.25x)",
    );
    PROFILER_INTERVAL: u64 = key(
        "profiler.interval",
        "PROFILE_INTERVAL_SECONDS",
        int(1, 86_400, "seconds"),
        "300",
        "how often the profiler takes a memory snapshot",
    );
    PROFILER_SNAPSHOTS: u64 = key(
        "profiler.snapshots",
        "LEANSERVE_PROFILER_SNAPSHOTS",
        int(2, 10_000, "snapshots"),
        "100",
        "snapshots kept (the oldest go first)",
    );
    PROFILER_HEAP_PROFILING: bool = key(
        "profiler.heap_profiling",
        "LEANSERVE_PROFILER_HEAP_PROFILING",
        BOOL,
        "true",
        "sample the heap (one sample per 512 KiB allocated) so heap profiles can be taken",
    );
    PROFILER_PROFILES_DIR: PathBuf = key(
        "profiler.profiles_dir",
        "LEANSERVE_PROFILER_PROFILES_DIR",
        PATH,
        "profiles",
        "where captured heap profiles are written (created when needed)",
    );
    TEMPLATES_ENABLED: bool = key(
        "templates.enabled",
        "TEMPLATES_ENABLED",
        BOOL,
        "true",
        "load templates and render them at /templates/{name}",
    );
    TEMPLATES_DIR: PathBuf = key(
        "templates.dir",
        "TEMPLATES_DIR",
        PATH,
        "templates",
        "folder of Jinja templates (missing: no templates, with a warning)",
    );
    TEMPLATES_RELOAD_INTERVAL: u64 = key(
        "templates.reload_interval",
        "TEMPLATE_RELOAD_INTERVAL",
        int(0, 3600, "seconds"),
        "2",
        "how often changed template files are reloaded (0: only on POST /admin/templates/reload)",
    );
    TEMPLATES_RENDER_WORKERS: u64 = key(
        "templates.render_workers",
        "LEANSERVE_TEMPLATES_RENDER_WORKERS",
        int(1, 256, "threads"),
        "2",
        "render threads (renders at once), and threads that flatten templates on the blocking pool",
    );
    TEMPLATES_RENDER_NICE: u64 = key(
        "templates.render_nice",
        "LEANSERVE_TEMPLATES_RENDER_NICE",
        int(0, 19, "nice levels"),
        "0",
        "added to the render threads' nice value (Linux): renders then take the CPU the HTTP workers leave; 0 keeps the process's priority",
    );
    TEMPLATES_MAX_FUEL: u64 = key(
        "templates.max_fuel",
        "LEANSERVE_TEMPLATES_MAX_FUEL",
        int(1_000, 10_000_000_000, "instructions"),
        "5000000",
        "instructions one render may execute before it is stopped",
    );
    TEMPLATES_MAX_OUTPUT_BYTES: u64 = key(
        "templates.max_output_bytes",
        "LEANSERVE_TEMPLATES_MAX_OUTPUT_BYTES",
        int(1_024, 1 << 30, "bytes"),
        "8388608",
        "largest output one render may produce",
    );
    TEMPLATES_MAX_CONTEXT_BYTES: u64 = key(
        "templates.max_context_bytes",
        "LEANSERVE_TEMPLATES_MAX_CONTEXT_BYTES",
        int(2, 64 << 20, "bytes"),
        "262144",
        "largest JSON body a POST render accepts",
    );
    TEMPLATES_MAX_INHERITANCE_DEPTH: u64 = key(
        "templates.max_inheritance_depth",
        "MAX_INHERITANCE_DEPTH",
        int(1, 64, "templates"),
        "3",
        "longest extends chain served without flattening (chains over 64 are load errors)",
    );
    TEMPLATES_FLATTEN_INHERITANCE: bool = key(
        "templates.flatten_inheritance",
        "FLATTEN_INHERITANCE",
        BOOL,
        "true",
        "serve every extends chain flattened into one template",
    );
    TEMPLATES_CACHE_OPTIMIZED_TEMPLATES: bool = key(
        "templates.cache_optimized_templates",
        "CACHE_OPTIMIZED_TEMPLATES",
        BOOL,
        "true",
        "keep flattened templates across reloads until their chain changes",
    );
    MEMORY_OPTIMIZER_ENABLED: bool = key(
        "memory_optimizer.enabled",
        "MEMORY_OPTIMIZER_ENABLED",
        BOOL,
        "true",
        "template memory optimizer: the four options below",
    );
    MEMORY_OPTIMIZER_ENABLE_DEDUPLICATION: bool = key(
        "memory_optimizer.enable_deduplication",
        "MEMORY_OPTIMIZER_DEDUPLICATION",
        BOOL,
        "true",
        "compile identical templates once and hold static sections repeated across templates once",
    );
    MEMORY_OPTIMIZER_ENABLE_LAZY_LOADING: bool = key(
        "memory_optimizer.enable_lazy_loading",
        "MEMORY_OPTIMIZER_LAZY_LOADING",
        BOOL,
        "true",
        "compile a template on its first render, not at load",
    );
    MEMORY_OPTIMIZER_ENABLE_COMPRESSION: bool = key(
        "memory_optimizer.enable_compression",
        "MEMORY_OPTIMIZER_COMPRESSION",
        BOOL,
        "false",
        "hold not-yet-compiled templates gzip-compressed (with lazy loading)",
    );
    MEMORY_OPTIMIZER_ENABLE_GC_HINTS: bool = key(
        "memory_optimizer.enable_gc_hints",
        "MEMORY_OPTIMIZER_GC_HINTS",
        BOOL,
        "true",
        "return freed pages to the OS after each template load (jemalloc)",
    );
    CONTEXT_OPTIMIZER_ENABLED: bool = key(
        "context_optimizer.enabled",
        "CONTEXT_OPTIMIZER_ENABLED",
        BOOL,
        "true",
        "template context optimizer: variable analysis, usage tracking and the options below",
    );
    CONTEXT_OPTIMIZER_ENABLE_DEDUPLICATION: bool = key(
        "context_optimizer.enable_deduplication",
        "CONTEXT_OPTIMIZER_DEDUPLICATION",
        BOOL,
        "true",
        "hold equal context strings once (interning)",
    );
    CONTEXT_OPTIMIZER_ENABLE_LAZY_LOADING: bool = key(
        "context_optimizer.enable_lazy_loading",
        "CONTEXT_OPTIMIZER_LAZY_LOADING",
        BOOL,
        "true",
        "load templates/data/*.json only when a render reads them",
    );
    CONTEXT_OPTIMIZER_ENABLE_COMPRESSION: bool = key(
        "context_optimizer.enable_compression",
        "CONTEXT_OPTIMIZER_COMPRESSION",
        BOOL,
        "false",
        "keep no data file in memory: read it on each render that uses it",
    );
    POOLS_ENABLED: bool = key(
        "pools.enabled",
        "RESOURCE_POOL_MANAGER_ENABLED",
        BOOL,
        "true",
        "resource pool manager: pooled compressors, inflaters and render buffers, /admin/pools (off: made per use)",
    );
    POOLS_MAX_SIZE: Option<u64> = unset(
        "pools.max_size",
        "LEANSERVE_POOLS_MAX_SIZE",
        int(1, 4096, "objects"),
        "most objects a pool holds at the start (default: number of CPUs)",
    );
    POOLS_MIN_IDLE: u64 = key(
        "pools.min_idle",
        "LEANSERVE_POOLS_MIN_IDLE",
        int(0, 4096, "objects"),
        "0",
        "objects a pool keeps idle and ready",
    );
    POOLS_AUTOSCALE: bool = key(
        "pools.autoscale",
        "LEANSERVE_POOLS_AUTOSCALE",
        BOOL,
        "true",
        "move each pool's maximum between scale_min and scale_max from its acquire wait and utilization",
    );
    POOLS_SCALE_MIN: u64 = key(
        "pools.scale_min",
        "LEANSERVE_POOLS_SCALE_MIN",
        int(1, 4096, "objects"),
        "1",
        "lowest maximum the autoscaler sets",
    );
    POOLS_SCALE_MAX: Option<u64> = unset(
        "pools.scale_max",
        "LEANSERVE_POOLS_SCALE_MAX",
        int(1, 4096, "objects"),
        "highest maximum the autoscaler sets (default: 4 x max_size)",
    );
    POOLS_WAIT_TARGET_MS: u64 = key(
        "pools.wait_target_ms",
        "LEANSERVE_POOLS_WAIT_TARGET_MS",
        int(1, 60_000, "milliseconds"),
        "5",
        "p99 acquire wait above which a pool at its maximum grows",
    );
    POOLS_ACQUIRE_TIMEOUT_MS: u64 = key(
        "pools.acquire_timeout_ms",
        "LEANSERVE_POOLS_ACQUIRE_TIMEOUT_MS",
        int(1, 600_000, "milliseconds"),
        "5000",
        "how long an acquire waits for an object",
    );
    POOLS_IDLE_TIMEOUT: u64 = key(
        "pools.idle_timeout",
        "LEANSERVE_POOLS_IDLE_TIMEOUT",
        int(0, 86_400, "seconds"),
        "60",
        "idle objects above min_idle older than this are dropped (0: kept)",
    );
    POOLS_MAX_LIFETIME: u64 = key(
        "pools.max_lifetime",
        "LEANSERVE_POOLS_MAX_LIFETIME",
        int(0, 604_800, "seconds"),
        "1800",
        "objects older than this are replaced, less up to a tenth at random (0: no limit)",
    );
    POOLS_VALIDATE_AFTER: u64 = key(
        "pools.validate_after",
        "LEANSERVE_POOLS_VALIDATE_AFTER",
        int(0, 86_400, "seconds"),
        "30",
        "objects idle longer than this are validated before reuse (0: never)",
    );
    POOLS_LEAK_THRESHOLD_MS: u64 = key(
        "pools.leak_threshold_ms",
        "LEANSERVE_POOLS_LEAK_THRESHOLD_MS",
        int(0, 86_400_000, "milliseconds"),
        "30000",
        "a hold longer than this is logged once with where it was acquired, and counted (0: off)",
    );
    POOLS_MAINTENANCE_INTERVAL_MS: u64 = key(
        "pools.maintenance_interval_ms",
        "LEANSERVE_POOLS_MAINTENANCE_INTERVAL_MS",
        int(100, 60_000, "milliseconds"),
        "1000",
        "how often the pool manager reaps, refills, scans for leaks and autoscales",
    );
    POOLS_OVERRIDES: Option<Vec<PoolOverride>> = unset(
        "pools.overrides",
        "LEANSERVE_POOLS_OVERRIDES",
        POOL_OVERRIDES,
        "per-pool changes to the [pools] values",
    );
    LIMITER_ENABLED: bool = key(
        "limiter.enabled",
        "LEANSERVE_LIMITER_ENABLED",
        BOOL,
        "true",
        "adaptive in-flight limits on static files and template renders (excess requests queue briefly, then get 503 with Retry-After)",
    );
    LIMITER_MIN_LIMIT: u64 = key(
        "limiter.min_limit",
        "LEANSERVE_LIMITER_MIN_LIMIT",
        int(1, 100_000, "requests"),
        "4",
        "lowest in-flight limit, and where each limit starts",
    );
    LIMITER_MAX_LIMIT: u64 = key(
        "limiter.max_limit",
        "LEANSERVE_LIMITER_MAX_LIMIT",
        int(1, 100_000, "requests"),
        "1000",
        "highest in-flight limit",
    );
    LIMITER_LATENCY_TOLERANCE_PERCENT: u64 = key(
        "limiter.latency_tolerance_percent",
        "LEANSERVE_LIMITER_LATENCY_TOLERANCE_PERCENT",
        int(101, 1000, "percent"),
        "125",
        "median latency, as a percentage of the no-load latency, above which a limit shrinks",
    );
    LIMITER_QUEUE_SIZE: u64 = key(
        "limiter.queue_size",
        "LEANSERVE_LIMITER_QUEUE_SIZE",
        int(0, 100_000, "requests"),
        "128",
        "requests that may wait for a slot; more are refused at once",
    );
    LIMITER_QUEUE_TIMEOUT_MS: u64 = key(
        "limiter.queue_timeout_ms",
        "LEANSERVE_LIMITER_QUEUE_TIMEOUT_MS",
        int(1, 60_000, "milliseconds"),
        "100",
        "longest wait for a slot while requests still find free slots now and then (a burst)",
    );
    LIMITER_OVERLOAD_AFTER_MS: u64 = key(
        "limiter.overload_after_ms",
        "LEANSERVE_LIMITER_OVERLOAD_AFTER_MS",
        int(1, 60_000, "milliseconds"),
        "20",
        "how long no request may find a free slot before the queue counts as standing (overload)",
    );
    LIMITER_OVERLOAD_TIMEOUT_MS: u64 = key(
        "limiter.overload_timeout_ms",
        "LEANSERVE_LIMITER_OVERLOAD_TIMEOUT_MS",
        int(1, 60_000, "milliseconds"),
        "1",
        "wait for a slot in a standing queue (served newest first, at most twice the limit deep)",
    );
    TUNER_ENABLED: bool = key(
        "tuner.enabled",
        "CONFIG_TUNER_ENABLED",
        BOOL,
        "true",
        "configuration tuner: cache budget under the memory limit, allocator decay, pool maximums, worker recommendations",
    );
    TUNER_MODE: TunerMode = key(
        "tuner.mode",
        "LEANSERVE_TUNER_MODE",
        choice::<TunerMode>(),
        "auto",
        "recommend: compute and show; auto: also apply the live knobs every interval",
    );
    TUNER_INTERVAL: u64 = key(
        "tuner.interval",
        "LEANSERVE_TUNER_INTERVAL",
        int(1, 86_400, "seconds"),
        "30",
        "how often the tuner reads its figures and decides",
    );
    TUNER_MEMORY_LIMIT_MB: Option<u64> = unset(
        "tuner.memory_limit_mb",
        "LEANSERVE_TUNER_MEMORY_LIMIT_MB",
        int(1, 1_048_576, "MiB"),
        "memory limit to stay under when no cgroup sets one (default: the machine's memory)",
    );
    TUNER_TARGET_MEMORY_PERCENT: u64 = key(
        "tuner.target_memory_percent",
        "LEANSERVE_TUNER_TARGET_MEMORY_PERCENT",
        int(10, 99, "percent"),
        "85",
        "share of the memory limit RSS is kept under",
    );
    TUNER_CACHE_FLOOR_MB: u64 = key(
        "tuner.cache_floor_mb",
        "LEANSERVE_TUNER_CACHE_FLOOR_MB",
        int(0, 1_048_576, "MiB"),
        "8",
        "smallest file cache budget the tuner sets",
    );
    TUNER_CACHE_CEILING_MB: Option<u64> = unset(
        "tuner.cache_ceiling_mb",
        "LEANSERVE_TUNER_CACHE_CEILING_MB",
        int(1, 1_048_576, "MiB"),
        "largest file cache budget the tuner sets (default: static_files.max_cache_size)",
    );
}

/// Name of the pool of compressors (gzip, brotli and zstd state), which `codec` takes.
pub const GZIP_POOL: &str = "gzip";
/// Name of the pool of inflaters, which `codec` takes.
pub const INFLATE_POOL: &str = "inflate";
/// Name of the pool of render output buffers, which `templates::render` takes.
pub const BUFFER_POOL: &str = "render_buffers";

/// leanserve's own pools, the names `[pools.overrides.<pool>]` takes.
pub const BUILTIN_POOLS: [&str; 3] = [GZIP_POOL, INFLATE_POOL, BUFFER_POOL];

/// The fields of a `[pools.overrides.<pool>]` table: the `[pools]` keys a pool can
/// change, each by its name in that table.
pub(crate) const POOL_FIELDS: [(&str, Key); 11] = [
    ("max_size", POOLS_MAX_SIZE.key),
    ("min_idle", POOLS_MIN_IDLE.key),
    ("autoscale", POOLS_AUTOSCALE.key),
    ("scale_min", POOLS_SCALE_MIN.key),
    ("scale_max", POOLS_SCALE_MAX.key),
    ("wait_target_ms", POOLS_WAIT_TARGET_MS.key),
    ("acquire_timeout_ms", POOLS_ACQUIRE_TIMEOUT_MS.key),
    ("idle_timeout", POOLS_IDLE_TIMEOUT.key),
    ("max_lifetime", POOLS_MAX_LIFETIME.key),
    ("validate_after", POOLS_VALIDATE_AFTER.key),
    ("leak_threshold_ms", POOLS_LEAK_THRESHOLD_MS.key),
];

/// The names of [`POOL_FIELDS`], comma-separated, for messages.
pub(crate) fn pool_field_names() -> String {
    let names: Vec<&str> = POOL_FIELDS.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}
