//! The memory limit the tuner keeps RSS under: the container's, else the configured one,
//! else the machine's.
//!
//! Order: cgroup v2 `memory.max` and `memory.high` (the kernel throttles and reclaims
//! at `memory.high`, before the limit: the lower of the two is the target); cgroup v1
//! `memory.limit_in_bytes` and `memory.soft_limit_in_bytes` (reclaimed down to it under
//! contention), the lower likewise; `tuner.memory_limit_mb`; total memory. "max" and
//! v1's huge sentinel mean "no limit", and so does any limit above the machine's memory.
//!
//! The kernel's memory pressure stall figure (PSI: the share of the last 10 s some task
//! waited for memory) comes from the cgroup's `memory.pressure`, else the system's
//! `/proc/pressure/memory`, where the kernel exposes them.

use std::path::{Path, PathBuf};

/// Where the tuner's memory limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitSource {
    /// cgroup v2 `memory.max`: the hard limit.
    CgroupV2Max,
    /// cgroup v2 `memory.high`: where the kernel throttles and reclaims, below the limit.
    CgroupV2High,
    /// cgroup v1 `memory.limit_in_bytes`: the hard limit.
    CgroupV1,
    /// cgroup v1 `memory.soft_limit_in_bytes`: reclaimed down to under contention.
    CgroupV1Soft,
    /// `tuner.memory_limit_mb`, as no cgroup sets a limit.
    Configured,
    /// The machine's total memory: no cgroup limit and none configured.
    TotalMemory,
}

/// The memory limit the tuner keeps RSS under, and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MemoryLimit {
    /// The limit, in bytes.
    pub bytes: u64,
    /// Where it came from.
    pub source: LimitSource,
}

/// A cgroup limit file's value; `None` for "max", an empty or unreadable value, or one
/// above `total` (no real limit).
pub fn parse_limit(text: &str, total: u64) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|&bytes| bytes > 0 && bytes < total)
}

/// The cgroup v2 folder of this process from `/proc/self/cgroup` text (`0::/path`).
pub fn cgroup_v2_dir(proc_cgroup: &str, mount: &Path) -> Option<PathBuf> {
    let path = proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .trim();
    Some(mount.join(path.trim_start_matches('/')))
}

/// This process's folder of cgroup v1 controller `controller` from `/proc/self/cgroup`
/// text (`N:cpu,cpuacct:/path`): `<mount>/<controller>/path`.
pub fn cgroup_v1_dir(proc_cgroup: &str, mount: &Path, controller: &str) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == controller).then(|| {
            // A co-mounted `cpu,cpuacct` is linked as `cpu` on most systems.
            mount
                .join(controller)
                .join(path.trim().trim_start_matches('/'))
        })
    })
}

/// Finds the limit, reading cgroup files under `cgroup_mount` (normally `/sys/fs/cgroup`)
/// and `proc_cgroup` (the text of `/proc/self/cgroup`).
pub fn detect(
    configured: Option<u64>,
    total: u64,
    cgroup_mount: &Path,
    proc_cgroup: Option<&str>,
) -> MemoryLimit {
    let read = |path: PathBuf| std::fs::read_to_string(path).ok();
    let v2_dirs: Vec<PathBuf> = proc_cgroup
        .and_then(|text| cgroup_v2_dir(text, cgroup_mount))
        .into_iter()
        .chain(std::iter::once(cgroup_mount.to_owned()))
        .collect();
    // The lower of a folder's limits, with its source.
    let lowest = |dir: &Path, files: [(&str, LimitSource); 2]| {
        files
            .into_iter()
            .filter_map(|(file, source)| {
                let bytes = read(dir.join(file)).and_then(|t| parse_limit(&t, total))?;
                Some(MemoryLimit { bytes, source })
            })
            .min_by_key(|limit| limit.bytes)
    };
    for dir in &v2_dirs {
        let files = [
            ("memory.max", LimitSource::CgroupV2Max),
            ("memory.high", LimitSource::CgroupV2High),
        ];
        if let Some(limit) = lowest(dir, files) {
            return limit;
        }
    }
    // cgroup v1: this process's memory cgroup (`N:memory:/path`), then the root.
    let v1_own = proc_cgroup.and_then(|text| cgroup_v1_dir(text, cgroup_mount, "memory"));
    for dir in v1_own
        .into_iter()
        .chain(std::iter::once(cgroup_mount.join("memory")))
    {
        let files = [
            ("memory.limit_in_bytes", LimitSource::CgroupV1),
            ("memory.soft_limit_in_bytes", LimitSource::CgroupV1Soft),
        ];
        if let Some(limit) = lowest(&dir, files) {
            return limit;
        }
    }
    match configured {
        Some(bytes) => MemoryLimit {
            bytes,
            source: LimitSource::Configured,
        },
        None => MemoryLimit {
            bytes: total,
            source: LimitSource::TotalMemory,
        },
    }
}

/// The `some avg10` figure of a PSI file (`some avg10=1.23 avg60=... total=...`): the
/// percentage of the last 10 s in which some task stalled on memory.
pub fn parse_pressure(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix("some "))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("avg10="))?
        .parse()
        .ok()
}

/// The memory pressure stall figure: the cgroup's (v2 `memory.pressure`), else the
/// system's (`/proc/pressure/memory`); `None` where the kernel has no PSI.
pub fn pressure(cgroup_mount: &Path, proc_cgroup: Option<&str>, system: &Path) -> Option<f64> {
    let read = |path: PathBuf| std::fs::read_to_string(path).ok();
    proc_cgroup
        .and_then(|text| cgroup_v2_dir(text, cgroup_mount))
        .and_then(|dir| read(dir.join("memory.pressure")))
        .or_else(|| read(system.to_owned()))
        .and_then(|text| parse_pressure(&text))
}

/// This process's memory pressure stall figure ([`pressure`]).
pub fn pressure_here() -> Option<f64> {
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").ok();
    pressure(
        Path::new("/sys/fs/cgroup"),
        proc_cgroup.as_deref(),
        Path::new("/proc/pressure/memory"),
    )
}

/// The limit of this process: `/sys/fs/cgroup` and `/proc/self/cgroup`.
pub fn detect_here(configured: Option<u64>) -> MemoryLimit {
    let total = match sysinfo::System::new() {
        Ok(mut system) => {
            system.refresh_memory();
            system.total_memory().max(1)
        }
        Err(_) => u64::MAX,
    };
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").ok();
    detect(
        configured,
        total,
        Path::new("/sys/fs/cgroup"),
        proc_cgroup.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn tuner_memory_limit_parses_cgroup_values() {
        assert_eq!(parse_limit("max\n", 8 * GIB), None);
        assert_eq!(parse_limit("536870912\n", 8 * GIB), Some(512 << 20));
        assert_eq!(
            parse_limit("9223372036854771712", 8 * GIB),
            None,
            "v1's no-limit"
        );
        assert_eq!(parse_limit("", 8 * GIB), None);
        assert_eq!(parse_limit("0", 8 * GIB), None);
    }

    #[test]
    fn tuner_memory_limit_prefers_cgroup_v2_then_v1_then_configuration_then_total() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path();
        let total = 8 * GIB;
        let none = detect(None, total, mount, None);
        assert_eq!((none.bytes, none.source), (total, LimitSource::TotalMemory));
        let configured = detect(Some(GIB), total, mount, None);
        assert_eq!(configured.source, LimitSource::Configured);

        std::fs::create_dir_all(mount.join("memory/box/one")).unwrap();
        std::fs::write(
            mount.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(
            mount.join("memory/box/one/memory.limit_in_bytes"),
            "1073741824\n",
        )
        .unwrap();
        let v1 = detect(
            Some(2 * GIB),
            total,
            mount,
            Some("4:memory:/box/one\n0::/\n"),
        );
        assert_eq!((v1.bytes, v1.source), (GIB, LimitSource::CgroupV1));
        // A soft limit under it is the target; v1's sentinel is none.
        let soft = mount.join("memory/box/one/memory.soft_limit_in_bytes");
        std::fs::write(&soft, "9223372036854771712\n").unwrap();
        let v1 = detect(None, total, mount, Some("4:memory:/box/one\n"));
        assert_eq!((v1.bytes, v1.source), (GIB, LimitSource::CgroupV1));
        std::fs::write(&soft, "805306368\n").unwrap();
        let v1 = detect(None, total, mount, Some("4:memory:/box/one\n"));
        assert_eq!(
            (v1.bytes, v1.source),
            (768 << 20, LimitSource::CgroupV1Soft)
        );
        let root_unlimited = detect(Some(2 * GIB), total, mount, None);
        assert_eq!(root_unlimited.source, LimitSource::Configured);

        let own = mount.join("system.slice/leanserve.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("memory.max"), "max\n").unwrap();
        std::fs::write(own.join("memory.high"), "536870912\n").unwrap();
        let proc_cgroup = "0::/system.slice/leanserve.service\n";
        let high = detect(None, total, mount, Some(proc_cgroup));
        assert_eq!(
            (high.bytes, high.source),
            (512 << 20, LimitSource::CgroupV2High)
        );
        std::fs::write(own.join("memory.max"), "268435456\n").unwrap();
        let max = detect(None, total, mount, Some(proc_cgroup));
        assert_eq!(
            (max.bytes, max.source),
            (256 << 20, LimitSource::CgroupV2Max)
        );
        // memory.high under memory.max: the kernel reclaims from there, so it is the target.
        std::fs::write(own.join("memory.high"), "201326592\n").unwrap();
        let high = detect(None, total, mount, Some(proc_cgroup));
        assert_eq!(
            (high.bytes, high.source),
            (192 << 20, LimitSource::CgroupV2High)
        );
    }

    #[test]
    fn tuner_memory_pressure_reads_the_cgroup_then_the_system() {
        let text = "some avg10=12.50 avg60=3.00 avg300=0.50 total=123456\n\
                    full avg10=1.00 avg60=0.00 avg300=0.00 total=456\n";
        assert_eq!(parse_pressure(text), Some(12.5));
        assert_eq!(parse_pressure("full avg10=1.00\n"), None);
        assert_eq!(parse_pressure(""), None);
        let root = tempfile::tempdir().unwrap();
        let (mount, system) = (root.path(), root.path().join("system-memory"));
        assert_eq!(pressure(mount, Some("0::/a\n"), &system), None, "no PSI");
        std::fs::write(&system, "some avg10=0.25 avg60=0 avg300=0 total=1\n").unwrap();
        assert_eq!(pressure(mount, Some("0::/a\n"), &system), Some(0.25));
        std::fs::create_dir_all(mount.join("a")).unwrap();
        std::fs::write(mount.join("a/memory.pressure"), text).unwrap();
        assert_eq!(pressure(mount, Some("0::/a\n"), &system), Some(12.5));
    }
}
