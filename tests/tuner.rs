//! The configuration tuner over HTTP: every knob recommended with its reason and
//! evidence; under a tight memory limit the cache budget is cut to its floor when
//! applied, once, with the change logged, counted and exposed; off, it answers 409; a bad
//! `[tuner]` setting stops start-up naming the key.

mod util;

use leanserve::Knob;
use leanserve::{Config, ConfigError, LoadOptions};
use util::{config_dir, get_json, site, start};

async fn post(url: String) -> (u16, serde_json::Value) {
    util::post_json(&url).await
}

fn knob<'a>(knobs: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    knobs
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == name)
        .unwrap_or_else(|| panic!("no knob {name} in {knobs}"))
}

#[actix_rt::test]
async fn tuner_recommends_every_knob_with_a_reason_and_evidence() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[("LEANSERVE_LIMITER_ENABLED", "true")])
        .serve()
        .await;
    let (status, body) = get_json(&server.url("/admin/tuner"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["mode"], "auto");
    assert_eq!(body["interval_seconds"], 30);
    let knobs = &body["last"]["knobs"];
    for name in [
        "cache_budget_bytes",
        "pool_scale_max:gzip",
        "pool_scale_max:inflate",
        "pool_scale_max:render_buffers",
        "in_flight_limit:files",
        "in_flight_limit:renders",
        "server.workers",
        "templates.render_workers",
    ] {
        let knob = knob(knobs, name);
        assert!(!knob["reason"].as_str().unwrap().is_empty(), "{knob}");
        assert!(
            knob["live"].is_boolean() && knob["recommended"].is_number(),
            "{knob}"
        );
    }
    assert_eq!(knob(knobs, "server.workers")["live"], false);
    assert!(
        !knob(knobs, "cache_budget_bytes")["evidence"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(body["last"]["memory_limit"]["bytes"].as_u64().unwrap() > 0);
    let cpu = &body["last"]["cpu_limit"];
    assert!(cpu["cpus"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["source"].is_string() && cpu["available"].as_u64() >= Some(1));
    let (status, fresh) = get_json(&server.url("/admin/tuner/recommendations"), None).await;
    assert_eq!((status, fresh["applied"].as_bool()), (200, Some(false)));
    subsystems.shutdown().await;
}

#[actix_rt::test]
async fn tuner_cuts_the_cache_budget_to_its_floor_under_a_tight_limit_once() {
    let site = site();
    let (subsystems, server) = start(
        site.path(),
        &[
            // 1 MiB: this process is far over it, and not because of the cache.
            ("LEANSERVE_TUNER_MEMORY_LIMIT_MB", "1"),
            ("LEANSERVE_TUNER_MODE", "recommend"),
            ("STATIC_FILE_MAX_CACHE_SIZE", "67108864"),
        ],
    )
    .serve()
    .await;
    // The RSS figure comes from the process sampler.
    util::eventually("a process sample", || async {
        subsystems.process_stats().is_some()
    })
    .await;
    let (status, report) = get_json(&server.url("/admin/tuner/recommendations"), None).await;
    assert_eq!(status, 200);
    let limit = &report["memory_limit"];
    assert_eq!(
        (limit["bytes"].as_u64(), limit["source"].as_str()),
        (Some(1 << 20), Some("configured"))
    );
    let cache = knob(&report["knobs"], "cache_budget_bytes");
    assert_eq!(cache["current"], 67108864.0);
    assert_eq!(cache["recommended"], (8u64 << 20) as f64, "the floor");
    assert!(
        cache["reason"]
            .as_str()
            .unwrap()
            .contains("is not the cache's"),
        "{cache}"
    );
    // Recommend mode changes nothing by itself.
    let (_, stats) = get_json(&server.url("/admin/cache"), None).await;
    assert_eq!(stats["budget_bytes"], 67108864);

    let (status, applied) = post(server.url("/admin/tuner/apply")).await;
    assert_eq!(status, 200, "{applied}");
    let (_, stats) = get_json(&server.url("/admin/cache"), None).await;
    assert_eq!(stats["budget_bytes"], 8u64 << 20);
    let decisions = applied["decisions"].as_array().unwrap();
    let cut = decisions
        .iter()
        .find(|d| d["knob"] == "cache_budget_bytes")
        .expect("the cut is recorded");
    assert_eq!(
        (cut["direction"].as_str(), cut["to"].as_f64()),
        (Some("down"), Some((8u64 << 20) as f64))
    );
    // Applied again: already at the floor, nothing more to do.
    let (_, again) = post(server.url("/admin/tuner/apply")).await;
    let cuts = again["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["knob"] == "cache_budget_bytes")
        .count();
    assert_eq!(cuts, 1);
    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    assert!(
        text.contains(
            "leanserve_tuner_changes_total{knob=\"cache_budget_bytes\",direction=\"down\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains("leanserve_tuner_memory_limit_bytes 1048576\n"));
    subsystems.shutdown().await;
}

#[actix_rt::test]
async fn tuner_in_auto_mode_fits_the_cache_to_the_limit_from_the_start() {
    let site = site();
    let subsystems = start(
        site.path(),
        &[
            ("LEANSERVE_TUNER_MEMORY_LIMIT_MB", "1"),
            ("STATIC_FILE_MAX_CACHE_SIZE", "67108864"),
        ],
    )
    .runtime()
    .await;
    // No apply asked for and the interval is 30 s: the first round runs at start.
    util::eventually("the budget cut to its floor", || async {
        subsystems.cache_stats().await.unwrap().budget_bytes == 8 << 20
    })
    .await;
    let decisions = subsystems.tuner_decisions();
    assert_eq!(decisions[0].knob, Knob::CacheBudgetBytes);
    assert_eq!(decisions[0].direction, "down");
    subsystems.shutdown().await;
}

#[actix_rt::test]
async fn tuner_off_has_no_actor_and_refuses_apply_with_409() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[("CONFIG_TUNER_ENABLED", "false")])
        .serve()
        .await;
    let (status, body) = post(server.url("/admin/tuner/apply")).await;
    assert_eq!(status, 409);
    assert!(
        body["error"].as_str().unwrap().contains("tuner.enabled"),
        "{body}"
    );
    assert_eq!(
        get_json(&server.url("/admin/tuner/recommendations"), None)
            .await
            .0,
        409
    );
    let (status, body) = get_json(&server.url("/admin/tuner"), None).await;
    assert_eq!((status, body["mode"].as_str()), (200, Some("off")));
    assert!(
        subsystems
            .supervisor_report()
            .children
            .iter()
            .all(|c| c.name != "tuner")
    );
    subsystems.shutdown().await;
}

#[test]
fn tuner_bad_settings_stop_start_up_naming_the_key() {
    let site = site();
    let key = |env: &[(&str, &str)]| {
        let mut vars: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert(
            "STATIC_FILE_ROOT_DIR".into(),
            site.path().display().to_string(),
        );
        match Config::load(
            &LoadOptions::default()
                .config_dir(config_dir())
                .profile("test")
                .env(vars),
        ) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(key(&[("LEANSERVE_TUNER_MODE", "sometimes")]), "tuner.mode");
    assert_eq!(key(&[("LEANSERVE_TUNER_INTERVAL", "0")]), "tuner.interval");
    assert_eq!(
        key(&[
            ("LEANSERVE_TUNER_CACHE_FLOOR_MB", "100"),
            ("LEANSERVE_TUNER_CACHE_CEILING_MB", "10")
        ]),
        "tuner.cache_floor_mb"
    );
    assert_eq!(
        key(&[
            ("LEANSERVE_TUNER_CACHE_FLOOR_MB", "100"),
            ("STATIC_FILE_MAX_CACHE_SIZE", "1048576")
        ]),
        "tuner.cache_floor_mb"
    );
    // A small cache with the default floor (8 MiB) starts: the floor follows the budget.
    let mut vars = std::collections::HashMap::new();
    vars.insert(
        "STATIC_FILE_ROOT_DIR".to_owned(),
        site.path().display().to_string(),
    );
    vars.insert(
        "STATIC_FILE_MAX_CACHE_SIZE".to_owned(),
        "4194304".to_owned(),
    );
    let small = Config::load(
        &LoadOptions::default()
            .config_dir(config_dir())
            .profile("prod")
            .env(vars)
            .var("LEANSERVE_ADMIN_TOKEN", "t"),
    )
    .expect("a 4 MiB cache starts with the default tuner floor");
    assert_eq!(small.opts.tuner.cache_floor, 4 << 20);
}

/// A CPU cgroup with a quota of half a CPU (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`),
/// removed when dropped; `None` (with the reason) where none can be made.
struct HalfCpu {
    dir: std::path::PathBuf,
    version: &'static str,
}

impl HalfCpu {
    fn create() -> Result<HalfCpu, String> {
        let name = format!("leanserve-tuner-test-{}", std::process::id());
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers");
        let (dir, version, files) = if v2.exists() {
            let dir = std::path::Path::new("/sys/fs/cgroup").join(&name);
            (dir, "cgroup_v2", vec![("cpu.max", "50000 100000")])
        } else {
            let dir = std::path::Path::new("/sys/fs/cgroup/cpu").join(&name);
            (
                dir,
                "cgroup_v1",
                vec![
                    ("cpu.cfs_period_us", "100000"),
                    ("cpu.cfs_quota_us", "50000"),
                ],
            )
        };
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cgroup = HalfCpu { dir, version };
        for (file, value) in files {
            std::fs::write(cgroup.dir.join(file), value)
                .map_err(|e| format!("cannot write {file}: {e}"))?;
        }
        Ok(cgroup)
    }
}

impl Drop for HalfCpu {
    fn drop(&mut self) {
        // Empty once its process has exited; the kernel may take a moment to notice.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

#[actix_rt::test]
async fn tuner_reads_the_cpu_quota_of_its_cgroup() {
    use std::os::unix::process::CommandExt;
    let cgroup = match HalfCpu::create() {
        Ok(cgroup) => cgroup,
        Err(reason) => {
            println!("skipped: no CPU cgroup can be made here ({reason})");
            return;
        }
    };
    let site = site();
    let procs = cgroup.dir.join("cgroup.procs");
    let mut command = util::leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        &[("LEANSERVE_TUNER_MODE", "recommend")],
    );
    command.stdout(std::process::Stdio::piped());
    // SAFETY: between fork and exec the closure only writes a file (open, write, close
    // system calls through std::fs), allocating nothing the parent's locks could hold.
    unsafe {
        command.pre_exec(move || std::fs::write(&procs, "0"));
    }
    let mut child = command.spawn().unwrap();
    let (_, admin) = util::listening(&mut child);
    let (status, body) = get_json(&format!("{admin}/admin/tuner/recommendations"), None).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cpu_limit"]["cpus"], 0.5, "{body}");
    assert_eq!(body["cpu_limit"]["source"], cgroup.version, "{body}");
    assert_eq!(knob(&body["knobs"], "server.workers")["recommended"], 1.0);
}
