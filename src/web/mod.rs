//! The actix-web side: [`configure`] mounts every leanserve route into any `App` or
//! `Scope`, one file per route group.
//!
//! - `health.rs`: `GET /health`, `GET /ready`
//! - `admin.rs`: `/admin/*` behind admin auth (`GET /admin/supervisor`,
//!   `GET /admin/process`, `GET /admin/config`, `GET /admin/cache`,
//!   `POST /admin/cache/clear`, `GET /admin/pools`, `GET /admin/pools/{name}`,
//!   `POST /admin/pools/{name}/resize`, `GET /admin/tuner`,
//!   `GET /admin/tuner/recommendations`, `POST /admin/tuner/apply`, and with the `chaos` feature
//!   `POST /admin/chaos/panic/{child}`)
//! - `profiler.rs`: `/admin/profiler/*` (stats, snapshots, compare, capture) and
//!   `GET /debug/pprof/heap`, behind admin auth
//! - `monitoring.rs`: the per-request middleware (around the health and admin routes;
//!   the static file route counts itself), `GET /metrics`, `/monitoring`,
//!   `/monitoring/history`, `/monitoring/alerts` and the `/dashboard` (when
//!   `monitoring.enabled`; these are not counted as requests)
//! - `templates.rs`: `GET`/`HEAD`/`POST /templates/{name}` renders (when
//!   `templates.enabled`)
//! - `files.rs`: static files from `static_files.root_dir` for every other path, through
//!   the file cache
//! - `limit.rs`: the in-flight limiters on static files and renders, the permit held
//!   until the response body has been sent
//! - `error.rs`: the single mapping from failures to statuses

mod admin;
mod error;
mod files;
mod health;
mod limit;
mod monitoring;
mod profiler;
mod templates;

pub use error::WebError;

use actix_web::web;

use crate::runtime::Subsystems;

/// Mounts leanserve's routes. Use it on an `App` (`App::new().configure(...)`) or under
/// a prefix (`web::scope("/site").configure(...)`); it registers `subsystems` as
/// `web::Data` for its own handlers.
pub fn configure(subsystems: &Subsystems) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let subsystems = subsystems.clone();
    move |cfg| {
        let monitored = subsystems.monitoring().is_some();
        let templated = subsystems.templates().is_some();
        cfg.app_data(web::Data::new(subsystems));
        if monitored {
            // Not measured: scrapes and dashboard polling are not traffic.
            cfg.configure(monitoring::configure);
        }
        // Static files last: they take any path.
        cfg.configure(|cfg| health::configure(cfg, monitored))
            .configure(|cfg| admin::configure(cfg, monitored));
        if templated {
            cfg.configure(|cfg| templates::configure(cfg, monitored));
        }
        cfg.configure(files::configure);
    }
}
