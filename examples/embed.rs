//! leanserve mounted inside a host actix-web application.
//!
//! The host keeps its own routes (`/` and `/api/hello`) and mounts leanserve under
//! `/lean`: its health and readiness, admin routes and static files then live at
//! `/lean/health`, `/lean/ready`, `/lean/admin/...` and `/lean/...`. The host also puts
//! one of its own actors (a visit counter) under leanserve's supervisor.
//!
//! Run it from the repository root: `cargo run --example embed`, then open
//! <http://127.0.0.1:8081/>.

use actix::prelude::*;
use actix_web::{App, HttpResponse, HttpServer, web};
use leanserve::config::{Config, LoadOptions};
use leanserve::runtime::{Runtime, Subsystems};
use leanserve::supervisor::{ChildSpec, Handle};

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

/// Starts leanserve's runtime with the host's actor in its tree.
pub async fn start(opts: leanserve::config::Opts) -> (Subsystems, Handle<Visits>) {
    let (spec, visits) = ChildSpec::worker("visits", || Visits { count: 0 });
    let subsystems = Runtime::new(opts)
        .child(spec)
        .launch()
        .await
        .expect("leanserve runtime starts");
    (subsystems, visits)
}

/// The host's routes with leanserve mounted under `/lean`.
pub fn host_routes(
    subsystems: &Subsystems,
    visits: &Handle<Visits>,
) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let (subsystems, visits) = (subsystems.clone(), visits.clone());
    move |cfg| {
        cfg.app_data(web::Data::new(visits))
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok().body("host app; leanserve is under /lean/")
                }),
            )
            .route("/api/hello", web::get().to(hello))
            .service(web::scope("/lean").configure(leanserve::web::configure(&subsystems)));
    }
}

async fn hello(visits: web::Data<Handle<Visits>>) -> HttpResponse {
    match visits.send(Visit).await {
        Ok(count) => {
            HttpResponse::Ok().json(serde_json::json!({ "hello": "world", "visits": count }))
        }
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[allow(dead_code)] // the tests include this file for its functions, not for `main`
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config::load(&LoadOptions::from_process_env()).unwrap_or_else(|error| {
        eprintln!("embed: {error}");
        std::process::exit(2);
    });
    let (subsystems, visits) = start(config.opts).await;
    let app_subsystems = subsystems.clone();
    HttpServer::new(move || App::new().configure(host_routes(&app_subsystems, &visits)))
        .bind("127.0.0.1:8081")?
        .run()
        .await?;
    subsystems.shutdown().await;
    Ok(())
}
