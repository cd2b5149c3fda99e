//! The `memory-benchmark` binary run end to end on tiny flags, the way its users run it:
//! the report it writes has a row per configuration, says every configuration rendered
//! like the baseline, and names the subsystems it could not measure.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_memory-benchmark");

#[test]
fn memory_benchmark_writes_a_report_of_every_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let output = Command::new(BIN)
        .args([
            "--templates=12",
            "--size=2000",
            "--variables=4",
            "--concurrent=2",
            "--iterations=1",
            "--inheritance-chain=4",
            "--max-inheritance-depth=2",
        ])
        .arg(format!("--output={}", report.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert_eq!(
        text,
        String::from_utf8_lossy(&output.stdout),
        "the same report on stdout"
    );
    for row in [
        "| baseline (every optimizer off) | ",
        "| inheritance optimizer alone (collapse to max depth) | ",
        "| inheritance optimizer alone (flatten every chain) | ",
        "| memory optimizer alone | ",
        "| memory optimizer alone, without compression | ",
        "| context optimizer alone (shared variables) | ",
        "| all together | ",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
    assert!(
        text.contains("Every configuration rendered all 12 pages byte-for-byte like the baseline.")
    );
    assert!(
        text.contains("--templates=12 --size=2000"),
        "the flags are quoted"
    );
    assert!(text.contains("CPUs"), "the machine is described");
    assert!(
        text.contains("## Resource pools"),
        "--pooling=true measures the pools"
    );
    assert!(
        text.contains("| cold burst of 256 misses | peak MB | retained MB | working memory MB |")
    );
    assert!(text.contains("## Tuner"), "--tuner=true measures the tuner");
    assert!(
        text.contains("- cache_budget_bytes "),
        "the tuner cut the cache budget: {text}"
    );
    // The memory optimizer with lazy loading holds less after the warm-up than the
    // baseline (retained column of its row).
    let retained = |label: &str| -> f64 {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap();
        row.split('|').nth(2).unwrap().trim().parse().unwrap()
    };
    assert!(
        retained("all together") < retained("baseline (every optimizer off)"),
        "{text}"
    );
}

#[test]
fn memory_benchmark_refuses_bad_flags() {
    for args in [
        &["--templates=0"][..],
        &["--optimizer=maybe"],
        &["--frobnicate=1"],
    ] {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty());
    }
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--inheritance-chain"));
}
