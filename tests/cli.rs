//! The `leanserve` binary: exit code 2 with one message naming the key for every kind of
//! bad value, `leanserve config` with sources and a redacted token, and a clean stop on
//! SIGTERM.

mod util;

use std::process::{Command, Output};

use util::{BIN, leanserve};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    leanserve(args, env).output().expect("binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `leanserve config` against a config folder holding one file.
fn config_from_file(name: &str, text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let site = util::site();
    Command::new(BIN)
        .env_clear()
        .args(["config", "--config", dir.path().to_str().unwrap()])
        .args(["--root", site.path().to_str().unwrap()])
        .output()
        .unwrap()
}

fn assert_config_error(output: &Output, expected: &[&str]) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    for part in expected {
        assert!(message.contains(part), "missing {part:?} in: {message}");
    }
    assert_eq!(message.trim().lines().count(), 1, "one message: {message}");
}

#[test]
fn cli_unparsable_number_exits_2_naming_key_and_env_var() {
    let site = util::site();
    let root = site.path().to_str().unwrap();
    let output = run(
        &["config"],
        &[
            ("STATIC_FILE_ROOT_DIR", root),
            ("STATIC_FILE_MAX_CACHE_SIZE", "lots"),
        ],
    );
    assert_config_error(
        &output,
        &[
            "`static_files.max_cache_size`",
            "env STATIC_FILE_MAX_CACHE_SIZE",
            "\"lots\"",
            "whole number of bytes",
        ],
    );
}

#[test]
fn cli_out_of_range_flag_exits_2_naming_key_and_flag() {
    let site = util::site();
    let output = run(
        &["--root", site.path().to_str().unwrap(), "--workers", "0"],
        &[],
    );
    assert_config_error(
        &output,
        &["`server.workers`", "flag --workers", "from 1 to 1024"],
    );
}

#[test]
fn cli_bad_encodings_exit_2_naming_the_key() {
    let site = util::site();
    let root = site.path().to_str().unwrap();
    for (value, shown) in [("br,deflate", "br,deflate"), ("gzip,gzip", "gzip,gzip")] {
        let output = run(
            &[
                "--root",
                root,
                "--set",
                &format!("static_files.encodings={value}"),
            ],
            &[],
        );
        assert_config_error(
            &output,
            &[
                "`static_files.encodings`",
                shown,
                "any of br, zstd, gzip, each at most once",
            ],
        );
    }
    let output = config_from_file("default.toml", "[static_files]\nbr_level = 12\n");
    assert_config_error(&output, &["`static_files.br_level`", "from 0 to 11"]);
}

#[test]
fn cli_unknown_profile_exits_2() {
    let output = run(&["--env", "staging"], &[]);
    assert_config_error(
        &output,
        &["`env`", "flag --env", "\"staging\"", "dev, test or prod"],
    );
    let output = run(&[], &[("LEANSERVE_ENV", "qa")]);
    assert_config_error(&output, &["`env`", "env LEANSERVE_ENV", "\"qa\""]);
}

#[test]
fn cli_missing_root_dir_exits_2() {
    let output = run(&["--root", "/definitely/not/here"], &[]);
    assert_config_error(
        &output,
        &[
            "`static_files.root_dir`",
            "flag --root",
            "existing directory",
        ],
    );
}

#[test]
fn cli_bad_value_in_a_file_exits_2_naming_the_file() {
    let output = config_from_file("default.toml", "[supervisor]\nmax_restarts = -4\n");
    assert_config_error(
        &output,
        &["`supervisor.max_restarts`", "default.toml", "-4"],
    );
}

#[test]
fn cli_unknown_option_and_malformed_set_exit_2() {
    assert_eq!(run(&["--frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(
        run(&["--set", "server.workers"], &[]).status.code(),
        Some(2)
    );
    let output = run(&["--set", "server.nope=1"], &[]);
    assert_config_error(&output, &["unknown configuration key `server.nope`"]);
}

#[test]
fn cli_config_prints_sources_and_redacts_the_token() {
    let site = util::site();
    let root = site.path().to_str().unwrap();
    let output = run(
        &[
            "config",
            "--env",
            "test",
            "--set",
            "supervisor.max_restarts=9",
        ],
        &[
            ("STATIC_FILE_ROOT_DIR", root),
            ("LEANSERVE_ADMIN_TOKEN", "hunter2-hunter2"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("hunter2"), "{stdout}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_owned()
    };
    assert!(
        line("admin.token").contains("<redacted>")
            && line("admin.token").contains("env LEANSERVE_ADMIN_TOKEN")
    );
    assert!(line("env").contains("flag --env"));
    assert!(line("supervisor.max_restarts").contains("flag --set supervisor.max_restarts=9"));
    assert!(line("server.bind").contains("test.toml"));
    assert!(line("static_files.root_dir").contains("env STATIC_FILE_ROOT_DIR"));
    assert!(line("supervisor.period").contains("default.toml"));
}

#[test]
fn cli_unknown_keys_in_a_file_warn_but_start() {
    let output = config_from_file("dev.toml", "[server]\nbnid = \"x\"\n");
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("unknown key `server.bnid`"),
        "{}",
        stderr(&output)
    );
}

#[actix_rt::test]
async fn cli_server_answers_and_stops_cleanly_on_sigterm() {
    let (mut child, url, _admin, _site) = util::spawn_server(&[]);
    let (status, body) = util::get_json(&format!("{url}/health"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(util::get_json(&format!("{url}/ready"), None).await.0, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(util::exit_status(&mut child).code(), Some(0));
}

#[test]
fn cli_bad_alert_rule_exits_2_naming_the_field() {
    let output = config_from_file(
        "default.toml",
        "[[monitoring.alerts]]\nname = \"cache_nearly_full\"\ncomparison = \"about\"\n",
    );
    assert_config_error(
        &output,
        &[
            "`monitoring.alerts[0].comparison`",
            "default.toml",
            "one of >, >=, <, <=",
        ],
    );
}

/// A spawned server, killed when the test ends (pass or fail).
struct Running {
    child: std::process::Child,
    /// The admin listener.
    admin: String,
    _site: tempfile::TempDir,
}

impl Running {
    fn start(env: &[(&str, &str)]) -> Running {
        let (child, _url, admin, site) = util::spawn_server(env);
        Running {
            child,
            admin,
            _site: site,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line of a printed table that starts with `name` (after indentation).
fn line_starting(out: &str, name: &str) -> String {
    out.lines()
        .find(|line| line.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
        .to_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `scripts/optimize_memory.sh` running this build of the binary.
fn script(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/optimize_memory.sh"
    ))
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("LEANSERVE_BIN", BIN)
    .env("RUST_LOG", "warn")
    .args(args)
    .envs(env.iter().copied())
    .output()
    .expect("script runs")
}

#[test]
fn cli_status_prints_memory_and_configuration_tables() {
    let server = Running::start(&[]);
    let output = run(&["status", "--url", &server.admin], &[]);
    let out = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        out.starts_with(&format!("leanserve at {} (test profile)", server.admin)),
        "{out}"
    );
    let line = |name: &str| line_starting(&out, name);
    assert!(line("allocator").ends_with("jemalloc"), "{out}");
    assert!(
        line("heap profiling").contains("one sample per 512 KiB"),
        "{out}"
    );
    assert!(line("heap allocated").ends_with(" MB"), "{out}");
    assert!(line("held by file_cache").ends_with(" MB"), "{out}");
    assert!(line("server.bind").contains("127.0.0.1:0"), "{out}");
    assert!(line("profiler.heap_profiling").contains("true"), "{out}");

    let script_output = script(&["--action=status", "--url", &server.admin], &[]);
    assert!(script_output.status.success(), "{}", stderr(&script_output));
    assert!(stdout(&script_output).contains("heap allocated"));
}

#[test]
fn cli_status_says_why_it_cannot_ask() {
    let output = run(&["status", "--url", "http://127.0.0.1:1"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot reach leanserve at http://127.0.0.1:1"),
        "{}",
        stderr(&output)
    );
    // Port 0 in the test profile: the address cannot come from the configuration.
    let output = run(&["status", "--env", "test"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("pass --url"),
        "{}",
        stderr(&output)
    );

    let token = [("LEANSERVE_ADMIN_TOKEN", "cli-token")];
    let server = Running::start(&token);
    let refused = run(&["status", "--url", &server.admin], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("refused the admin token"),
        "{}",
        stderr(&refused)
    );
    let wrong = run(
        &["status", "--url", &server.admin],
        &[("LEANSERVE_ADMIN_TOKEN", "wrong")],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let admitted = run(&["status", "--url", &server.admin], &token);
    assert!(admitted.status.success(), "{}", stderr(&admitted));
    assert!(
        !stdout(&admitted).contains("cli-token"),
        "the token is redacted"
    );
    // The script passes the token on from the environment too.
    let script_refused = script(&["--action=status", "--url", &server.admin], &[]);
    assert_eq!(script_refused.status.code(), Some(1));
    let script_admitted = script(&["--action=status", "--url", &server.admin], &token);
    assert!(
        script_admitted.status.success(),
        "{}",
        stderr(&script_admitted)
    );
    assert!(stdout(&script_admitted).contains("heap allocated"));
}

#[test]
fn cli_profile_captures_downloads_and_compares() {
    let profiles = tempfile::tempdir().unwrap();
    let server = Running::start(&[(
        "LEANSERVE_PROFILER_PROFILES_DIR",
        profiles.path().to_str().unwrap(),
    )]);
    let output = run(&["profile", "--label", "cli", "--url", &server.admin], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let written: Vec<_> = std::fs::read_dir(profiles.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0].file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("-cli.pb.gz"), "{name}");
    assert!(stdout(&output).contains(written[0].to_str().unwrap()));

    let out = profiles.path().join("local.pb.gz");
    let output = run(
        &[
            "profile",
            "--out",
            out.to_str().unwrap(),
            "--label",
            "after",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "no --url, port 0");
    let output = run(
        &[
            "profile",
            "--out",
            out.to_str().unwrap(),
            "--label",
            "after",
            "--url",
            &server.admin,
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..2], [0x1f, 0x8b], "a gzipped profile");
    assert!(!util::gunzip(&bytes).is_empty());

    let output = run(
        &[
            "profile",
            "--compare",
            "cli",
            "after",
            "--url",
            &server.admin,
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.contains("snapshot A #2 cli"), "{table}");
    assert!(table.contains("snapshot B #3 after"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("heap_allocated") && l.contains('%')),
        "{table}"
    );
    let output = run(
        &[
            "profile",
            "--compare",
            "cli",
            "nope",
            "--url",
            &server.admin,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no snapshot \"nope\""),
        "{}",
        stderr(&output)
    );

    let output = script(
        &[
            "--action=profile",
            "--compare",
            "1",
            "latest",
            "--url",
            &server.admin,
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("heap_allocated"));
}

#[test]
fn cli_profile_with_heap_profiling_off_says_so() {
    let server = Running::start(&[("LEANSERVE_PROFILER_HEAP_PROFILING", "false")]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("heap.pb.gz");
    let output = run(
        &[
            "profile",
            "--out",
            out.to_str().unwrap(),
            "--url",
            &server.admin,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("409") && message.contains("heap profiling is off"),
        "{message}"
    );
    assert!(!out.exists());
    let status = run(&["status", "--url", &server.admin], &[]);
    let heap_line = line_starting(&stdout(&status), "heap profiling");
    assert!(heap_line.ends_with("off"), "{heap_line}");
}

#[test]
fn cli_client_options_are_checked() {
    for args in [
        &["--label", "x"][..],
        &["status", "--out", "f"],
        &["config", "--url", "http://127.0.0.1:1"],
        &["profile", "--compare", "a"],
        &["profile", "--compare", "a", "b", "--label", "c"],
        &["--apply"],
        &["status", "--apply"],
        &["profile", "--apply"],
    ] {
        let output = run(args, &[]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn cli_optimize_memory_script_lists_actions_and_refuses_unknown_ones() {
    let help = script(&["--help"], &[]);
    assert!(help.status.success());
    for action in ["status", "profile", "optimize", "tune", "benchmark"] {
        assert!(stdout(&help).contains(&format!("  {action}")), "{action}");
    }
    assert!(
        !stdout(&help).contains("not available"),
        "every action runs"
    );
    assert_eq!(script(&["--action=frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(script(&[], &[]).status.code(), Some(2));
}

#[test]
fn cli_optimize_memory_script_finds_the_built_binary_for_a_newcomer() {
    // As a newcomer runs it: no LEANSERVE_BIN and no leanserve on PATH (cargo is); the
    // script finds the binary cargo built under the target folder.
    let server = Running::start(&[]);
    let cargo_dir = std::path::Path::new(env!("CARGO"))
        .parent()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let output = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/optimize_memory.sh"
    ))
    .env_clear()
    .env("PATH", format!("{cargo_dir}:/usr/bin:/bin"))
    .envs(std::env::var("CARGO_TARGET_DIR").map(|dir| ("CARGO_TARGET_DIR", dir)))
    .env("RUST_LOG", "warn")
    .args(["--action=tune", "--url", &server.admin])
    .output()
    .expect("script runs");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("cache_budget_bytes"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn cli_optimize_reports_what_the_template_optimizers_saved() {
    let server = Running::start(&[]);
    let output = run(&["optimize", "--url", &server.admin], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let line = |name: &str| line_starting(&out, name);
    assert!(
        line("templates optimized").contains("served flattened"),
        "{out}"
    );
    // The server runs on jemalloc: both heap figures are measured.
    assert!(line("heap, optimizers off").ends_with(" MB"), "{out}");
    assert!(line("heap, optimized").ends_with(" MB"), "{out}");
    assert!(line("memory reduced").ends_with(" MB"), "{out}");
    let scripted = script(&["--action=optimize", "--url", &server.admin], &[]);
    assert!(scripted.status.success(), "{}", stderr(&scripted));
    assert!(stdout(&scripted).contains("templates optimized"));
}

#[test]
fn cli_optimize_memory_script_runs_the_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let output = script(
        &[
            "--action=benchmark",
            "--templates=6",
            "--size=1000",
            "--variables=2",
            "--concurrent=1",
            "--iterations=1",
            "--pooling=false",
            "--tuner=false",
            &format!("--output={}", report.display()),
        ],
        &[(
            "LEANSERVE_BENCHMARK_BIN",
            env!("CARGO_BIN_EXE_memory-benchmark"),
        )],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("| all together |"), "{text}");
    assert!(
        !text.contains("not measured"),
        "pooling and tuner were not asked for"
    );
}

#[test]
fn cli_tune_prints_the_limit_rss_and_a_row_per_knob() {
    let server = Running::start(&[]);
    let output = run(&["tune", "--url", &server.admin], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.starts_with(&format!(
            "leanserve at {}: tuner in auto mode",
            server.admin
        )),
        "{out}"
    );
    let line = |name: &str| line_starting(&out, name);
    let limit = line("memory limit");
    assert!(limit.contains(" MB (") && limit.ends_with(')'), "{out}");
    assert!(line("resident (RSS)").ends_with(" MB"), "{out}");
    let header = line("KNOB ");
    assert!(
        header.contains("CURRENT") && header.contains("RECOMMENDED") && header.contains("REASON"),
        "{out}"
    );
    // Auto mode may already have moved the budget: its value is the machine's business.
    let cache = line("cache_budget_bytes");
    assert!(cache.contains(" MB") && cache.contains("live"), "{out}");
    let workers = line("server.workers");
    assert!(workers.contains("restart"), "{out}");
    assert!(workers.contains("one HTTP worker per CPU"), "{out}");

    let scripted = script(&["--action=tune", "--url", &server.admin], &[]);
    assert!(scripted.status.success(), "{}", stderr(&scripted));
    assert!(line_starting(&stdout(&scripted), "server.workers").contains("restart"));
}

#[test]
fn cli_tune_apply_moves_the_cache_budget_and_prints_the_change() {
    // Recommend mode: only --apply changes anything. A ceiling of 8 MB under the 100 MB
    // budget makes the recommendation 8 MB whatever the machine's memory.
    let server = Running::start(&[
        ("LEANSERVE_TUNER_MODE", "recommend"),
        ("LEANSERVE_TUNER_CACHE_CEILING_MB", "8"),
    ]);
    let before = stdout(&run(&["tune", "--url", &server.admin], &[]));
    assert!(before.contains("tuner in recommend mode"), "{before}");
    let cache = line_starting(&before, "cache_budget_bytes");
    assert!(
        cache.contains("100.00 MB") && cache.contains("8.00 MB"),
        "{before}"
    );

    let output = run(&["tune", "--apply", "--url", &server.admin], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let applied = stdout(&output);
    assert!(applied.contains("tuner applied\n\nCHANGED"), "{applied}");
    let change = line_starting(&applied, "cache_budget_bytes");
    let cells: Vec<&str> = change
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells[..3],
        ["cache_budget_bytes", "100.00 MB", "8.00 MB"],
        "{applied}"
    );

    let after = stdout(&run(&["tune", "--url", &server.admin], &[]));
    let cache = line_starting(&after, "cache_budget_bytes");
    assert!(
        cache.contains("8.00 MB") && !cache.contains("100.00 MB"),
        "{after}"
    );
    let again = script(&["--action=tune", "--apply", "--url", &server.admin], &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing changed"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn cli_tune_with_the_tuner_off_exits_1_with_the_reason() {
    let server = Running::start(&[("CONFIG_TUNER_ENABLED", "false")]);
    for args in [
        &["tune", "--url", &server.admin][..],
        &["tune", "--apply", "--url", &server.admin],
    ] {
        let output = run(args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("409") && message.contains("tuner.enabled = false"),
            "{message}"
        );
        assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    }
    let scripted = script(&["--action=tune", "--url", &server.admin], &[]);
    assert_eq!(scripted.status.code(), Some(1));
    assert!(stderr(&scripted).contains("tuner.enabled"));
}
