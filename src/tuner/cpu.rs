//! The CPUs the tuner sizes threads for: the process's CPU quota when its cgroup sets one,
//! else the CPUs it may run on.
//!
//! - cgroup v2: `cpu.max` (`<quota> <period>` in microseconds, or `max <period>`) of this
//!   process's cgroup and of each ancestor up to the mount; the lowest quota wins, as the
//!   kernel throttles at the tightest one.
//! - cgroup v1: `cpu.cfs_quota_us` over `cpu.cfs_period_us` (a quota of -1: none) of
//!   this process's `cpu` cgroup and its ancestors, likewise.
//! - Otherwise `std::thread::available_parallelism` (the affinity mask's CPUs).
//!
//! A quota above the CPUs the process may run on limits nothing: the CPU count stays.

use std::path::{Path, PathBuf};

/// Where a [`CpuLimit`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CpuSource {
    /// The cgroup v2 `cpu.max` quota of the process's cgroup or an ancestor (the lowest).
    CgroupV2,
    /// The cgroup v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us` (the lowest in the hierarchy).
    CgroupV1,
    /// No quota (or one above the CPUs): the CPUs the process may run on.
    Cpus,
}

/// The CPU time the process may use, in CPUs (0.5: half of one), and its source.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct CpuLimit {
    /// CPUs the process may use; fractional under a quota (0.5: half of one).
    pub cpus: f64,
    /// Where `cpus` came from.
    pub source: CpuSource,
    /// The CPUs the process may run on (its affinity mask).
    pub available: usize,
}

impl Default for CpuLimit {
    /// One CPU, until a reading says otherwise.
    fn default() -> Self {
        CpuLimit {
            cpus: 1.0,
            source: CpuSource::Cpus,
            available: 1,
        }
    }
}

impl CpuLimit {
    /// Threads worth running for CPU-bound work: the quota rounded up (half a CPU still
    /// needs one thread), at least one, at most the CPUs available.
    pub fn threads(&self) -> usize {
        (self.cpus.ceil() as usize).clamp(1, self.available.max(1))
    }
}

/// A cgroup v2 `cpu.max` value as CPUs; `None` for `max` (no quota) or a malformed one.
pub fn parse_v2_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: f64 = fields.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let quota: f64 = quota.parse().ok()?;
    (quota > 0.0).then(|| quota / period)
}

/// A cgroup v1 quota and period (`cpu.cfs_quota_us`, `cpu.cfs_period_us`) as CPUs;
/// `None` for -1 (no quota) or malformed values.
pub fn parse_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// `dir` and its ancestors down to `mount` (which is included).
fn up_to(dir: PathBuf, mount: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut current = Some(dir.as_path());
    while let Some(dir) = current {
        if !dir.starts_with(mount) {
            break;
        }
        dirs.push(dir.to_owned());
        current = dir.parent();
    }
    dirs
}

/// Finds the limit under `cgroup_mount` (normally `/sys/fs/cgroup`) for the process
/// whose `/proc/self/cgroup` reads `proc_cgroup`, on `available` CPUs.
pub fn detect(cgroup_mount: &Path, proc_cgroup: Option<&str>, available: usize) -> CpuLimit {
    let read = |path: PathBuf| std::fs::read_to_string(path).ok();
    let lowest = |quotas: Vec<f64>| quotas.into_iter().reduce(f64::min);
    let v2 = proc_cgroup
        .and_then(|text| super::memory::cgroup_v2_dir(text, cgroup_mount))
        .map(|dir| up_to(dir, cgroup_mount))
        .and_then(|dirs| {
            lowest(
                dirs.into_iter()
                    .filter_map(|dir| read(dir.join("cpu.max")).and_then(|t| parse_v2_max(&t)))
                    .collect(),
            )
        });
    let v1 = || {
        let mount = cgroup_mount.join("cpu");
        let dirs = match proc_cgroup
            .and_then(|text| super::memory::cgroup_v1_dir(text, cgroup_mount, "cpu"))
        {
            Some(dir) => up_to(dir, &mount),
            None => vec![mount],
        };
        lowest(
            dirs.into_iter()
                .filter_map(|dir| {
                    parse_v1(
                        &read(dir.join("cpu.cfs_quota_us"))?,
                        &read(dir.join("cpu.cfs_period_us"))?,
                    )
                })
                .collect(),
        )
    };
    let (quota, source) = match v2 {
        Some(cpus) => (Some(cpus), CpuSource::CgroupV2),
        None => (v1(), CpuSource::CgroupV1),
    };
    match quota {
        Some(cpus) if cpus < available as f64 => CpuLimit {
            cpus,
            source,
            available,
        },
        _ => CpuLimit {
            cpus: available as f64,
            source: CpuSource::Cpus,
            available,
        },
    }
}

/// The limit of this process: `/sys/fs/cgroup`, `/proc/self/cgroup` and its affinity.
pub fn detect_here() -> CpuLimit {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").ok();
    detect(
        Path::new("/sys/fs/cgroup"),
        proc_cgroup.as_deref(),
        available,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuner_cpu_quota_parses_both_cgroup_formats() {
        assert_eq!(parse_v2_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_v2_max("150000 100000"), Some(1.5));
        assert_eq!(parse_v2_max("max 100000\n"), None);
        assert_eq!(
            parse_v2_max("200000"),
            Some(2.0),
            "period defaults to 100 ms"
        );
        assert_eq!(parse_v2_max("lots 100000"), None);
        assert_eq!(parse_v2_max(""), None);
        assert_eq!(parse_v1("50000\n", "100000\n"), Some(0.5));
        assert_eq!(parse_v1("-1\n", "100000\n"), None);
        assert_eq!(parse_v1("25000", "0"), None);
    }

    fn write(path: PathBuf, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn tuner_cpu_quota_takes_the_tightest_cgroup_then_the_cpus() {
        // cgroup v2: the service's own quota is 1.5, its slice's 0.5.
        let v2 = tempfile::tempdir().unwrap();
        let mount = v2.path();
        write(mount.join("cpu.max"), "max 100000\n");
        write(mount.join("system.slice/cpu.max"), "50000 100000\n");
        write(
            mount.join("system.slice/leanserve.service/cpu.max"),
            "150000 100000\n",
        );
        let proc_cgroup = "0::/system.slice/leanserve.service\n";
        let limit = detect(mount, Some(proc_cgroup), 4);
        assert_eq!(
            (limit.cpus, limit.source, limit.threads()),
            (0.5, CpuSource::CgroupV2, 1)
        );
        // A quota over the CPUs available limits nothing.
        write(mount.join("system.slice/cpu.max"), "800000 100000\n");
        let limit = detect(mount, Some(proc_cgroup), 1);
        assert_eq!((limit.cpus, limit.source), (1.0, CpuSource::Cpus));
        let limit = detect(mount, Some(proc_cgroup), 4);
        assert_eq!(
            (limit.cpus, limit.source, limit.threads()),
            (1.5, CpuSource::CgroupV2, 2)
        );

        // cgroup v1: the process's cpu cgroup, then its parents.
        let v1 = tempfile::tempdir().unwrap();
        let mount = v1.path();
        write(mount.join("cpu/cpu.cfs_quota_us"), "-1\n");
        write(mount.join("cpu/cpu.cfs_period_us"), "100000\n");
        write(mount.join("cpu/bench/one/cpu.cfs_quota_us"), "50000\n");
        write(mount.join("cpu/bench/one/cpu.cfs_period_us"), "100000\n");
        let proc_cgroup = "4:memory:/x\n2:cpu,cpuacct:/bench/one\n0::/\n";
        let limit = detect(mount, Some(proc_cgroup), 2);
        assert_eq!(
            (limit.cpus, limit.source, limit.threads()),
            (0.5, CpuSource::CgroupV1, 1)
        );
        // No quota anywhere: the CPUs.
        write(mount.join("cpu/bench/one/cpu.cfs_quota_us"), "-1\n");
        let limit = detect(mount, Some(proc_cgroup), 2);
        assert_eq!(
            (limit.cpus, limit.source, limit.threads()),
            (2.0, CpuSource::Cpus, 2)
        );
        let limit = detect(Path::new("/nonexistent"), None, 3);
        assert_eq!((limit.cpus, limit.source), (3.0, CpuSource::Cpus));
    }
}
