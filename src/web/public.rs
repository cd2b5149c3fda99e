//! The serving surface's default service: one dispatcher that answers leanserve's own
//! paths (`/health`, `/ready`, `/templates/{name}`, and `/metrics` when
//! `monitoring.public_metrics`) and hands every other path to the static files.
//!
//! Why not routes: actix-web tries an app's routes in the order they were registered and
//! calls its default service only when none matches. Registered as routes, leanserve's
//! paths would shadow a host's route at the same path registered after
//! `configure_public` (its own `/health`, say); as the default service they see only what
//! none of the host's routes claims, wherever the host registers those. The admin paths'
//! 404 ([`reserve_admin_paths`](super::reserve_admin_paths)) is decided here too, so even
//! where it is on, a host's own `/admin` or `/metrics` still answers.
//!
//! Each path is an [`Endpoint`]: what a `web::resource` is once registered (routes tried
//! by method, any other method 405 with `Allow`, the measuring middleware around both),
//! rebuilt here because actix-web builds a resource's service only while registering it
//! in a router, and a default service has none. Its pattern is matched against the path
//! below the mount point (`match_info().unprocessed()`, as the router matches it: under
//! a host's `web::scope("/site")` that is the path after `/site`), and its captures go
//! into `match_info`, so handlers read `{name}` as they would under a route.
//!
//! The static files are called last, directly (no boxed service of their own): theirs is
//! the hot path, and all it pays for the dispatch is a string comparison per endpoint
//! (each endpoint's literal prefix is tested before its pattern matcher runs), less than
//! the router spent matching the same paths as routes.

use actix_service::boxed::{self, BoxService, BoxServiceFactory};
use actix_service::{ServiceFactoryExt as _, apply};
use actix_web::dev::{
    HttpServiceFactory, ResourceDef, Service, ServiceFactory, ServiceRequest, ServiceResponse,
};
use actix_web::http::{Method, header};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{Error, FromRequest, Handler, HttpResponse, Responder, Route, web};
use futures_util::future::LocalBoxFuture;

use super::error::WebError;
use super::monitoring::measure;

/// One of leanserve's paths on the serving surface, answered by method.
pub(crate) struct Endpoint {
    pattern: &'static str,
    /// Counted in the per-request figures (the measuring middleware around the whole
    /// endpoint, its 405s included).
    measured: bool,
    methods: Vec<Method>,
    routes: Vec<Route>,
    /// What a method no route takes gets; `None`: an empty 405 naming `methods` in
    /// `Allow`, as actix-web's resources answer.
    otherwise: Option<Route>,
}

impl Endpoint {
    pub(crate) fn new(pattern: &'static str, measured: bool) -> Endpoint {
        Endpoint {
            pattern,
            measured,
            methods: Vec::new(),
            routes: Vec::new(),
            otherwise: None,
        }
    }

    /// Answers `method` with `handler`.
    pub(crate) fn method<F, Args>(mut self, method: Method, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.methods.push(method.clone());
        self.routes.push(web::method(method).to(handler));
        self
    }

    /// Answers every other method with `route` instead of the plain 405.
    pub(crate) fn otherwise(mut self, route: Route) -> Endpoint {
        self.otherwise = Some(route);
        self
    }

    fn otherwise_route(&mut self) -> Route {
        self.otherwise.take().unwrap_or_else(|| {
            let allow = header::Allow(self.methods.clone());
            web::to(move || {
                let allow = allow.clone();
                async move {
                    HttpResponse::MethodNotAllowed()
                        .insert_header(allow)
                        .finish()
                }
            })
        })
    }

    /// The endpoint as a registered resource, for a surface that owns its paths (the
    /// admin surface's health and readiness).
    pub(crate) fn into_resource(mut self) -> impl HttpServiceFactory + use<> {
        let otherwise = self.otherwise_route();
        let resource = web::resource(self.pattern)
            .wrap(Condition::new(self.measured, from_fn(measure)))
            .default_service(otherwise);
        self.routes
            .into_iter()
            .fold(resource, |resource, route| resource.route(route))
    }

    fn into_dispatched(mut self) -> (Pattern, BoxedFactory) {
        let factory = EndpointFactory {
            otherwise: self.otherwise_route(),
            routes: self.routes,
        };
        let factory = if self.measured {
            boxed::factory(
                apply(from_fn(measure), factory).map(ServiceResponse::map_into_boxed_body),
            )
        } else {
            boxed::factory(factory)
        };
        (Pattern::new(self.pattern), factory)
    }
}

/// An endpoint's path pattern, with its literal part for a first test that costs a
/// string comparison: a static file's path is turned away by it, never reaching the
/// pattern's matcher (for `/templates/{name:.*}` a regular expression over a requoted
/// copy of the path).
#[derive(Clone)]
struct Pattern {
    /// The pattern up to its first `{`: the whole path for a pattern without
    /// parameters, else a prefix every match starts with.
    literal: &'static str,
    /// The pattern has no parameters: only `literal` itself matches.
    exact: bool,
    def: ResourceDef,
}

impl Pattern {
    fn new(pattern: &'static str) -> Pattern {
        let (literal, exact) = match pattern.split_once('{') {
            Some((literal, _)) => (literal, false),
            None => (pattern, true),
        };
        Pattern {
            literal,
            exact,
            def: ResourceDef::new(pattern),
        }
    }

    /// Whether `request`'s path below the mount point matches, its parameters captured
    /// into `match_info` when it does.
    fn capture(&self, request: &mut ServiceRequest) -> bool {
        let path = request.match_info().unprocessed();
        let may_match = if self.exact {
            path == self.literal
        } else {
            path.starts_with(self.literal)
        };
        may_match && self.def.capture_match_info(request)
    }
}

type BoxedFactory = BoxServiceFactory<(), ServiceRequest, ServiceResponse, Error, ()>;
type Boxed = BoxService<ServiceRequest, ServiceResponse, Error>;
/// A route's service (actix-web does not export its name).
type RouteService = <Route as ServiceFactory<ServiceRequest>>::Service;

struct EndpointFactory {
    routes: Vec<Route>,
    otherwise: Route,
}

impl ServiceFactory<ServiceRequest> for EndpointFactory {
    type Response = ServiceResponse;
    type Error = Error;
    type Config = ();
    type Service = EndpointService;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<EndpointService, ()>>;

    fn new_service(&self, _: ()) -> Self::Future {
        let routes: Vec<_> = self.routes.iter().map(|r| r.new_service(())).collect();
        let otherwise = self.otherwise.new_service(());
        Box::pin(async move {
            let mut built = Vec::with_capacity(routes.len());
            for route in routes {
                built.push(route.await?);
            }
            Ok(EndpointService {
                routes: built,
                otherwise: otherwise.await?,
            })
        })
    }
}

struct EndpointService {
    routes: Vec<RouteService>,
    otherwise: RouteService,
}

impl Service<ServiceRequest> for EndpointService {
    type Response = ServiceResponse;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse, Error>>;

    actix_web::dev::always_ready!();

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        match self.routes.iter().find(|route| route.check(&mut request)) {
            Some(route) => route.call(request),
            None => self.otherwise.call(request),
        }
    }
}

/// The serving surface's default service: `endpoints` by path, in order, then the admin
/// paths' 404 where it is on, then `files`.
pub(crate) struct Dispatcher {
    endpoints: Vec<(Pattern, BoxedFactory)>,
    files: Route,
}

impl Dispatcher {
    pub(crate) fn new(endpoints: Vec<Endpoint>, files: Route) -> Dispatcher {
        Dispatcher {
            endpoints: endpoints
                .into_iter()
                .map(Endpoint::into_dispatched)
                .collect(),
            files,
        }
    }
}

impl ServiceFactory<ServiceRequest> for Dispatcher {
    type Response = ServiceResponse;
    type Error = Error;
    type Config = ();
    type Service = DispatcherService;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<DispatcherService, ()>>;

    fn new_service(&self, _: ()) -> Self::Future {
        let endpoints: Vec<_> = self
            .endpoints
            .iter()
            .map(|(pattern, factory)| (pattern.clone(), factory.new_service(())))
            .collect();
        let files = self.files.new_service(());
        Box::pin(async move {
            let mut built = Vec::with_capacity(endpoints.len());
            for (pattern, service) in endpoints {
                built.push((pattern, service.await?));
            }
            Ok(DispatcherService {
                endpoints: built,
                files: files.await?,
            })
        })
    }
}

pub(crate) struct DispatcherService {
    endpoints: Vec<(Pattern, Boxed)>,
    files: RouteService,
}

impl Service<ServiceRequest> for DispatcherService {
    type Response = ServiceResponse;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse, Error>>;

    actix_web::dev::always_ready!();

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        for (pattern, endpoint) in &self.endpoints {
            if pattern.capture(&mut request) {
                return endpoint.call(request);
            }
        }
        if is_admin_path(request.match_info().unprocessed())
            && request.app_data::<AdminPathsReserved>().is_some()
        {
            let response = request.error_response(WebError::NotFound);
            return Box::pin(std::future::ready(Ok(response)));
        }
        self.files.call(request)
    }
}

/// In an app's or scope's data: the serving surface there answers the admin surface's
/// paths 404 ([`reserve_admin_paths`](super::reserve_admin_paths)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdminPathsReserved;

/// The admin surface's top-level paths: each of them and everything below it.
const ADMIN_TREES: [&str; 4] = ["/admin", "/debug", "/monitoring", "/dashboard"];

/// Whether `path` (below the mount point) is one of the admin surface's: `/metrics`, or
/// one of [`ADMIN_TREES`] or below it (`/admin`, `/admin/`, `/admin/config`, not
/// `/administrator`).
fn is_admin_path(path: &str) -> bool {
    path == "/metrics"
        || ADMIN_TREES.iter().any(|tree| {
            path.strip_prefix(tree)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_admin_paths_are_the_trees_and_metrics() {
        for path in [
            "/admin",
            "/admin/",
            "/admin/config",
            "/admin/pools/backend/resize",
            "/debug",
            "/debug/pprof/heap",
            "/monitoring",
            "/monitoring/history",
            "/dashboard",
            "/dashboard/dashboard.js",
            "/metrics",
        ] {
            assert!(is_admin_path(path), "{path}");
        }
        for path in [
            "",
            "/",
            "/administrator",
            "/admin.html",
            "/debugger/x",
            "/dashboards",
            "/metrics/",
            "/metrics.txt",
            "/site/admin",
            "admin",
            "/health",
        ] {
            assert!(!is_admin_path(path), "{path}");
        }
    }
}
