//! The memory limit the tuner keeps RSS under: the container's, else the configured one,
//! else the machine's.
//!
//! Order: cgroup v2 `memory.max`, then `memory.high` (a throttling limit, also worth
//! staying under); cgroup v1 `memory.limit_in_bytes`; `tuner.memory_limit_mb`; total
//! memory. "max" and v1's huge sentinel mean "no limit", and so does any limit above the
//! machine's memory.

use std::path::{Path, PathBuf};

/// Where the limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    CgroupV2Max,
    CgroupV2High,
    CgroupV1,
    Configured,
    TotalMemory,
}

/// The limit and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryLimit {
    pub bytes: u64,
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
    for dir in &v2_dirs {
        for (file, source) in [
            ("memory.max", LimitSource::CgroupV2Max),
            ("memory.high", LimitSource::CgroupV2High),
        ] {
            if let Some(bytes) = read(dir.join(file)).and_then(|t| parse_limit(&t, total)) {
                return MemoryLimit { bytes, source };
            }
        }
    }
    // cgroup v1: this process's memory cgroup (`N:memory:/path`), then the root.
    let v1_own = proc_cgroup.and_then(|text| {
        text.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == "memory").then(|| {
                cgroup_mount
                    .join("memory")
                    .join(path.trim().trim_start_matches('/'))
            })
        })
    });
    for dir in v1_own
        .into_iter()
        .chain(std::iter::once(cgroup_mount.join("memory")))
    {
        if let Some(bytes) =
            read(dir.join("memory.limit_in_bytes")).and_then(|t| parse_limit(&t, total))
        {
            return MemoryLimit {
                bytes,
                source: LimitSource::CgroupV1,
            };
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
    }
}
