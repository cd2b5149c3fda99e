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
    let (mut child, url, _site) = util::spawn_server(&[]);
    let (status, body) = util::get_json(&format!("{url}/health"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(util::get_json(&format!("{url}/ready"), None).await.0, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
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
