//! The actix-web side. leanserve's routes form two surfaces, each mounted by its own
//! function into any `App` or `Scope`:
//!
//! - [`configure_public`], the serving surface: `GET /health`, `GET /ready`, the
//!   template renders and the static files (and `GET /metrics` when
//!   `monitoring.public_metrics`), all of it one default service (`public.rs`), so
//!   mounted at the root it shadows none of the host's routes, registered before or
//!   after. Nothing on it reveals leanserve's internals: any path but its own is a
//!   static file or a 404. With [`reserve_admin_paths`] (the binary's serving listener
//!   has it) the admin surface's paths answer 404 to every method, whatever files the
//!   site holds, still without shadowing a host's route at one of them.
//! - [`configure_admin`], the admin surface: `/admin/*`, `/debug/*`, `GET /metrics`,
//!   `/monitoring*` and the `/dashboard`, plus `/health` and `/ready`. Every route on it
//!   but the dashboard's own page and assets (which hold no data) passes
//!   `require_admin`: the bearer token when one is configured, else loopback and
//!   Unix-socket peers only (see `http::auth`). The binary serves it on `admin.bind`.
//! - [`configure`]: both on one listener, what `admin.bind = "serving"` does.
//!
//! A host that serves the admin surface on a Unix socket passes [`mark_unix_peers`] to
//! `HttpServer::on_connect`, so its peers count as local.
//!
//! One file per route group:
//!
//! - `public.rs`: the serving surface's default service, which dispatches by path to
//!   health, readiness, renders and public metrics, answers the reserved admin paths
//!   404, and hands the rest to the static files
//! - `health.rs`: `GET /health`, `GET /ready`
//! - `admin.rs`: `/admin/*` (`GET /admin/supervisor`, `GET /admin/process`,
//!   `GET /admin/config`, `GET /admin/cache`, `POST /admin/cache/clear`,
//!   `GET /admin/pools`, `GET /admin/pools/{name}`, `POST /admin/pools/{name}/resize`,
//!   `GET /admin/tuner`, `GET /admin/tuner/recommendations`, `POST /admin/tuner/apply`,
//!   and with the `chaos` feature `POST /admin/chaos/panic/{child}`), `require_admin`
//!   and the audit log of state-changing requests
//! - `profiler.rs`: `/admin/profiler/*` (stats, snapshots, compare, capture) and
//!   `GET /debug/pprof/heap`
//! - `monitoring.rs`: the per-request middleware (around the health and admin routes;
//!   the static file route counts itself), `GET /metrics`, `/monitoring`,
//!   `/monitoring/history`, `/monitoring/alerts` and the `/dashboard` (when
//!   `monitoring.enabled`; these are not counted as requests)
//! - `templates.rs`: `GET`/`HEAD`/`POST /templates/{name}` renders (when
//!   `templates.enabled`)
//! - `files.rs`: static files from `static_files.root_dir` for every other path (last in
//!   the default service), through the file cache
//! - `limit.rs`: the in-flight limiters on static files and renders, the permit held
//!   until the response body has been sent
//! - `server.rs`: the request-head limit of `server.max_header_bytes` ([`limit_head`])
//! - `error.rs`: the single mapping from failures to statuses

mod admin;
mod dictionaries;
mod error;
mod files;
mod health;
mod limit;
mod monitoring;
mod profiler;
mod public;
mod server;
mod templates;

pub use server::limit_head;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::web;
use std::sync::Arc;

use crate::http::conditional::Conditions;
use crate::metrics::{Connection, Connections, Protocol, Transport};
use crate::runtime::Subsystems;

/// A header's value as text; `None` when absent or not visible ASCII.
fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The request's preconditions (`If-Match`, `If-None-Match`, and the two dates).
fn conditions(headers: &HeaderMap) -> Conditions<'_> {
    Conditions {
        if_match: header_str(headers, header::IF_MATCH),
        if_none_match: header_str(headers, header::IF_NONE_MATCH),
        if_modified_since: header_str(headers, header::IF_MODIFIED_SINCE),
        if_unmodified_since: header_str(headers, header::IF_UNMODIFIED_SINCE),
    }
}

/// The entity-tag preconditions only, for representations without a modification time
/// (renders, the dashboard's compiled-in files).
fn etag_conditions(headers: &HeaderMap) -> Conditions<'_> {
    Conditions {
        if_modified_since: None,
        if_unmodified_since: None,
        ..conditions(headers)
    }
}

/// Mounts the serving surface: health, readiness, template renders and static files
/// (and `GET /metrics` when `monitoring.public_metrics`). Use it on an `App`
/// (`App::new().configure(...)`) or under a prefix (`web::scope("/site").configure(...)`);
/// it registers `subsystems` as `web::Data` for its own handlers.
///
/// It registers no route: all of it is the default service of that app or scope, which
/// actix-web calls only for a request none of the app's routes matches. Mounted at the
/// root it therefore shadows none of the host's routes, registered before or after it:
/// a host's own `/health`, `/metrics` or `/admin` answers, and so does a host route at a
/// path that is also a static file. A host that wants a default service of its own
/// mounts leanserve under a prefix.
///
/// Paths of the admin surface (`/admin`, `/metrics`, ...) are static files here like any
/// other; the binary's serving listener answers them 404 instead, and a host opts into
/// that with [`reserve_admin_paths`].
pub fn configure_public(subsystems: &Subsystems) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    mount(subsystems, Surfaces::Public)
}

/// Makes the serving surface mounted in this app or scope (or one nested in it) answer
/// the admin surface's paths 404 to every method, as the binary's serving listener
/// does: `/admin`, `/debug`, `/monitoring` and `/dashboard` and everything below them,
/// and `/metrics` (unless `monitoring.public_metrics` serves it). No site file stands in
/// for them, and a `POST` gets the same 404 as a `GET` (a static file would answer 405).
/// Use it as `App::new().configure(leanserve::reserve_admin_paths)`, before or after
/// [`configure_public`]. Like the rest of the serving surface it claims no route: a
/// host's own route at one of these paths still answers.
pub fn reserve_admin_paths(cfg: &mut web::ServiceConfig) {
    cfg.app_data(public::AdminPathsReserved);
}

/// Mounts the admin surface: `/admin/*`, `/debug/*`, the monitoring routes and the
/// dashboard, behind admin access, plus health and readiness. Serve it where only
/// operators reach it (the binary uses `admin.bind`).
pub fn configure_admin(subsystems: &Subsystems) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    mount(subsystems, Surfaces::Admin)
}

/// Mounts both surfaces on one listener, as `admin.bind = "serving"` does: the admin
/// routes then answer wherever the site does, so set `admin.token`.
pub fn configure(subsystems: &Subsystems) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    mount(subsystems, Surfaces::Both)
}

/// Marks connections that arrive over a Unix socket, whose peers `require_admin` treats
/// as local; pass it to `HttpServer::on_connect` on a server listening on one.
pub fn mark_unix_peers(
    connection: &dyn std::any::Any,
    extensions: &mut actix_web::dev::Extensions,
) {
    if connection
        .downcast_ref::<actix_web::rt::net::UnixStream>()
        .is_some()
    {
        extensions.insert(UnixPeer);
    }
}

/// Counts one connection of a serving listener in `connections` and keeps its guard in
/// the connection's data, so its close is counted too. TLS connections are HTTP/2 when
/// ALPN chose `h2`; cleartext ones are HTTP/1 unless the listener takes `h2c`, when the
/// first request settles it ([`settle_connection`]).
pub(crate) fn count_connection(
    connections: &Arc<Connections>,
    h2c: bool,
    connection: &dyn std::any::Any,
    extensions: &mut actix_web::dev::Extensions,
) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let (transport, protocol) = match connection.downcast_ref::<Tls>() {
        Some(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
            (Transport::Tls, Protocol::H2)
        }
        Some(_) => (Transport::Tls, Protocol::Http1),
        None if h2c => (Transport::Tcp, Protocol::Unknown),
        None => (Transport::Tcp, Protocol::Http1),
    };
    extensions.insert(connections.accepted(transport, protocol));
}

/// Settles the protocol of the request's connection, when it is counted and not known
/// yet (a cleartext connection on an h2c listener).
pub(crate) fn settle_connection(request: &HttpRequest) {
    if let Some(connection) = request.conn_data::<Connection>() {
        connection.settle(if request.version() == actix_web::http::Version::HTTP_2 {
            Protocol::H2
        } else {
            Protocol::Http1
        });
    }
}

/// A connection's marker: it came over a Unix socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnixPeer;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Surfaces {
    Public,
    Admin,
    Both,
}

fn mount(
    subsystems: &Subsystems,
    surfaces: Surfaces,
) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let subsystems = subsystems.clone();
    move |cfg| {
        let monitored = subsystems.monitoring().is_some();
        let templated = subsystems.templates().is_some();
        let public_metrics = subsystems.opts().monitoring.public_metrics;
        let admin = surfaces != Surfaces::Public;
        let public = surfaces != Surfaces::Admin;
        cfg.app_data(web::Data::new(subsystems));
        if monitored && admin {
            // Not measured: scrapes and dashboard polling are not traffic.
            cfg.configure(monitoring::configure);
        } else if admin {
            cfg.configure(monitoring::configure_off);
        }
        if admin && !public {
            // The admin surface owns its paths: health and readiness are routes there.
            for endpoint in health::endpoints(monitored) {
                cfg.service(endpoint.into_resource());
            }
        }
        if admin {
            cfg.configure(|cfg| admin::configure(cfg, monitored));
        }
        if public {
            // The serving surface claims no route: its paths are the default service's,
            // reached by what none of the app's routes claims, leanserve's or the host's.
            let mut endpoints = Vec::from(health::endpoints(monitored));
            if templated {
                endpoints.push(templates::endpoint(monitored));
            }
            if monitored && public_metrics && !admin {
                endpoints.push(monitoring::public_metrics());
            }
            cfg.default_service(public::Dispatcher::new(endpoints, files::route()));
        }
    }
}
