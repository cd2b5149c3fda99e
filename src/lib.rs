//! leanserve: a memory-lean, self-healing web runtime on actix-web.
//!
//! leanserve serves a site (static files through a byte-bounded cache, Jinja templates
//! with their inheritance flattened) with a bounded, measured footprint, measures itself (metrics, alerts, a
//! live dashboard, memory snapshots and heap profiles), and runs every subsystem as an actix
//! actor under an OTP-style supervisor: a panic in one part is caught, logged and
//! repaired with fresh state while the rest keeps serving. It runs as the `leanserve`
//! server binary or mounted inside a host actix-web application:
//!
//! ```no_run
//! # async fn host() -> Result<(), Box<dyn std::error::Error>> {
//! use actix_web::{App, HttpServer, web};
//! use leanserve::{Config, LoadOptions};
//!
//! let config = Config::load(&LoadOptions::from_process_env())?;
//! let subsystems = leanserve::Runtime::new(config.opts).start().await?;
//! // The site under /lean on the public listener...
//! let site = subsystems.clone();
//! let public = HttpServer::new(move || {
//!     App::new().service(web::scope("/lean").configure(leanserve::configure_public(&site)))
//! })
//! .tcp_nodelay(true) // large files go out in several writes: no Nagle delay
//! .bind("0.0.0.0:8080")?
//! .run();
//! // ...and the admin surface (admin routes, metrics, dashboard) where only operators reach.
//! let ops = subsystems.clone();
//! let admin = HttpServer::new(move || App::new().configure(leanserve::configure_admin(&ops)))
//!     .bind("127.0.0.1:8081")?
//!     .run();
//! let (public, admin) = tokio::join!(public, admin);
//! public?;
//! admin?;
//! subsystems.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # The API
//!
//! - Start: [`Config::load`] resolves the layered configuration into [`Opts`] (or build
//!   one in code and let [`Opts::validate`] check it); [`Runtime::new`]`(opts)`, with
//!   [`Runtime::child`] for the host's own actors, then [`Runtime::start`] answers
//!   [`Subsystems`], the cloneable handles; [`Subsystems::escalated`] resolves when the
//!   tree gives up, [`Subsystems::shutdown`] stops it.
//! - Mount: [`configure_public`] (the site, shadowing none of the host's routes),
//!   [`configure_admin`] (the admin surface), [`configure`] (both),
//!   [`reserve_admin_paths`] (the admin paths 404 on the site, as the binary has it),
//!   [`limit_head`] and [`mark_unix_peers`] for the host's servers.
//! - Supervise: [`ChildSpec`], [`Handle`], [`SupervisorSpec`] and the reports.
//! - Pool: [`Subsystems::create_pool`] with a [`Manager`] (or [`FnManager`]) and a
//!   [`PoolSpec`]; [`Pool`], [`Pooled`] and their errors.
//! - HTTPS: [`Certificates::load`] reads a listener's [`TlsFiles`] (or answers a
//!   [`TlsError`] naming the key at fault), [`Certificates::server_config`] is the rustls
//!   configuration a host binds with (`HttpServer::bind_rustls_0_23`), and
//!   [`Certificates::reload_if_changed`] takes renewed files without a restart.
//! - Read: every [`Subsystems`] method answers a type exported here, with one error type
//!   per call: the cache's [`CacheStats`], the profiler's [`Snapshot`],
//!   [`SnapshotComparison`] and [`CapturedProfile`] (or a [`ProfilerError`]), the
//!   templates' [`VariablesReport`] and [`OptimizeReport`], the tuner's [`TunerReport`]
//!   and [`TunerDecision`]s over typed [`Knob`]s, the monitor's [`AlertStatus`]es, and
//!   the option structs of [`Opts`]. Enums and structs that will grow are
//!   `#[non_exhaustive]`; what hosts build has constructors ([`LoadOptions`]'s setters,
//!   [`Intensity::new`], [`Rule::new`], [`Resize`]'s setters, [`TlsFiles::new`]). The
//!   compiler refuses a public signature that names a type a host cannot, and
//!   `scripts/api_items.sh` checks the same in rustdoc's JSON.
//! - [`Off`]: what asking a switched-off subsystem answers.
//! - [`use_jemalloc!`]: jemalloc as a binary's global allocator, for its statistics and
//!   heap profiles (the library never sets one).
//!
//! # Layout
//!
//! Every module is private; the API above is one `pub use` block.
//!
//! - `config/`: layered configuration (flags > environment > `config/<profile>.toml` >
//!   `config/default.toml` > compiled defaults), every key a typed constant, checked
//!   once into `Opts`.
//! - `supervisor/`: OTP-style supervision over actix actors: child specs, restart types,
//!   strategies, restart intensity with escalation, stable handles.
//! - `runtime.rs`: composes the subsystems into the supervision tree from `Opts` and
//!   answers `Subsystems`; each subsystem's start and handle sit beside its actor
//!   (`FileCacheHandle` in `actors/file_cache/handle.rs` with the miss protocol,
//!   `ProcessHandle`, `ProfilerHandle`, `TemplatesHandle`, `MonitorHandle`,
//!   `TunerHandle`, `PoolsHandle`), and `child_order` spells the tree's order.
//! - `pool/`: resource pools: named pools of reusable objects with hand-off to waiters,
//!   typed acquire errors, panicking holders' objects discarded, leak detection, reaping,
//!   validation, autoscaling and statistics; the `Pools` registry.
//! - `concurrency/`: the concurrency manager: an adaptive in-flight limit (pure) and the
//!   limiter that applies it with a short CoDel-style queue; one for static files, one
//!   for renders.
//! - `tuner/`: the configuration tuner's pure part: the memory limit and pressure
//!   (cgroup v2/v1, configured, total; PSI), the CPU quota (cgroup v2/v1, else the
//!   CPUs), the knobs it tunes (`Knob`, spelt as `/admin/tuner` and the metrics name
//!   them) and the rules that turn readings into recommendations.
//! - `codec.rs`: compression and decoding (gzip on libdeflate, br, zstd) at a quick and a
//!   stored level, with reusable state from the `gzip` and `inflate` pools (the file
//!   cache's and the template renders' compression).
//! - `tls.rs`: TLS for a listener (rustls with ring): a certificate chain and key from PEM
//!   files into the server configuration, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`;
//!   reloads, the leaf's expiry read from its DER, and both as metrics.
//! - `dictionary.rs`: compression dictionaries (RFC 9842): the site dictionary sampled
//!   and trained from the site's pages, asset versions kept as dictionaries, the registry
//!   the request path looks them up in by hash, and dcz/dcb compression against them.
//! - `alloc.rs`: the allocator: jemalloc statistics, heap sampling and pprof dumps, the
//!   file cache's own arena, and `use_jemalloc!`; `alloc/read_buffers.rs`: the buffers
//!   cache misses are read into, kept from one miss to the next.
//! - `actors/`: the supervised actors, one per file (`process`: RSS and CPU sampler;
//!   `file_cache`: the byte-bounded LRU of static files behind TinyLFU admission, with
//!   br, zstd and gzip forms kept by demand (the first one a request's, the stored level
//!   built in the background), dcz and dcb forms against the dictionaries it holds, and
//!   misses the kernel can answer at once read without
//!   blocking; `profiler`: memory snapshots, comparisons and heap profiles; `templates`:
//!   the template store: folder scanning, reloads, publishing the engine's builds, render
//!   workers, reports and metrics; `monitor`: collection, history, alerts and their
//!   webhook; `pool_manager`: the owner of the pool registry, its upkeep,
//!   creation and resizing; `tuner`: reads the figures every interval, recommends and
//!   applies the live knobs).
//! - `templates/`: the template engine on minijinja, pure (no actix): extends chains,
//!   the flattener, variable analysis, usage tracking, lazy values, interning and
//!   deduplication, the staged build, bounded renders and `TemplateError`;
//!   `templates/machinery.rs` is the one door to minijinja's unstable internals.
//! - `off.rs`: `Off`, what every route and method that needs a switched-off subsystem
//!   answers (409 on the admin surface, naming the key that switches it on).
//! - `metrics/`: the sources subsystems register with the monitor, metric families,
//!   per-request and per-connection counters and the Prometheus text format.
//! - `alerts.rs`: alert rules, their Prometheus-like states and the defaults.
//! - `http/`: pure HTTP decisions without actix: admin access, request path safety,
//!   preconditions, ranges, Accept-Encoding negotiation among identity, gzip, br and zstd,
//!   and the RFC 9842 headers, codings and match patterns (`http/dictionary.rs`).
//! - `web/`: the actix-web side in two surfaces: `configure_public` mounts the site
//!   (health, templates, static files) as one default service that dispatches by path
//!   (`web/public.rs`), so it claims no route of the host's, `configure_admin` the admin
//!   surface (admin, monitoring and dashboard, profiler) behind admin access,
//!   `configure` both on one listener, `reserve_admin_paths` the admin paths' 404 on the
//!   site, `limit_head` the request-head limit; `web/dictionaries.rs` serves the site
//!   dictionary and dcz/dcb responses; `web/error.rs` maps failures to statuses.
//! - `properties.rs`: property tests of the parsers (tests only).
//! - `src/bin/memory-benchmark.rs`: the template optimizers against the baseline on a
//!   generated site, with a counting allocator, written up as a markdown report.
//! - `src/bin/leanserve/`: the binary: `main.rs` (`serve` on the serving and admin
//!   listeners, `config`), `client.rs` (`status`, `profile`, `optimize`, `tune` against a
//!   running server's admin surface), `unix_socket.rs` (the admin surface's owner-only
//!   Unix socket) and `unix_http.rs` (the client's HTTP/1.1 over it).

#![deny(missing_docs)]
// Every type a host can reach through a public signature is one it can name (exported
// below) and read about: the compiler checks it for the library a host builds. The
// `cli` feature's `internals` are leanserve's own and exempt.
#![cfg_attr(
    not(feature = "cli"),
    deny(unnameable_types, private_interfaces, private_bounds)
)]
// Without `cli` there is no `internals` module, and what only leanserve's own tools use
// through it (the memory benchmark's engine access, the allocator tests' arena figures)
// is unused; the default build still reports real dead code.
#![cfg_attr(not(feature = "cli"), allow(dead_code, unused_imports))]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod actors;
mod alerts;
// jemalloc's control interface and the cache's arena are FFI; every block says why it
// is sound.
#[allow(unsafe_code)]
mod alloc;
mod codec;
mod concurrency;
mod config;
mod dictionary;
mod http;
mod metrics;
mod off;
mod pool;
mod runtime;
mod supervisor;
mod templates;
mod tls;
mod tuner;
mod web;

// The public API: what an embedding application and the binaries use. Everything else is
// private to the crate.
pub use actors::file_cache::{CacheStats, EncodingStats};
pub use actors::monitor::AlertStatus;
pub use actors::process::ProcessSample;
pub use actors::profiler::{
    CapturedProfile, Comparison as SnapshotComparison, Delta as SnapshotDelta, MemoryStats,
    ProfilerError, Snapshot,
};
pub use actors::templates::{
    LazyVariable, OptimizeReport, ReloadSummary, SharedVariable, VariablesReport,
};
pub use actors::tuner::{TunerDecision, TunerReport};
pub use alerts::{Comparison, Rule, Severity, State as AlertState};
pub use alloc::{Allocator, HeapProfiling, HeapStats, ProfileError as HeapProfileError};
pub use concurrency::{LimitConfig, LimiterConfig};
pub use config::{
    AdminBind, AdminOpts, Admission, Config, ConfigError, ContextOptimizerOpts, LimiterOpts,
    LoadOptions, MemoryOptimizerOpts, MonitoringOpts, Opts, PoolOpts, ProcessOpts, Profile,
    ProfilerOpts, ServerOpts, Source, StaticFileOpts, Store, SupervisorOpts, TemplateOpts,
    TunerMode, TunerOpts,
};
pub use dictionary::{DictionaryInfo, Source as DictionarySource};
pub use http::dictionary::DictCoding;
pub use http::encoding::Coding;
pub use off::Off;
pub use pool::{
    AcquireError, Decision as ScaleDecision, Direction as ScaleDirection, DiscardReason,
    Evidence as ScaleEvidence, FnManager, MaintainReport, Manager, Pool, PoolError, PoolSpec,
    PoolStats, Pooled, Resize, SpecError, WaitFigures,
};
pub use runtime::{Readiness, Runtime, StartError, Subsystems};
pub use supervisor::{
    CallError, ChildReport, ChildSpec, ChildState, ExitReason, Failure, Handle, Intensity, Restart,
    RootSupervisor, Strategy, SupervisorError, SupervisorHandle, SupervisorReport, SupervisorSpec,
    SupervisorState, TreeStatus,
};
pub use templates::chain::ChainError;
pub use templates::{
    DataFileError, FlattenError, InternerStats, LoadState, MemoryReport, RenderError, Rendered,
    Rewrites, Served, TemplateError, TemplateInfo, Unflattenable, UsageReport,
};
pub use tls::{Certificates, TlsError, TlsFiles};
pub use tuner::{
    CpuLimit, CpuSource, Evidence as TuningEvidence, Knob, KnobError,
    LimitSource as MemoryLimitSource, MemoryLimit, Recommendation,
};
pub use web::{
    configure, configure_admin, configure_public, limit_head, mark_unix_peers, reserve_admin_paths,
};

/// What leanserve's own binaries, benchmarks and tests reach into beyond the API above:
/// not part of it, with no stability promise, and only with the `cli` feature (an
/// embedding application that leaves `cli` out cannot reach it at all).
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod internals {
    pub use crate::actors::file_cache::{ENTRY_OVERHEAD, Found, allocation_size};
    pub use crate::actors::process::current_rss;
    pub use crate::actors::templates::TemplatesShared;
    pub use crate::alloc::{
        cache_arena_enabled, cache_arena_stats, heap_stats, in_cache_arena, into_cache_arena,
    };
    pub use crate::codec::{Codecs, GZIP_POOL, GzipManager, INFLATE_POOL, InflateManager};
    pub use crate::config::{TypedKey, keys};
    pub use crate::runtime::child_order;
    pub use crate::templates::render::{BUFFER_POOL, BufferManager, Resources};
    pub use crate::templates::{Published, context, flatten};

    pub use crate::actors::file_cache::{FileCacheReader, LoadError};
    pub use crate::actors::monitor::MonitorReader;
    pub use crate::concurrency::Limiters;
    pub use crate::metrics::RequestMetrics;
    use crate::runtime::Subsystems;
    use crate::supervisor::CallError;

    /// The file cache's read handle.
    pub fn files(subsystems: &Subsystems) -> &FileCacheReader {
        subsystems.files()
    }

    /// Loads `key` through the miss protocol, as the static-file route does.
    pub async fn load_file(
        subsystems: &Subsystems,
        key: String,
    ) -> Result<Result<Found, LoadError>, CallError> {
        subsystems.file_cache().load(key).await
    }

    /// The in-flight limiters; `None` when `limiter.enabled` is false.
    pub fn limiters(subsystems: &Subsystems) -> Option<&Limiters> {
        subsystems.limiters()
    }

    /// The per-request counters.
    pub fn requests(subsystems: &Subsystems) -> &RequestMetrics {
        subsystems.requests()
    }

    /// The monitor's published samples; `None` when monitoring is off.
    pub fn monitoring(subsystems: &Subsystems) -> Option<&MonitorReader> {
        subsystems.monitoring()
    }
}

/// What `use_jemalloc!` expands to; not API.
#[cfg(feature = "jemalloc")]
#[doc(hidden)]
pub mod __jemalloc {
    pub use crate::alloc::{Jemalloc, MALLOC_CONF, MallocConf};
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    /// No source file outgrows what one reader holds in mind: at most 1,500 lines, tests
    /// inside it included (files of tests alone, `tests.rs`, are not counted).
    #[test]
    fn source_files_stay_under_1500_lines() {
        fn visit(dir: &std::path::Path, long: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    visit(&path, long);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs")
                {
                    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                    if lines > 1500 {
                        long.push(format!("{}: {lines} lines", path.display()));
                    }
                }
            }
        }
        let mut long = Vec::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut long,
        );
        assert!(long.is_empty(), "split these: {long:#?}");
    }

    /// The crates only the binaries use stay out of the library's dependency set: an
    /// embedding application that leaves out the `cli` feature compiles none of them.
    #[test]
    fn binary_only_crates_are_behind_the_cli_feature() {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let dependencies = manifest["dependencies"].as_table().unwrap();
        let cli: Vec<&str> = manifest["features"]["cli"]
            .as_array()
            .unwrap()
            .iter()
            .map(|feature| feature.as_str().unwrap())
            .collect();
        for name in ["anyhow", "env_logger", "lexopt", "tempfile"] {
            let optional = dependencies[name].get("optional").and_then(|o| o.as_bool());
            assert_eq!(
                optional,
                Some(true),
                "{name} must be an optional dependency"
            );
            assert!(
                cli.contains(&format!("dep:{name}").as_str()),
                "{name} must come with `cli`"
            );
        }
        assert!(
            !dependencies.contains_key("actix-files"),
            "actix-files is for examples only"
        );
        let default = manifest["features"]["default"].as_array().unwrap();
        for bin in manifest["bin"].as_array().unwrap() {
            let required = bin["required-features"].as_array();
            assert!(
                required.is_some_and(|r| r.iter().any(|f| f.as_str() == Some("cli"))),
                "binary {} must require `cli`",
                bin["name"]
            );
        }
        assert!(
            default.iter().any(|f| f.as_str() == Some("cli")),
            "`cargo run` builds the server"
        );
    }
}
