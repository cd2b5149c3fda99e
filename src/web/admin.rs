//! `/admin/*`: introspection and control, behind [`require_admin`].

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Condition, Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::WebError;
use crate::http::auth::{Access, Peer, admin_access};
use crate::off::Off;
use crate::pool::{PoolError, Resize};
use crate::runtime::Subsystems;

/// `measured`: count these requests (refused ones too) in the per-request figures.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, measured: bool) {
    let scope = web::scope("/admin")
        .wrap(from_fn(require_admin))
        .wrap(Condition::new(
            measured,
            from_fn(super::monitoring::measure),
        ))
        .route("/supervisor", web::get().to(supervisor))
        .route("/process", web::get().to(process))
        .route("/cache", web::get().to(cache_stats))
        .route("/cache/clear", web::post().to(clear_cache))
        .route("/config", web::get().to(config))
        .route("/templates", web::get().to(templates))
        .route("/templates/reload", web::post().to(reload_templates))
        .route("/templates/variables", web::get().to(template_variables))
        .route("/templates/optimize", web::post().to(optimize_templates))
        .route("/tuner", web::get().to(tuner))
        .route(
            "/tuner/recommendations",
            web::get().to(tuner_recommendations),
        )
        .route("/tuner/apply", web::post().to(tuner_apply))
        .route("/pools", web::get().to(pools))
        .route("/pools/{name}", web::get().to(pool))
        .route("/pools/{name}/resize", web::post().to(resize_pool))
        .service(web::scope("/profiler").configure(super::profiler::admin_routes))
        .default_service(web::to(not_found));
    #[cfg(feature = "chaos")]
    let scope = scope.route("/chaos/panic/{child}", web::post().to(chaos_panic));
    cfg.service(scope);
    cfg.service(
        web::scope("/debug/pprof")
            .wrap(from_fn(require_admin))
            .wrap(Condition::new(
                measured,
                from_fn(super::monitoring::measure),
            ))
            .route("/heap", web::get().to(super::profiler::pprof_heap))
            .default_service(web::to(not_found)),
    );
}

/// Unknown paths under the admin scopes: 404 (behind admin access like the rest), not
/// the static files that answer elsewhere when both surfaces share a listener.
async fn not_found() -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound)
}

/// Lets a request through only with admin access (see `http::auth`). Unknown paths under
/// the scope are checked too, so they reveal nothing to strangers. Requests that change
/// state (any method but GET and HEAD), let through or refused, go to the audit log
/// (target `leanserve::audit`) with the peer, the outcome and whether a token came with
/// them.
pub(crate) async fn require_admin(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let subsystems = request
        .app_data::<web::Data<Subsystems>>()
        .expect("leanserve::web::configure registers Subsystems");
    let token = subsystems.opts().admin.token.as_deref();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    let peer = if request.conn_data::<super::UnixPeer>().is_some() {
        Peer::UnixSocket
    } else {
        request
            .peer_addr()
            .map_or(Peer::Unknown, |addr| Peer::Ip(addr.ip()))
    };
    let access = admin_access(token, peer, authorization);
    let audit = (!matches!(*request.method(), Method::GET | Method::HEAD)).then(|| Audit {
        method: request.method().clone(),
        path: request.path().to_owned(),
        peer: match (peer, request.peer_addr()) {
            (Peer::UnixSocket, _) => "unix socket".to_owned(),
            (_, Some(addr)) => addr.to_string(),
            (_, None) => "unknown peer".to_owned(),
        },
        token: authorization.is_some(),
    });
    let refusal = match access {
        Access::Granted => {
            let response = next.call(request).await;
            if let Some(audit) = audit {
                match &response {
                    Ok(response) => audit.log(response.status().as_u16(), ""),
                    Err(error) => audit.log(error.as_response_error().status_code().as_u16(), ""),
                }
            }
            return response.map(ServiceResponse::map_into_left_body);
        }
        Access::Unauthorized => WebError::Unauthorized,
        Access::Forbidden => WebError::Forbidden,
    };
    if let Some(audit) = audit {
        let status = actix_web::ResponseError::status_code(&refusal).as_u16();
        audit.log(status, " refused");
    }
    Ok(request.error_response(refusal).map_into_right_body())
}

/// One state-changing admin request, for the audit log.
struct Audit {
    method: Method,
    path: String,
    peer: String,
    /// An `Authorization` header came with it (right or wrong).
    token: bool,
}

impl Audit {
    fn log(self, status: u16, refused: &str) {
        let Audit {
            method,
            path,
            peer,
            token,
        } = self;
        let token = if token {
            "with a token"
        } else {
            "without a token"
        };
        let level = if status < 400 {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        log::log!(target: "leanserve::audit", level, "{method} {path} from {peer} {token}:{refused} {status}");
    }
}

/// `GET /admin/supervisor`: the supervision tree with each child's state, restarts and
/// last failure.
async fn supervisor(subsystems: web::Data<Subsystems>) -> HttpResponse {
    no_store().json(subsystems.supervisor_report())
}

/// `GET /admin/process`: a fresh sample of this process's memory and CPU.
async fn process(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let sample = subsystems
        .sample_process()
        .await
        .map_err(WebError::Unavailable)?;
    Ok(no_store().json(serde_json::json!({ "sample": sample })))
}

/// `GET /admin/config`: every configuration key with its value and where the value came
/// from (secrets redacted), as `leanserve config` prints them.
async fn config(subsystems: web::Data<Subsystems>) -> HttpResponse {
    let settings: Vec<_> = subsystems
        .opts()
        .described
        .iter()
        .map(|(key, value, source)| {
            serde_json::json!({ "key": key, "value": value, "source": source })
        })
        .collect();
    no_store().json(serde_json::json!({
        "profile": subsystems.opts().profile.name(),
        "settings": settings,
    }))
}

/// `GET /admin/templates`: every template with its parent chain, size, state and how it
/// is served, and the store's options.
async fn templates(subsystems: web::Data<Subsystems>) -> HttpResponse {
    let Some(store) = subsystems.templates() else {
        return no_store().json(serde_json::json!({ "enabled": false, "templates": [] }));
    };
    let published = store.published();
    let opts = store.opts();
    let templates: Vec<_> = published.templates.values().collect();
    no_store().json(serde_json::json!({
        "enabled": true,
        "dir": opts.dir,
        "generation": published.generation,
        "errors": templates.iter().filter(|t| t.error.is_some()).count(),
        "options": {
            "flatten_inheritance": opts.flatten_inheritance,
            "max_inheritance_depth": opts.max_inheritance_depth,
            "cache_optimized_templates": opts.cache_optimized_templates,
            "reload_interval_seconds": opts.reload_interval.map(|i| i.as_secs()),
            "render_workers": opts.render_workers,
            "max_fuel": opts.max_fuel,
            "max_output_bytes": opts.max_output_bytes,
        },
        "memory": published.memory,
        "last_optimize": store.last_optimize(),
        "templates": templates,
    }))
}

#[derive(serde::Deserialize)]
struct TopQuery {
    top: Option<usize>,
}

/// `GET /admin/templates/variables?top=N`: reads per variable (the N most and least
/// read; 10 by default), the variables each template reads, the shared and lazily loaded
/// ones.
async fn template_variables(
    subsystems: web::Data<Subsystems>,
    query: web::Query<TopQuery>,
) -> Result<HttpResponse, WebError> {
    let top = query.top.unwrap_or(10).min(1000);
    let report = subsystems.template_variables(top).ok_or(Off::Templates)?;
    Ok(no_store().json(report))
}

/// `POST /admin/templates/optimize`: re-runs the optimizers and answers what they did.
async fn optimize_templates(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let report = subsystems
        .optimize_templates()
        .await
        .map_err(WebError::Unavailable)?
        .ok_or(Off::Templates)?;
    Ok(no_store().json(report))
}

/// `POST /admin/templates/reload`: re-reads changed templates now.
async fn reload_templates(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    if subsystems.templates().is_none() {
        return Err(Off::Templates.into());
    }
    let summary = subsystems
        .reload_templates()
        .await
        .map_err(WebError::Unavailable)?;
    Ok(no_store().json(summary))
}

/// `GET /admin/tuner`: the mode, the options, the last round's knobs and the latest
/// changes.
async fn tuner(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let Some(tuner) = subsystems.tuner() else {
        return Ok(no_store().json(serde_json::json!({ "mode": "off" })));
    };
    let report = match tuner.report() {
        Some(report) => report,
        None => subsystems
            .tune(false)
            .await
            .map_err(WebError::Unavailable)?
            .ok_or(WebError::Off(Off::Tuner))?,
    };
    let opts = tuner.opts();
    Ok(no_store().json(serde_json::json!({
        "mode": opts.mode,
        "interval_seconds": opts.interval.as_secs(),
        "target_memory_share": opts.target_share,
        "cache_floor_bytes": opts.cache_floor,
        "cache_ceiling_bytes": opts.cache_ceiling,
        "last": report,
        "decisions": tuner.decisions(),
    })))
}

/// `GET /admin/tuner/recommendations`: a fresh round's knobs (nothing applied).
async fn tuner_recommendations(
    subsystems: web::Data<Subsystems>,
) -> Result<HttpResponse, WebError> {
    if subsystems.tuner().is_none() {
        return Err(WebError::Off(Off::Tuner));
    }
    let tuner = subsystems.tuner().expect("checked above").clone();
    let report = tuner.round(false).await;
    Ok(no_store().json(report))
}

/// `POST /admin/tuner/apply`: applies the live knobs now; 409 when the tuner is off.
async fn tuner_apply(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let report = subsystems
        .tune(true)
        .await
        .map_err(WebError::Unavailable)?
        .ok_or(WebError::Off(Off::Tuner))?;
    Ok(no_store().json(serde_json::json!({
        "applied": report.applied,
        "knobs": report.knobs,
        "decisions": subsystems.tuner().map(|t| t.decisions()).unwrap_or_default(),
    })))
}

/// `GET /admin/pools`: every pool with its options, figures and latest resize decisions.
async fn pools(subsystems: web::Data<Subsystems>) -> HttpResponse {
    let opts = &subsystems.opts().pools;
    no_store().json(serde_json::json!({
        "enabled": opts.enabled,
        "maintenance_interval_ms": opts.maintenance_interval.as_millis() as u64,
        "pools": subsystems.pool_stats(),
    }))
}

/// `GET /admin/pools/{name}`: one pool; 404 for an unknown name.
async fn pool(
    subsystems: web::Data<Subsystems>,
    name: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    if !subsystems.opts().pools.enabled {
        return Err(PoolError::Off(Off::Pools).into());
    }
    Ok(no_store().json(subsystems.pools().stats_of(&name)?))
}

/// `POST /admin/pools/{name}/resize?max_size=&min_idle=&scale_min=&scale_max=&autoscale=`:
/// changes a pool's limits and answers its figures; 400 naming the parameter or the
/// limit that does not fit, 404 for an unknown pool.
async fn resize_pool(
    subsystems: web::Data<Subsystems>,
    name: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let resize = web::Query::<Resize>::from_query(request.query_string())
        .map_err(|error| {
            WebError::BadRequest(format!(
                "bad resize parameters ({error}); use max_size, min_idle, scale_min, scale_max (whole numbers) and autoscale (true or false)"
            ))
        })?
        .into_inner();
    if resize == Resize::default() {
        return Err(WebError::BadRequest(
            "nothing to change: give max_size, min_idle, scale_min, scale_max or autoscale".into(),
        ));
    }
    let stats = subsystems.resize_pool(&name, resize, "admin").await?;
    Ok(no_store().json(stats))
}

/// `GET /admin/cache`: the file cache's statistics.
async fn cache_stats(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let stats = subsystems
        .cache_stats()
        .await
        .map_err(WebError::Unavailable)?;
    Ok(no_store().json(stats))
}

/// `POST /admin/cache/clear`: empties the file cache.
async fn clear_cache(subsystems: web::Data<Subsystems>) -> Result<HttpResponse, WebError> {
    let freed = subsystems
        .clear_cache()
        .await
        .map_err(WebError::Unavailable)?;
    Ok(no_store().json(serde_json::json!({ "cleared_bytes": freed })))
}

/// `POST /admin/chaos/panic/{child}` (chaos builds only): makes that child panic inside
/// its own task; its supervisor restarts it. With `?storm=true` every later incarnation
/// panics as soon as it starts too, until the supervisor gives up.
#[cfg(feature = "chaos")]
async fn chaos_panic(
    subsystems: web::Data<Subsystems>,
    child: web::Path<String>,
    query: web::Query<ChaosQuery>,
) -> Result<HttpResponse, WebError> {
    let injected = if query.storm {
        subsystems.inject_restart_storm(&child)
    } else {
        subsystems.inject_panic(&child)
    };
    match injected {
        None => Err(WebError::NotFound),
        Some(false) => Err(WebError::Unavailable(
            crate::supervisor::CallError::Unavailable {
                child: child.into_inner(),
                waited: std::time::Duration::ZERO,
            },
        )),
        Some(true) => Ok(HttpResponse::Accepted().json(serde_json::json!({
            "child": child.into_inner(),
            "injected": if query.storm { "restart storm" } else { "panic" },
        }))),
    }
}

#[cfg(feature = "chaos")]
#[derive(serde::Deserialize)]
struct ChaosQuery {
    #[serde(default)]
    storm: bool,
}

pub(crate) fn no_store() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response
}
