//! leanserve mounted inside a host actix-web application.
//!
//! The host keeps its own routes (`/` and `/api/hello`) and mounts leanserve's serving
//! surface under `/lean`: its health, readiness and static files then live at
//! `/lean/health`, `/lean/ready` and `/lean/...`. leanserve's admin surface (`/admin/...`,
//! `/metrics`, the dashboard) goes on a second listener that only loopback reaches, as
//! the server binary's `admin.bind` does, so the host's public port never exposes it.
//! The host also puts one of its own actors (a visit counter) under leanserve's
//! supervisor, and keeps its connections to a backend service (a line-based upper-casing
//! service on loopback, started by the example) in a pool under leanserve's pool
//! manager: `/api/shout/{word}` borrows one, and the admin listener's `/admin/pools` and
//! `/metrics` show the `backend` pool beside leanserve's own.
//!
//! When leanserve's supervision tree gives up, the host drains both listeners and exits
//! with status 3 (as the `leanserve` binary does), for its process manager to restart it ([`serve`]).
//!
//! Run it from the repository root: `cargo run --example embed`, then open
//! <http://127.0.0.1:8080/> (the host) and <http://127.0.0.1:8082/dashboard> (admin).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use leanserve::{ChildSpec, Handle};
use leanserve::{Config, LoadOptions};
use leanserve::{FnManager, Pool, PoolSpec};
use leanserve::{Runtime, Subsystems};

/// The backend the host talks to: answers each line upper-cased. One thread per
/// connection; it runs until the process ends.
pub fn start_backend() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = match stream.try_clone() {
                    Ok(writer) => writer,
                    Err(_) => return,
                };
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if writeln!(writer, "{}", line.to_uppercase()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// One connection to the backend.
pub struct Backend {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Backend {
    fn connect(addr: SocketAddr) -> io::Result<Backend> {
        let writer = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        writer.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Backend {
            reader: BufReader::new(writer.try_clone()?),
            writer,
        })
    }

    /// Sends one line, answers the backend's reply.
    pub fn call(&mut self, line: &str) -> io::Result<String> {
        writeln!(self.writer, "{line}")?;
        let mut reply = String::new();
        self.reader.read_line(&mut reply)?;
        if reply.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(reply.trim_end().to_owned())
    }
}

/// The host's pool of backend connections.
pub type Connections = Pool<FnManager<Backend, io::Error>>;

/// Puts the host's backend connections in a pool under leanserve's pool manager:
/// connections are made on demand (up to 4, autoscaled), checked with a ping after 30 s
/// idle, and shut down when they leave the pool.
pub async fn backend_pool(subsystems: &Subsystems, addr: SocketAddr) -> Connections {
    let manager = FnManager::new(move || Backend::connect(addr))
        .validate(|backend: &mut Backend| backend.call("ping").is_ok_and(|reply| reply == "PING"))
        .cleanup(|backend: Backend| {
            let _ = backend.writer.shutdown(std::net::Shutdown::Both);
        });
    subsystems
        .create_pool("backend", PoolSpec::new(4).min_idle(1), manager)
        .await
        .expect("the backend pool is created")
}

/// The host's own actor: counts visits to `/api/hello`.
pub struct Visits {
    count: u64,
}

impl Actor for Visits {
    type Context = Context<Self>;
}

/// Counts one visit and answers the total.
pub struct Visit;

impl Message for Visit {
    type Result = u64;
}

impl Handler<Visit> for Visits {
    type Result = u64;
    fn handle(&mut self, _: Visit, _: &mut Context<Self>) -> u64 {
        self.count += 1;
        self.count
    }
}

/// What the host's routes use.
#[derive(Clone)]
pub struct Host {
    pub subsystems: Subsystems,
    pub visits: Handle<Visits>,
    pub backend: Connections,
}

/// Starts leanserve's runtime with the host's actor in its tree and its backend pool
/// under its pool manager.
pub async fn start(opts: leanserve::Opts) -> Host {
    let (spec, visits) = ChildSpec::worker("visits", || Visits { count: 0 });
    let subsystems = Runtime::new(opts)
        .child(spec)
        .start()
        .await
        .expect("leanserve runtime starts");
    let addr = start_backend().expect("the backend listens on loopback");
    let backend = backend_pool(&subsystems, addr).await;
    Host {
        subsystems,
        visits,
        backend,
    }
}

/// The host's routes with leanserve's serving surface mounted under `/lean`.
pub fn host_routes(host: &Host) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let host = host.clone();
    move |cfg| {
        let subsystems = host.subsystems.clone();
        cfg.app_data(web::Data::new(host.visits.clone()))
            .app_data(web::Data::new(host.backend.clone()))
            .route("/api/shout/{word}", web::get().to(shout))
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok().body("host app; leanserve is under /lean/")
                }),
            )
            .route("/api/hello", web::get().to(hello))
            .service(web::scope("/lean").configure(leanserve::configure_public(&subsystems)));
    }
}

/// leanserve's admin surface, for a listener of its own that only operators reach.
pub fn admin_routes(host: &Host) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    leanserve::configure_admin(&host.subsystems)
}

async fn hello(visits: web::Data<Handle<Visits>>) -> HttpResponse {
    match visits.send(Visit).await {
        Ok(count) => {
            HttpResponse::Ok().json(serde_json::json!({ "hello": "world", "visits": count }))
        }
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// Borrows a backend connection for one call, on the blocking pool.
async fn shout(backend: web::Data<Connections>, word: web::Path<String>) -> HttpResponse {
    let backend = backend.get_ref().clone();
    let reply = web::block(move || -> Result<String, String> {
        let mut connection = backend
            .acquire_blocking(Duration::from_secs(1))
            .map_err(|error| error.to_string())?;
        connection.call(&word).map_err(|error| {
            // A broken connection must not serve the next request.
            connection.discard();
            error.to_string()
        })
    })
    .await;
    match reply {
        Ok(Ok(reply)) => HttpResponse::Ok().json(serde_json::json!({ "reply": reply })),
        Ok(Err(error)) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": error }))
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// How the host's listeners ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// They stopped on their own: SIGINT or SIGTERM drained them.
    Stopped,
    /// leanserve's supervision tree gave up (a child failed past its restart intensity)
    /// and the host drained its listeners: it exits so that what runs it (systemd's
    /// `Restart=on-failure`, Kubernetes) starts it again with fresh state.
    Escalated,
}

/// Runs the host's listeners until they stop, or until leanserve's supervision tree gives
/// up; then drains them (in-flight requests finish within their shutdown timeout).
pub async fn serve(subsystems: &Subsystems, servers: Vec<Server>) -> io::Result<Ended> {
    let handles: Vec<_> = servers.iter().map(Server::handle).collect();
    tokio::select! {
        served = futures_util::future::try_join_all(servers) => {
            served?;
            Ok(Ended::Stopped)
        }
        () = subsystems.escalated() => {
            log::error!("leanserve's supervision tree gave up; draining the host's listeners");
            for handle in handles {
                handle.stop(true).await;
            }
            Ok(Ended::Escalated)
        }
    }
}

/// The exit status after an escalation, the one the `leanserve` binary uses.
const EXIT_ESCALATED: i32 = 3;

#[allow(dead_code)] // the tests include this file for its functions, not for `main`
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config::load(&LoadOptions::from_process_env()).unwrap_or_else(|error| {
        eprintln!("embed: {error}");
        std::process::exit(2);
    });
    let host = start(config.opts).await;
    let app_host = host.clone();
    // Large files go out in several writes: without TCP_NODELAY the last of them waits
    // for the client's delayed ACK.
    let public = HttpServer::new(move || App::new().configure(host_routes(&app_host)))
        .tcp_nodelay(true)
        .bind("127.0.0.1:8080")?
        .run();
    let admin_host = host.clone();
    // Loopback only: without an admin token, admin access admits local peers alone.
    let admin = HttpServer::new(move || App::new().configure(admin_routes(&admin_host)))
        .workers(1)
        .bind("127.0.0.1:8082")?
        .run();
    match serve(&host.subsystems, vec![public, admin]).await? {
        Ended::Stopped => {
            host.subsystems.shutdown().await;
            Ok(())
        }
        Ended::Escalated => std::process::exit(EXIT_ESCALATED),
    }
}
