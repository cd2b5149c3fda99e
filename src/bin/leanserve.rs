//! The `leanserve` binary: parses the command line, resolves the configuration and calls
//! the library. Exit codes: 0 clean stop, 1 runtime failure (such as a port in use),
//! 2 bad configuration or usage, 3 the supervision tree gave up.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{App, HttpServer};
use anyhow::Context as _;
use leanserve::config::{Config, LoadOptions};
use leanserve::runtime::Runtime;

const USAGE: &str = "\
leanserve: a memory-lean, self-healing web runtime

USAGE:
    leanserve [serve] [OPTIONS]     run the server (default)
    leanserve config [OPTIONS]      print the resolved configuration and each value's source

OPTIONS:
    --env PROFILE         dev, test or prod (default: $LEANSERVE_ENV, else dev)
    --config DIR          folder holding default.toml and <profile>.toml (default: config)
    --bind ADDR:PORT      server.bind
    --workers N           server.workers
    --root DIR            static_files.root_dir
    --set KEY=VALUE       any key, e.g. --set supervisor.max_restarts=5 (repeatable)
    -h, --help            this text
    -V, --version         the version

Flags beat environment variables, which beat config/<profile>.toml, then
config/default.toml, then compiled defaults. The README lists every key.
";

/// Exit code for configuration and usage errors.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the supervision tree gave up.
const EXIT_ESCALATED: u8 = 3;

enum Command {
    Serve,
    PrintConfig,
    Help,
    Version,
}

fn main() -> ExitCode {
    let (command, options) = match parse_args() {
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
        Command::Serve | Command::PrintConfig => {}
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
        _ => serve(config),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("leanserve: {error:#}");
        ExitCode::FAILURE
    })
}

fn parse_args() -> Result<(Command, LoadOptions), lexopt::Error> {
    use lexopt::prelude::*;
    let mut options = LoadOptions::from_process_env();
    let mut command = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok((Command::Help, options)),
            Short('V') | Long("version") => return Ok((Command::Version, options)),
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
                    other => return Err(format!("unknown command {other:?}").into()),
                });
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((command.unwrap_or(Command::Serve), options))
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

fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let opts = config.opts;
    actix_web::rt::System::new().block_on(async move {
        let subsystems = Runtime::start(opts.clone())
            .await
            .context("cannot start the runtime")?;
        let app_subsystems = subsystems.clone();
        let server = HttpServer::new(move || {
            App::new().configure(leanserve::web::configure(&app_subsystems))
        })
        .workers(opts.server.workers)
        .shutdown_timeout(opts.server.shutdown_timeout.as_secs())
        .bind(opts.server.bind)
        .with_context(|| format!("cannot listen on {}", opts.server.bind))?;
        for addr in server.addrs() {
            // Printed on stdout so scripts and tests can find a port chosen by the OS.
            println!("leanserve listening on http://{addr}");
        }
        let server = server.run();
        let escalated = Arc::new(AtomicBool::new(false));
        {
            let (handle, subsystems, escalated) =
                (server.handle(), subsystems.clone(), escalated.clone());
            actix_web::rt::spawn(async move {
                subsystems.escalated().await;
                escalated.store(true, Ordering::SeqCst);
                log::error!(
                    "the supervision tree gave up; draining in-flight requests and exiting"
                );
                handle.stop(true).await;
            });
        }
        // actix-web drains in-flight requests on SIGINT/SIGTERM within shutdown_timeout.
        server.await.context("HTTP server failed")?;
        if escalated.load(Ordering::SeqCst) {
            return Ok(ExitCode::from(EXIT_ESCALATED));
        }
        log::info!("HTTP server stopped; stopping subsystems");
        subsystems.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
