//! The `leanserve` binary: parses the command line, resolves the configuration and calls
//! the library (`serve`, `config`) or a running server's admin routes (`status`,
//! `profile`, `optimize`, `tune`, in `client.rs`). Exit codes: 0 success or clean stop,
//! 1 runtime failure (a port in use, an unreachable server, a refused token, a request
//! the server refused, such as `tune` while the tuner is off), 2 bad configuration or
//! usage, 3 the supervision tree gave up.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer};
use anyhow::Context as _;
use leanserve::Runtime;
use leanserve::{AdminBind, Config, LoadOptions};

mod client;
mod unix_http;
mod unix_socket;

#[cfg(feature = "jemalloc")]
leanserve::use_jemalloc!();

const USAGE: &str = "\
leanserve: a memory-lean, self-healing web runtime

USAGE:
    leanserve [serve] [OPTIONS]     run the server (default)
    leanserve config [OPTIONS]      print the resolved configuration and each value's source
    leanserve status [OPTIONS]      a running server's memory figures and configuration
    leanserve profile [OPTIONS]     capture a heap profile of a running server, or
                                    compare two of its memory snapshots
    leanserve optimize [OPTIONS]    re-run a running server's template optimizers and
                                    print what they saved
    leanserve tune [OPTIONS]        a running server's tuner recommendations: memory
                                    limit, RSS and each knob; with --apply, apply the
                                    live knobs now and print what changed

OPTIONS:
    --env PROFILE         dev, test or prod (default: $LEANSERVE_ENV, else dev)
    --config DIR          folder holding default.toml and <profile>.toml (default: config)
    --bind ADDR:PORT      server.bind
    --workers N           server.workers
    --root DIR            static_files.root_dir
    --set KEY=VALUE       any key, e.g. --set supervisor.max_restarts=5 (repeatable)
    -h, --help            this text
    -V, --version         the version

STATUS, PROFILE, OPTIMIZE AND TUNE OPTIONS:
    --url URL             the server (default: http:// + server.bind, 0.0.0.0 as 127.0.0.1);
                          the admin token comes from $LEANSERVE_ADMIN_TOKEN
    --label L             profile: label the capture (and its snapshot)
    --out FILE            profile: download the profile into FILE instead of the
                          server's profiles_dir
    --compare A B         profile: compare snapshots A and B (index, label or latest)
    --apply               tune: apply the live knobs now (the others need a restart)

Flags beat environment variables, which beat config/<profile>.toml, then
config/default.toml, then compiled defaults. docs/configuration.md lists every key.
";

/// Exit code for configuration and usage errors.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the supervision tree gave up.
const EXIT_ESCALATED: u8 = 3;

enum Command {
    Serve,
    PrintConfig,
    Status,
    Profile,
    Optimize,
    Tune,
    Help,
    Version,
}

/// Options of the client subcommands.
/// At most two glibc malloc arenas. Rust code allocates through jemalloc, but the C
/// codecs (zstd, libdeflate) allocate through glibc's malloc, which gives every thread
/// that calls it an arena of its own (up to eight per core) and keeps what it frees there:
/// blocking threads compressing responses left 30-40 MB resident in a dozen arenas after
/// a walk of every page of the Rust docs with dictionaries (`bench/dictionary.sh`; 82 MB
/// RSS instead of 106 with two). The codecs allocate when a pooled context is made, so
/// two arenas are not contended. `MALLOC_ARENA_MAX` in the environment overrides it.
fn bound_c_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a glibc malloc parameter; it is called before any
        // thread starts, and M_ARENA_MAX with a positive value is a documented use.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[derive(Default)]
struct ClientArgs {
    url: Option<String>,
    label: Option<String>,
    out: Option<std::path::PathBuf>,
    compare: Option<(String, String)>,
    apply: bool,
}

fn main() -> ExitCode {
    bound_c_malloc_arenas();
    let (command, options, client_args) = match parse_args() {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("leanserve: {error}\n\n{USAGE}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("leanserve {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Serve
        | Command::PrintConfig
        | Command::Status
        | Command::Profile
        | Command::Optimize
        | Command::Tune => {}
    }
    let quiet = matches!(
        command,
        Command::Status | Command::Profile | Command::Optimize | Command::Tune
    );
    let mut options = options;
    options.skip_root_check = quiet;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(if quiet {
        "warn"
    } else {
        "info"
    }))
    .init();
    let config = match Config::load(&options) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("leanserve: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let outcome = match command {
        Command::PrintConfig => {
            print_config(&config);
            Ok(ExitCode::SUCCESS)
        }
        Command::Optimize => {
            client::optimize(&config.opts, client_args.url).map(|()| ExitCode::SUCCESS)
        }
        Command::Status => {
            client::status(&config.opts, client_args.url).map(|()| ExitCode::SUCCESS)
        }
        Command::Tune => client::tune(&config.opts, client_args.url, client_args.apply)
            .map(|()| ExitCode::SUCCESS),
        Command::Profile => {
            let ClientArgs {
                url,
                label,
                out,
                compare,
                apply: _,
            } = client_args;
            let action = match (compare, out) {
                (Some((a, b)), _) => client::ProfileAction::Compare { a, b },
                (None, Some(out)) => client::ProfileAction::Download { label, out },
                (None, None) => client::ProfileAction::Capture { label },
            };
            client::profile(&config.opts, url, action).map(|()| ExitCode::SUCCESS)
        }
        _ => serve(config),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("leanserve: {error:#}");
        ExitCode::FAILURE
    })
}

fn parse_args() -> Result<(Command, LoadOptions, ClientArgs), lexopt::Error> {
    use lexopt::prelude::*;
    let mut options = LoadOptions::from_process_env();
    let mut command = None;
    let mut client = ClientArgs::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok((Command::Help, options, client)),
            Short('V') | Long("version") => return Ok((Command::Version, options, client)),
            Long("url") => client.url = Some(parser.value()?.string()?),
            Long("label") => client.label = Some(parser.value()?.string()?),
            Long("out") => client.out = Some(parser.value()?.into()),
            Long("apply") => client.apply = true,
            Long("compare") => {
                let a = parser.value()?.string()?;
                let b = parser
                    .value()
                    .map_err(|_| "--compare expects two snapshots: --compare A B")?
                    .string()?;
                client.compare = Some((a, b));
            }
            Long("env") => options.profile = Some(parser.value()?.string()?),
            Long("config") => options.config_dir = Some(parser.value()?.into()),
            Long("bind") => set(
                &mut options,
                "server.bind",
                parser.value()?.string()?,
                "--bind",
            ),
            Long("workers") => set(
                &mut options,
                "server.workers",
                parser.value()?.string()?,
                "--workers",
            ),
            Long("root") => set(
                &mut options,
                "static_files.root_dir",
                parser.value()?.string()?,
                "--root",
            ),
            Long("set") => {
                let pair = parser.value()?.string()?;
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(format!("--set expects KEY=VALUE, got {pair:?}").into());
                };
                set(
                    &mut options,
                    key.trim(),
                    value.to_owned(),
                    &format!("--set {pair}"),
                );
            }
            Value(word) if command.is_none() => {
                command = Some(match word.string()?.as_str() {
                    "serve" => Command::Serve,
                    "config" => Command::PrintConfig,
                    "status" => Command::Status,
                    "profile" => Command::Profile,
                    "optimize" => Command::Optimize,
                    "tune" => Command::Tune,
                    other => return Err(format!("unknown command {other:?}").into()),
                });
            }
            _ => return Err(arg.unexpected()),
        }
    }
    let command = command.unwrap_or(Command::Serve);
    let is_client = matches!(
        command,
        Command::Status | Command::Profile | Command::Optimize | Command::Tune
    );
    if client.url.is_some() && !is_client {
        return Err("--url belongs to the status, profile, optimize and tune commands".into());
    }
    if client.apply && !matches!(command, Command::Tune) {
        return Err("--apply belongs to the tune command".into());
    }
    let profile_only = client.label.is_some() || client.out.is_some() || client.compare.is_some();
    if profile_only && !matches!(command, Command::Profile) {
        return Err("--label, --out and --compare belong to the profile command".into());
    }
    if client.compare.is_some() && (client.label.is_some() || client.out.is_some()) {
        return Err("--compare does not take --label or --out".into());
    }
    Ok((command, options, client))
}

/// Records a command-line override of `key`.
fn set(options: &mut LoadOptions, key: &str, value: String, flag: &str) {
    options.flags.push((key.to_owned(), value, flag.to_owned()));
}

fn print_config(config: &Config) {
    let rows = config.describe();
    let width = |pick: fn(&(String, String, String)) -> &String| {
        rows.iter().map(|row| pick(row).len()).max().unwrap_or(0)
    };
    let (key_width, value_width) = (width(|row| &row.0), width(|row| &row.1));
    println!("{:key_width$}  {:value_width$}  SOURCE", "KEY", "VALUE");
    for (key, value, source) in &rows {
        println!("{key:key_width$}  {value:value_width$}  {source}");
    }
}

/// An `HttpServer` with the client timeouts, keep-alive and connection limit of
/// `server.*` (`ServerOpts`), and `TCP_NODELAY` on its connections: a response written in
/// more than one `write` (a streamed file, a large cached body handed over in slices)
/// otherwise has its last partial segment held back by Nagle's algorithm until the
/// client's delayed ACK, 40 ms on Linux, on every keep-alive connection.
macro_rules! limited {
    ($server:expr, $opts:expr) => {{
        let opts = &$opts;
        let keep_alive = if opts.keep_alive.is_zero() {
            actix_web::http::KeepAlive::Disabled
        } else {
            actix_web::http::KeepAlive::Timeout(opts.keep_alive)
        };
        $server
            .client_request_timeout(opts.client_request_timeout)
            .client_disconnect_timeout(opts.client_disconnect_timeout)
            .keep_alive(keep_alive)
            .max_connections(opts.max_connections)
            .tcp_nodelay(true)
            .h2_initial_window_size(opts.h2_stream_window)
            .h2_initial_connection_window_size(opts.h2_connection_window)
    }};
}

/// The TLS certificates and configurations of the serving and admin listeners, read
/// before anything starts; a file that cannot be used stops start-up naming its key
/// (exit 2).
struct Tls {
    server: Option<Arc<rustls::ServerConfig>>,
    admin: Option<Arc<rustls::ServerConfig>>,
    certificates: Vec<Arc<leanserve::Certificates>>,
}

fn tls_configs(opts: &leanserve::Opts) -> Result<Tls, leanserve::TlsError> {
    let mut certificates = Vec::new();
    let mut load = |files: Option<&leanserve::TlsFiles>, keys| {
        files
            .map(|files| {
                let loaded = leanserve::Certificates::load(files, keys)?;
                certificates.push(Arc::clone(&loaded));
                loaded.server_config()
            })
            .transpose()
    };
    let server = load(
        opts.server.tls.as_ref(),
        ("server.tls_cert", "server.tls_key"),
    )?;
    let admin = load(opts.admin.tls.as_ref(), ("admin.tls_cert", "admin.tls_key"))?;
    Ok(Tls {
        server,
        admin,
        certificates,
    })
}

/// Reads the listeners' certificate files again every `interval` (never when zero) and
/// on SIGHUP: new handshakes take renewed files, open connections keep theirs, and files
/// that cannot be used (a renewal half written, a key of another certificate) leave the
/// old pair in use, logged as an error.
fn watch_certificates(
    certificates: Vec<Arc<leanserve::Certificates>>,
    interval: std::time::Duration,
) {
    if certificates.is_empty() {
        return;
    }
    let reload = move |certificates: &[Arc<leanserve::Certificates>]| {
        for certificates in certificates {
            match certificates.reload_if_changed() {
                Ok(true) => log::info!(
                    "{}: new handshakes use the renewed certificate",
                    certificates.keys().0
                ),
                Ok(false) => {}
                Err(error) => {
                    log::error!("{error}; the certificate in use stays until the files are fixed")
                }
            }
        }
    };
    let (periodic, on_signal) = (certificates.clone(), certificates);
    if !interval.is_zero() {
        actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                reload(&periodic);
            }
        });
    }
    #[cfg(unix)]
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            log::warn!("cannot listen for SIGHUP; certificates reload every interval only");
            return;
        };
        while hangups.recv().await.is_some() {
            log::info!("SIGHUP: reading the certificate files again");
            reload(&on_signal);
        }
    });
}

fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let opts = config.opts;
    let Tls {
        server: server_tls,
        admin: admin_tls,
        certificates,
    } = match tls_configs(&opts) {
        Ok(configs) => configs,
        Err(error) => {
            eprintln!("leanserve: {error}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    // Binding the admin surface's Unix socket checks, removes and renames files: done
    // before the actors and the site run on the System thread it would otherwise stall.
    let admin_socket =
        match &opts.admin.bind {
            AdminBind::Unix(path) => Some(unix_socket::Socket::bind(path).with_context(|| {
                format!("cannot listen on unix:{} (admin.bind)", path.display())
            })?),
            _ => None,
        };
    actix_web::rt::System::new().block_on(async move {
        let runtime = certificates
            .iter()
            .fold(Runtime::new(opts.clone()), |runtime, certificates| {
                runtime.certificates(Arc::clone(certificates))
            });
        let subsystems = runtime.start().await.context("cannot start the runtime")?;
        watch_certificates(certificates, opts.server.tls_reload_interval);
        let shared = opts.admin.bind == AdminBind::Serving;
        let app_subsystems = subsystems.clone();
        let max_head = opts.server.max_header_bytes;
        let hsts = hsts_header(&opts);
        let server = limited!(
            HttpServer::new(move || {
                let app = App::new()
                    .wrap(from_fn(move |request, next| {
                        leanserve::limit_head(max_head, request, next)
                    }))
                    .wrap(actix_web::middleware::Condition::new(
                        hsts.is_some(),
                        actix_web::middleware::DefaultHeaders::new().add((
                            actix_web::http::header::STRICT_TRANSPORT_SECURITY,
                            hsts.clone().unwrap_or_default(),
                        )),
                    ));
                if shared {
                    app.configure(leanserve::configure(&app_subsystems))
                } else {
                    // The admin surface is elsewhere: its paths answer 404 here.
                    app.configure(leanserve::configure_public(&app_subsystems))
                        .configure(leanserve::reserve_admin_paths)
                }
            }),
            opts.server
        )
        .workers(opts.server.workers)
        .shutdown_timeout(opts.server.shutdown_timeout.as_secs())
        .on_connect(subsystems.count_connections(opts.server.h2c));
        let scheme = if server_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let server = match server_tls {
            Some(tls) => server.bind_rustls_0_23(opts.server.bind, Arc::unwrap_or_clone(tls)),
            None if opts.server.h2c => server.bind_auto_h2c(opts.server.bind),
            None => server.bind(opts.server.bind),
        }
        .with_context(|| format!("cannot listen on {}", opts.server.bind))?;
        let addrs = server.addrs();
        // `run` installs the SIGINT/SIGTERM handlers, so a signal sent once a line below
        // is read reaches both servers.
        let server = server.run();
        // Printed on stdout so scripts and tests can find ports chosen by the OS: the
        // serving listener first, then the admin one.
        for addr in &addrs {
            println!("leanserve listening on {scheme}://{addr}");
        }
        let admin = admin_server(&opts, &subsystems, admin_socket, admin_tls)?;
        // The redirect to HTTPS, stopped with the serving listener.
        let redirect = match opts.server.redirect_bind {
            Some(bind) => {
                let https_port = addrs.first().map_or(443, std::net::SocketAddr::port);
                let redirect = limited!(
                    HttpServer::new(move || {
                        App::new().default_service(actix_web::web::to(
                            move |request: actix_web::HttpRequest| {
                                redirect_to_https(request, https_port)
                            },
                        ))
                    }),
                    opts.server
                )
                .workers(1)
                .shutdown_timeout(opts.server.shutdown_timeout.as_secs())
                .bind(bind)
                .with_context(|| format!("cannot listen on {bind} (server.redirect_bind)"))?;
                for addr in redirect.addrs() {
                    println!("leanserve redirecting to https on http://{addr}");
                }
                let redirect = redirect.run();
                let handle = redirect.handle();
                actix_web::rt::spawn(redirect);
                Some(handle)
            }
            None => None,
        };
        let escalated = Arc::new(AtomicBool::new(false));
        {
            let handles: Vec<_> = std::iter::once(server.handle())
                .chain(admin.as_ref().map(|(server, _)| server.handle()))
                .collect();
            let (subsystems, escalated) = (subsystems.clone(), escalated.clone());
            actix_web::rt::spawn(async move {
                subsystems.escalated().await;
                escalated.store(true, Ordering::SeqCst);
                log::error!(
                    "the supervision tree gave up; draining in-flight requests and exiting"
                );
                for handle in handles {
                    handle.stop(true).await;
                }
            });
        }
        // actix-web drains in-flight requests on SIGINT/SIGTERM within shutdown_timeout;
        // both servers hear the signal, and either one stopping stops the other, so the
        // process never lingers with one listener.
        let (served, admin_served) = match admin {
            Some((admin, socket)) => {
                let (server_handle, admin_handle) = (server.handle(), admin.handle());
                let (served, admin_served) = tokio::join!(
                    async {
                        let served = server.await;
                        admin_handle.stop(true).await;
                        served
                    },
                    async {
                        let served = admin.await;
                        server_handle.stop(true).await;
                        served
                    }
                );
                drop(socket);
                (served, admin_served)
            }
            None => (server.await, Ok(())),
        };
        if let Some(redirect) = redirect {
            redirect.stop(true).await;
        }
        served.context("HTTP server failed")?;
        admin_served.context("admin HTTP server failed")?;
        if escalated.load(Ordering::SeqCst) {
            return Ok(ExitCode::from(EXIT_ESCALATED));
        }
        log::info!("HTTP server stopped; stopping subsystems");
        subsystems.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The `Strict-Transport-Security` value of the serving listener: with TLS and a
/// non-zero `server.hsts_max_age_s` only (over cleartext the header means nothing).
fn hsts_header(opts: &leanserve::Opts) -> Option<String> {
    let server = &opts.server;
    (server.tls.is_some() && !server.hsts_max_age.is_zero())
        .then(|| format!("max-age={}", server.hsts_max_age.as_secs()))
}

/// A 308 to the request's path and query over HTTPS: on the host the client asked for
/// (its name, without the cleartext port), at the HTTPS listener's port.
async fn redirect_to_https(
    request: actix_web::HttpRequest,
    https_port: u16,
) -> actix_web::HttpResponse {
    let info = request.connection_info();
    let host = info.host();
    // "[::1]:80" or "example.org:80" -> the name alone.
    let name = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", actix_web::http::uri::PathAndQuery::as_str);
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("https://{name}{port}{target}"),
        ))
        .finish()
}

/// The admin surface's own server on `admin.bind` (none when it shares the serving
/// listener), and the Unix socket it listens on (`socket`, bound already when
/// `admin.bind` names one), removed when dropped.
fn admin_server(
    opts: &leanserve::Opts,
    subsystems: &leanserve::Subsystems,
    socket: Option<unix_socket::Socket>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<Option<(actix_web::dev::Server, Option<unix_socket::Socket>)>> {
    let app_subsystems = subsystems.clone();
    let max_head = opts.server.max_header_bytes;
    let server = limited!(
        HttpServer::new(move || {
            App::new()
                .wrap(from_fn(move |request, next| {
                    leanserve::limit_head(max_head, request, next)
                }))
                .configure(leanserve::configure_admin(&app_subsystems))
        }),
        opts.server
    )
    .workers(1)
    .shutdown_timeout(opts.server.shutdown_timeout.as_secs());
    match &opts.admin.bind {
        AdminBind::Serving => Ok(None),
        AdminBind::Tcp(addr) => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let server = match tls {
                Some(tls) => server.bind_rustls_0_23(addr, Arc::unwrap_or_clone(tls)),
                None => server.bind(addr),
            }
            .with_context(|| format!("cannot listen on {addr} (admin.bind)"))?;
            let addrs = server.addrs();
            let server = server.run();
            for addr in addrs {
                println!("leanserve admin listening on {scheme}://{addr}");
            }
            Ok(Some((server, None)))
        }
        AdminBind::Unix(path) => {
            let socket = socket.context("the admin socket is bound before the runtime starts")?;
            let server = server
                .on_connect(leanserve::mark_unix_peers)
                .listen_uds(socket.listener()?)
                .with_context(|| {
                    format!("cannot listen on unix:{} (admin.bind)", path.display())
                })?;
            let server = server.run();
            println!("leanserve admin listening on unix:{}", path.display());
            Ok(Some((server, Some(socket))))
        }
    }
}
