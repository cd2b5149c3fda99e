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
//! use leanserve::config::{Config, LoadOptions};
//!
//! let config = Config::load(&LoadOptions::from_process_env())?;
//! let subsystems = leanserve::Runtime::new(config.opts).start().await?;
//! // The site under /lean on the public listener...
//! let site = subsystems.clone();
//! let public = HttpServer::new(move || {
//!     App::new().service(web::scope("/lean").configure(leanserve::web::configure_public(&site)))
//! })
//! .bind("0.0.0.0:8080")?
//! .run();
//! // ...and the admin surface (admin routes, metrics, dashboard) where only operators reach.
//! let ops = subsystems.clone();
//! let admin = HttpServer::new(move || App::new().configure(leanserve::web::configure_admin(&ops)))
//!     .bind("127.0.0.1:8081")?
//!     .run();
//! let (public, admin) = tokio::join!(public, admin);
//! public?;
//! admin?;
//! subsystems.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`config`]: layered configuration (flags > environment > `config/<profile>.toml` >
//!   `config/default.toml` > compiled defaults), checked once into [`config::Opts`].
//! - [`supervisor`]: OTP-style supervision over actix actors: child specs, restart types,
//!   strategies, restart intensity with escalation, stable [`supervisor::Handle`]s.
//! - [`runtime`]: [`Runtime::start`] builds the supervision tree from `Opts` and returns
//!   [`Subsystems`], the cloneable set of handles.
//! - [`pool`]: resource pools: named pools of reusable objects with hand-off to waiters,
//!   typed acquire errors, panicking holders' objects discarded, leak detection, reaping,
//!   validation, autoscaling and statistics; the [`pool::Pools`] registry.
//! - [`concurrency`]: the concurrency manager: an adaptive in-flight limit (pure) and the
//!   limiter that applies it with a short CoDel-style queue; one for static files, one
//!   for renders.
//! - [`tuner`]: the configuration tuner's pure part: the memory limit (cgroup v2/v1,
//!   configured, total) and the rules that turn readings into recommendations.
//! - [`codec`]: gzip and gunzip on libdeflate with reusable state, from the `gzip` and
//!   `inflate` pools (the file cache's and the template renders' compression).
//! - [`alloc`]: the allocator: jemalloc statistics, heap sampling and pprof dumps, the
//!   file cache's own arena, and [`use_jemalloc!`] for binaries (the library never sets a
//!   global allocator).
//! - [`actors`]: the supervised actors, one per file (`process`: RSS and CPU sampler;
//!   `file_cache`: the byte-bounded LRU of static files behind TinyLFU admission, with
//!   gzip built in the background and misses the kernel can answer at once read without
//!   blocking; `profiler`:
//!   memory snapshots, comparisons and heap profiles; `templates`: the template store:
//!   folder scanning, reloads, publishing the engine's builds, render workers, reports
//!   and metrics; `monitor`: collection, history, alerts and their webhook;
//!   `pool_manager`: the owner of the pool registry, its upkeep, creation and resizing;
//!   `tuner`: reads the figures every interval, recommends and applies the live knobs).
//! - [`off`]: [`off::Off`], what every route and method that needs a switched-off
//!   subsystem answers (409 on the admin surface, naming the key that switches it on).
//! - [`templates`]: the template engine on minijinja, pure (no actix): extends chains,
//!   the flattener, variable analysis, usage tracking, lazy values, interning and
//!   deduplication, the staged build, bounded renders and [`templates::TemplateError`];
//!   [`templates::machinery`] is the one door to minijinja's unstable internals.
//! - [`metrics`]: the sources subsystems register with the monitor, metric families,
//!   per-request counters and the Prometheus text format.
//! - [`alerts`]: alert rules, their Prometheus-like states and the defaults.
//! - [`http`]: pure HTTP decisions without actix: admin access, request path safety,
//!   preconditions, ranges, Accept-Encoding negotiation.
//! - [`web`]: the actix-web side in two surfaces: [`web::configure_public`] mounts the
//!   site (health, templates, static files), [`web::configure_admin`] the admin surface
//!   (admin, monitoring and dashboard, profiler) behind admin access, [`web::configure`]
//!   both on one listener, [`web::limit_head`] the request-head limit; `web/error.rs`
//!   maps failures to statuses.
//! - `src/bin/memory-benchmark.rs`: the template optimizers against the baseline on a
//!   generated site, with a counting allocator, written up as a markdown report.
//! - `src/bin/leanserve/`: the binary: `main.rs` (`serve` on the serving and admin
//!   listeners, `config`), `client.rs` (`status`, `profile`, `optimize`, `tune` against a
//!   running server's admin surface), `unix_socket.rs` (the admin surface's owner-only
//!   Unix socket) and `unix_http.rs` (the client's HTTP/1.1 over it).

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod actors;
pub mod alerts;
// jemalloc's control interface and the cache's arena are FFI; every block says why it
// is sound.
#[allow(unsafe_code)]
pub mod alloc;
pub mod codec;
pub mod concurrency;
pub mod config;
pub mod http;
pub mod metrics;
pub mod off;
pub mod pool;
pub mod runtime;
pub mod supervisor;
pub mod templates;
pub mod tuner;
pub mod web;

pub use runtime::{Runtime, Subsystems};

#[cfg(test)]
mod tests {
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
