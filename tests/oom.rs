//! The tuner against the kernel's OOM killer. The `leanserve` binary (prod profile) runs
//! inside a real memory cgroup from its first instruction, with a file cache budget four
//! times the cgroup's limit, while a few clients walk a compressible site four times the
//! limit with `Accept-Encoding: gzip`, so the cache fills. With the tuner in auto mode its
//! first round reads the limit from the process's own cgroup and fits the budget under
//! it: the server lives and answers every request. With the tuner off the same load grows
//! the cache past the limit and the kernel kills the server (SIGKILL, counted in the
//! cgroup's `oom_kill`): the test can fail, and does without the tuner.
//!
//! It needs a memory cgroup it can make (root, cgroup v1's `memory/` hierarchy or cgroup
//! v2 with the memory controller); elsewhere it says why and returns.

#![cfg(target_os = "linux")]

mod util;

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The cgroup's memory limit.
const LIMIT: u64 = 64 * MIB;
/// The file cache's configured budget (`STATIC_FILE_MAX_CACHE_SIZE`): four times the limit.
const BUDGET: u64 = 4 * LIMIT;
/// Bytes of each file of the site.
const FILE_BYTES: usize = 48 << 10;
/// Files of the site: four times the limit in all.
const FILES: usize = (4 * LIMIT / FILE_BYTES as u64) as usize;
/// Clients at once, each on its own keep-alive connection. Not more than the limiter's
/// `min_limit` (4): the load is the cache's, not a queue's.
const CLIENTS: usize = 4;
/// Walks through the whole site: one is two and a half times what kills the server
/// without the tuner.
const PASSES: usize = 1;
/// Admin token (the prod profile requires one on TCP).
const TOKEN: &str = "oom-test-token";

/// Where the memory controller lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hierarchy {
    /// `/sys/fs/cgroup/memory/`: `memory.limit_in_bytes`, `memory.oom_control`.
    V1,
    /// `/sys/fs/cgroup/` unified: `memory.max`, `memory.events`.
    V2,
}

/// A memory cgroup made for one run, under this process's own where it can be (so it
/// stays inside whatever limits this process), else under the hierarchy's root; removed
/// when dropped, once its processes are gone.
struct Cgroup {
    dir: PathBuf,
    hierarchy: Hierarchy,
}

/// Numbers the cgroups of this process: with the pid, names no other test takes.
static CGROUPS_MADE: AtomicUsize = AtomicUsize::new(0);

impl Cgroup {
    /// A fresh cgroup limited to `limit` bytes of memory and none of swap; `Err` with the
    /// reason where none can be made.
    fn create(limit: u64) -> Result<Cgroup, String> {
        let mount = Path::new("/sys/fs/cgroup");
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup unreadable: {e}"))?;
        let (hierarchy, root) = if mount.join("cgroup.controllers").exists() {
            (Hierarchy::V2, mount.to_owned())
        } else if mount.join("memory/memory.limit_in_bytes").exists() {
            (Hierarchy::V1, mount.join("memory"))
        } else {
            return Err(
                "no memory cgroup is mounted (neither cgroup v2's /sys/fs/cgroup/cgroup.controllers nor v1's /sys/fs/cgroup/memory/)"
                    .into(),
            );
        };
        // This process's own cgroup: `0::/path` (v2), `N:...memory...:/path` (v1).
        let own = proc_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let ours = match hierarchy {
                Hierarchy::V2 => controllers.is_empty(),
                Hierarchy::V1 => controllers.split(',').any(|c| c == "memory"),
            };
            ours.then(|| root.join(path.trim().trim_start_matches('/')))
        });
        let mut parents: Vec<PathBuf> = own.into_iter().collect();
        if !parents.contains(&root) {
            parents.push(root);
        }
        let mut failures = Vec::new();
        for parent in parents {
            match Cgroup::create_under(&parent, hierarchy, limit) {
                Ok(cgroup) => return Ok(cgroup),
                Err(e) => failures.push(format!("{}: {e}", parent.display())),
            }
        }
        Err(format!(
            "no memory cgroup could be made ({hierarchy:?}): {}",
            failures.join("; ")
        ))
    }

    fn create_under(parent: &Path, hierarchy: Hierarchy, limit: u64) -> io::Result<Cgroup> {
        if hierarchy == Hierarchy::V2 {
            // A child gets the memory controller only where its parent hands it down.
            let control = parent.join("cgroup.subtree_control");
            let handed_down = std::fs::read_to_string(&control)?
                .split_whitespace()
                .any(|c| c == "memory");
            if !handed_down {
                std::fs::write(&control, "+memory")?;
            }
        }
        let name = format!(
            "leanserve-oom-{}-{}",
            std::process::id(),
            CGROUPS_MADE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        std::fs::create_dir(&dir)?;
        // From here on, dropping it removes the folder.
        let cgroup = Cgroup { dir, hierarchy };
        let limit = limit.to_string();
        match hierarchy {
            Hierarchy::V1 => {
                cgroup.write("memory.limit_in_bytes", &limit)?;
                // Memory plus swap, where swap is accounted: the limit is not escaped by
                // swapping.
                if cgroup.dir.join("memory.memsw.limit_in_bytes").exists() {
                    cgroup.write("memory.memsw.limit_in_bytes", &limit)?;
                }
            }
            Hierarchy::V2 => {
                cgroup.write("memory.max", &limit)?;
                if cgroup.dir.join("memory.swap.max").exists() {
                    cgroup.write("memory.swap.max", "0")?;
                }
            }
        }
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| io::Error::new(e.kind(), format!("writing {value} to {file}: {e}")))
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    /// Processes the kernel's OOM killer killed in this cgroup.
    fn oom_kills(&self) -> u64 {
        let file = match self.hierarchy {
            Hierarchy::V1 => "memory.oom_control",
            Hierarchy::V2 => "memory.events",
        };
        self.read(file)
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The most memory the cgroup was charged (v2's `memory.peak` needs Linux 5.19).
    fn peak(&self) -> Option<u64> {
        let file = match self.hierarchy {
            Hierarchy::V1 => "memory.max_usage_in_bytes",
            Hierarchy::V2 => "memory.peak",
        };
        self.read(file)?.trim().parse().ok()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // rmdir answers EBUSY while a process of the cgroup is still on its way out.
        let mut last = None;
        for _ in 0..250 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "oom: could not remove the cgroup {}: {last:?}",
            self.dir.display()
        );
    }
}

/// The server binary confined to its cgroup. Dropped, it kills the server and reaps it,
/// then (its `cgroup` field dropping after) removes the cgroup, whatever the test did.
struct Confined {
    child: Child,
    /// Serving and admin base URLs.
    url: String,
    admin: String,
    cgroup: Cgroup,
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Confined {
    /// Starts the server on `site` (prod profile, loopback ports) inside `cgroup`,
    /// entered before exec so not one of its allocations happens outside the limit.
    fn start(cgroup: Cgroup, site: &Path, env: &[(&str, &str)]) -> Confined {
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(cgroup.dir.join("cgroup.procs"))
            .expect("the cgroup's cgroup.procs opens for writing");
        // Opened with O_CLOEXEC by std: the server does not inherit it.
        let fd = procs.as_raw_fd();
        let enter = move || {
            // SAFETY: write(2) of a static byte to a descriptor this process holds open.
            let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if written == 1 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let budget = BUDGET.to_string();
        let mut env = env.to_vec();
        env.extend([
            ("STATIC_FILE_MAX_CACHE_SIZE", budget.as_str()),
            ("LEANSERVE_ADMIN_BIND", "127.0.0.1:0"),
            ("LEANSERVE_ADMIN_TOKEN", TOKEN),
            // The tuner's start line and its changes, on the test's stderr.
            ("RUST_LOG", "warn,leanserve::actors::tuner=info"),
        ]);
        let mut command = util::leanserve(
            &[
                "--env",
                "prod",
                "--bind",
                "127.0.0.1:0",
                "--root",
                site.to_str().unwrap(),
            ],
            &env,
        );
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        // SAFETY: `enter` runs in the forked child before exec, where only
        // async-signal-safe work is sound (another thread of the test may have held a
        // lock, the allocator's say, at the fork): it makes one write(2), to `cgroup.procs`
        // ("0": the writing process), and allocates nothing; `procs` outlives the spawn.
        unsafe { command.pre_exec(enter) };
        let mut child = command.spawn().expect("the server starts in its cgroup");
        drop(procs);
        let (url, admin) = util::listening(&mut child);
        Confined {
            child,
            url,
            admin,
            cgroup,
        }
    }

    /// The server's exit status, waiting for it at most `wait`; `None` while it runs.
    fn exited_within(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A figure of the server's `/proc/PID/status` (`VmHWM`, the peak resident memory;
    /// `RssAnon`, `RssFile`), while it runs.
    fn memory(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb << 10)
    }
}

/// A small xorshift generator: the site is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn page(index: usize) -> String {
    format!("/page-{index:05}.txt")
}

/// Writes [`FILES`] distinct text files of [`FILE_BYTES`] each into `dir`: words drawn
/// from a vocabulary of 2,048, twelve to a line, which gzip takes to about 43% of their
/// size, so even the compressed-only store's cache outgrows the limit.
fn write_site(dir: &Path) {
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let vocabulary: Vec<Vec<u8>> = (0..2048)
        .map(|_| {
            let len = 3 + random.below(8);
            (0..len).map(|_| b'a' + random.below(26) as u8).collect()
        })
        .collect();
    let mut text = Vec::with_capacity(FILE_BYTES + 16);
    for index in 0..FILES {
        text.clear();
        text.extend_from_slice(format!("page {index}\n").as_bytes());
        let mut words = 0;
        while text.len() < FILE_BYTES {
            text.extend_from_slice(&vocabulary[random.below(vocabulary.len())]);
            words += 1;
            text.push(if words % 12 == 0 { b'\n' } else { b' ' });
        }
        text.truncate(FILE_BYTES);
        std::fs::write(dir.join(&page(index)[1..]), &text).unwrap();
    }
}

/// What the clients of one run got.
#[derive(Debug, Default)]
struct Load {
    sent: u64,
    answered_2xx: u64,
    /// Requests answered with another status, and the first such status.
    other: u64,
    first_other: Option<u16>,
    /// Requests with no whole answer (the connection refused, reset or timed out).
    failed: u64,
    first_failure: Option<String>,
}

impl Load {
    fn add(&mut self, other: Load) {
        self.sent += other.sent;
        self.answered_2xx += other.answered_2xx;
        self.other += other.other;
        self.first_other = self.first_other.or(other.first_other);
        self.failed += other.failed;
        self.first_failure = self.first_failure.take().or(other.first_failure);
    }
}

/// One client: its share of each pass through the site (every [`CLIENTS`]th file from
/// `first`), gzip accepted, bodies read whole and not decoded. It stops at its first
/// request without an answer (the server is gone, or took over 10 s).
async fn client(url: String, first: usize) -> Load {
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut load = Load::default();
    for _ in 0..PASSES {
        for index in (first..FILES).step_by(CLIENTS) {
            load.sent += 1;
            let sent = http
                .get(format!("{url}{}", page(index)))
                .insert_header(("Accept-Encoding", "gzip"))
                .no_decompress()
                .send()
                .await;
            let answer = match sent {
                Ok(mut response) => response
                    .body()
                    .limit(1 << 20)
                    .await
                    .map(|_| response.status())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(status) if status.is_success() => load.answered_2xx += 1,
                Ok(status) => {
                    load.other += 1;
                    load.first_other.get_or_insert(status.as_u16());
                }
                Err(e) => {
                    load.failed += 1;
                    load.first_failure = Some(format!("{}: {e}", page(index)));
                    return load;
                }
            }
        }
    }
    load
}

/// [`CLIENTS`] clients at once through the site, [`PASSES`] times.
async fn drive(url: &str) -> Load {
    let clients = (0..CLIENTS).map(|first| client(url.to_owned(), first));
    let mut total = Load::default();
    for load in futures_util::future::join_all(clients).await {
        total.add(load);
    }
    total
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

fn show(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unknown".to_owned(), mib)
}

/// One line of what a run saw, for the test's output.
fn summary(run: &str, load: &Load, seconds: f64, outcome: &str, cgroup: &Cgroup) -> String {
    format!(
        "oom: {run}: {} requests in {seconds:.1} s: {} answered 2xx, {} other ({:?}), {} without an answer ({}); {outcome}; cgroup peak {} of {}; oom_kill {}",
        load.sent,
        load.answered_2xx,
        load.other,
        load.first_other,
        load.failed,
        load.first_failure.as_deref().unwrap_or("none"),
        show(cgroup.peak()),
        mib(LIMIT),
        cgroup.oom_kills(),
    )
}

#[actix_rt::test]
async fn oom_tuner_keeps_the_server_alive_in_a_cgroup_that_kills_it_without_the_tuner() {
    let tuned_cgroup = match Cgroup::create(LIMIT) {
        Ok(cgroup) => cgroup,
        Err(reason) => {
            eprintln!("oom: SKIPPED, no memory cgroup to run the server in: {reason}");
            return;
        }
    };
    let site = tempfile::tempdir().unwrap();
    let started = Instant::now();
    write_site(site.path());
    println!(
        "oom: cgroup {:?} {}, limit {}, cache budget {}, site {} files of {} KiB ({}, written in {:.1} s), {CLIENTS} clients with gzip, {PASSES} pass(es)",
        tuned_cgroup.hierarchy,
        tuned_cgroup.dir.display(),
        mib(LIMIT),
        mib(BUDGET),
        FILES,
        FILE_BYTES >> 10,
        mib((FILES * FILE_BYTES) as u64),
        started.elapsed().as_secs_f64(),
    );

    // Tuner on (auto, the default, said here): it fits the budget under the limit.
    let mut tuned = Confined::start(
        tuned_cgroup,
        site.path(),
        &[("LEANSERVE_TUNER_MODE", "auto")],
    );
    let started = Instant::now();
    let load = drive(&tuned.url).await;
    let seconds = started.elapsed().as_secs_f64();
    let exit = tuned.exited_within(Duration::ZERO);
    let rss = ["VmHWM", "RssAnon", "RssFile"].map(|field| show(tuned.memory(field)));
    let (_, cache) = util::get_json(&format!("{}/admin/cache", tuned.admin), Some(TOKEN)).await;
    let (_, tuner) = util::get_json(&format!("{}/admin/tuner", tuned.admin), Some(TOKEN)).await;
    let outcome = format!(
        "{}; RSS peak (VmHWM) {}, now {} anonymous and {} file-backed; cache budget {} (tuner limit {}, {} changes), {} cached in {} files, {} evictions, {} not admitted",
        exit.map_or_else(|| "alive".to_owned(), |status| format!("exited: {status}")),
        rss[0],
        rss[1],
        rss[2],
        show(cache["budget_bytes"].as_u64()),
        show(tuner["last"]["memory_limit"]["bytes"].as_u64()),
        tuner["decisions"].as_array().map_or(0, Vec::len),
        show(cache["bytes_cached"].as_u64()),
        cache["items"],
        cache["evictions"],
        cache["admission_rejections"],
    );
    println!(
        "{}",
        summary("tuner auto", &load, seconds, &outcome, &tuned.cgroup)
    );
    assert_eq!(exit, None, "with the tuner the server is alive at the end");
    assert_eq!(tuned.cgroup.oom_kills(), 0, "no OOM kill with the tuner");
    assert_eq!(
        (load.answered_2xx, load.other, load.failed),
        ((FILES * PASSES) as u64, 0, 0),
        "every request of every pass answered 2xx: {load:?}"
    );
    assert_eq!(
        tuner["last"]["memory_limit"]["bytes"].as_u64(),
        Some(LIMIT),
        "the tuner read the cgroup's limit: {tuner}"
    );
    assert!(
        cache["budget_bytes"].as_u64().unwrap() < LIMIT,
        "the tuner cut the budget under the limit: {cache}"
    );
    drop(tuned);

    // Tuner off, the same load: the cache outgrows the limit and the kernel kills it.
    let cgroup = Cgroup::create(LIMIT).expect("a second cgroup, as the first was made");
    let mut untuned = Confined::start(cgroup, site.path(), &[("LEANSERVE_TUNER_MODE", "off")]);
    let started = Instant::now();
    let load = drive(&untuned.url).await;
    let seconds = started.elapsed().as_secs_f64();
    let exit = untuned.exited_within(Duration::from_secs(10));
    let outcome = exit.map_or_else(
        || "still running".to_owned(),
        |status| format!("exited: {status}"),
    );
    println!(
        "{}",
        summary("tuner off", &load, seconds, &outcome, &untuned.cgroup)
    );
    assert_eq!(
        exit.and_then(|status| status.signal()),
        Some(libc::SIGKILL),
        "without the tuner the cache outgrows the cgroup and the kernel kills the server: {exit:?}, {load:?}"
    );
    assert!(
        untuned.cgroup.oom_kills() > 0,
        "the kill was the OOM killer's"
    );
}
