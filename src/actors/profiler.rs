//! The memory profiler. Every `profiler.interval` it takes a [`Snapshot`]: jemalloc's
//! figures (allocated, active, resident, mapped, retained, metadata), the process's
//! resident and virtual size, and the bytes each subsystem accounts for (a
//! [`MemoryAccount`], such as the file cache). Snapshots live in a bounded ring held by
//! [`ProfilerShared`], outside the actor, so a restarted profiler keeps its history; each
//! has a sequence number and an optional label, and two can be compared figure by figure.
//!
//! It also captures heap profiles (jemalloc's sampled heap, in pprof format) on the
//! blocking pool, one at a time, either into `profiler.profiles_dir` or answered directly
//! (for `GET /debug/pprof/heap`).
//!
//! What the profiler reports is only what the allocator can tell: without jemalloc as
//! the global allocator (an embedding application that keeps its own) the heap figures
//! are `null` and listed in [`MemoryStats::unavailable`], and heap profiles are refused.
//! The memory threshold (`MEMORY_THRESHOLD_MB`) is judged on resident memory, as the
//! monitor's `memory_high` and `memory_critical` alert rules judge it.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use bytes::Bytes;
use serde::Serialize;

use crate::actors::process::ProcessProbe;
use crate::alloc::{self, Allocator, HeapProfiling, HeapStats, ProfileError};
use crate::config::ProfilerOpts;
use crate::metrics::{Collector, Source};
use crate::supervisor::CallError;

pub use crate::metrics::MemoryAccount;

/// Produces a heap profile in pprof format; [`alloc::dump_pprof`] outside tests.
pub type Dumper = Arc<dyn Fn() -> Result<Vec<u8>, ProfileError> + Send + Sync>;

/// Takes a snapshot now, with an optional label, and keeps it in the ring.
#[derive(Message)]
#[rtype(result = "Result<Snapshot, ProfilerError>")]
pub struct TakeSnapshot {
    pub label: Option<String>,
}

/// Current memory figures, formatted in MB.
#[derive(Message)]
#[rtype(result = "MemoryStats")]
pub struct GetMemoryStats;

/// Compares two kept snapshots, each named by a [`SnapshotRef`]'s text.
#[derive(Message)]
#[rtype(result = "Result<Comparison, ProfilerError>")]
pub struct CompareSnapshots {
    pub a: String,
    pub b: String,
}

/// Captures a heap profile into the profiles directory (and a snapshot with the same
/// label); answers the file written.
#[derive(Message)]
#[rtype(result = "Result<CapturedProfile, ProfilerError>")]
pub struct CaptureHeapProfile {
    pub label: Option<String>,
}

/// Captures a heap profile and answers its bytes (gzipped pprof protobuf).
#[derive(Message)]
#[rtype(result = "Result<Bytes, ProfilerError>")]
pub struct HeapProfile;

/// Why a profiler request failed; the admin routes answer each with its own HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfilerError {
    /// A snapshot label that is empty, too long, has other characters or is `latest`.
    #[error(
        "invalid label {0:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter (\"latest\" is reserved)"
    )]
    InvalidLabel(String),
    /// No kept snapshot has this index or label.
    #[error(
        "no snapshot {0:?} is kept: name one by its index, its label, or \"latest\" (see /admin/profiler/snapshots)"
    )]
    UnknownSnapshot(String),
    /// Another heap profile is being captured.
    #[error("a heap profile is being captured; try again when it is done")]
    Busy,
    /// jemalloc could not give a heap profile (off, unavailable, or the dump failed).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// `profiler.profiles_dir` cannot be created or written.
    #[error("profiles directory {}: {reason}", path.display())]
    ProfilesDir {
        /// The configured `profiler.profiles_dir`.
        path: PathBuf,
        /// The operating system's answer.
        reason: String,
    },
    /// The profile file could not be written.
    #[error("cannot write the heap profile to {}: {reason}", path.display())]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The operating system's answer.
        reason: String,
    },
    /// The profiler actor did not answer (restarting past the call timeout, or stopped).
    #[error(transparent)]
    Unavailable(#[from] CallError),
}

/// One reading of the process's memory, kept by the profiler: jemalloc's figures, RSS,
/// virtual size and what each subsystem accounts for.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Sequence number, from 1, counted since the runtime started.
    pub index: u64,
    /// The label it was taken with, by which a request can name it (`None`: unlabelled).
    pub label: Option<String>,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// The same instant in RFC 3339 (UTC).
    pub taken_at: String,
    /// jemalloc's figures; `None` when jemalloc is not the global allocator.
    pub heap: Option<HeapStats>,
    /// The process's resident set size, in bytes (`None`: the platform offers no process
    /// figures).
    pub rss_bytes: Option<u64>,
    /// The process's virtual size, in bytes (`None`: the platform offers no process figures).
    pub virtual_bytes: Option<u64>,
    /// Bytes each registered subsystem accounts for.
    pub accounted: BTreeMap<String, u64>,
}

impl Snapshot {
    /// Every figure by name, in bytes (`None`: unavailable).
    pub fn figures(&self) -> Vec<(String, Option<u64>)> {
        let heap = |pick: fn(&HeapStats) -> u64| self.heap.as_ref().map(pick);
        let mut figures = vec![
            ("heap_allocated".to_owned(), heap(|h| h.allocated)),
            ("heap_active".to_owned(), heap(|h| h.active)),
            ("heap_resident".to_owned(), heap(|h| h.resident)),
            ("heap_mapped".to_owned(), heap(|h| h.mapped)),
            ("heap_retained".to_owned(), heap(|h| h.retained)),
            ("heap_metadata".to_owned(), heap(|h| h.metadata)),
            ("rss".to_owned(), self.rss_bytes),
            ("virtual".to_owned(), self.virtual_bytes),
        ];
        figures.extend(
            self.accounted
                .iter()
                .map(|(name, bytes)| (format!("accounted.{name}"), Some(*bytes))),
        );
        figures
    }
}

/// How a request names a kept snapshot: `latest`, an index, or a label (the newest
/// snapshot carrying it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRef {
    Latest,
    Index(u64),
    Label(String),
}

impl SnapshotRef {
    /// Reads a reference; labels start with a letter, so digits always mean an index.
    pub fn parse(text: &str) -> Result<SnapshotRef, ProfilerError> {
        let text = text.trim();
        if text == "latest" {
            Ok(SnapshotRef::Latest)
        } else if let Ok(index) = text.parse() {
            Ok(SnapshotRef::Index(index))
        } else {
            check_label(text).map(SnapshotRef::Label)
        }
    }
}

/// Checks a label: 1 to 64 of `[A-Za-z0-9._-]`, starting with a letter, not `latest`.
pub fn check_label(label: &str) -> Result<String, ProfilerError> {
    let valid = (1..=64).contains(&label.len())
        && label.starts_with(|c: char| c.is_ascii_alphabetic())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && label != "latest";
    if valid {
        Ok(label.to_owned())
    } else {
        Err(ProfilerError::InvalidLabel(label.to_owned()))
    }
}

/// One figure of a snapshot comparison: its value in both snapshots and the change.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Delta {
    /// The figure's name, as [`Snapshot::figures`] gives it (`heap_allocated`, `rss`,
    /// `accounted.<subsystem>`...).
    pub figure: String,
    /// The figure in the first snapshot, in bytes.
    pub a_bytes: u64,
    /// The figure in the second snapshot, in bytes.
    pub b_bytes: u64,
    /// `b - a`, in bytes.
    pub delta_bytes: i64,
    /// `b - a` in MB (2^20 bytes), rounded to two decimals.
    pub delta_mb: f64,
    /// `(b - a) / a` in percent; `None` when `a` is 0.
    pub percent: Option<f64>,
}

/// Two memory snapshots and the change of every figure both have.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Comparison {
    /// The snapshot compared from (the baseline).
    pub a: Snapshot,
    /// The snapshot compared to it.
    pub b: Snapshot,
    /// One delta per figure both snapshots have, in the order of [`Snapshot::figures`].
    pub deltas: Vec<Delta>,
}

/// Compares `a` to `b`, figure by figure; figures missing in either are left out.
pub fn compare(a: &Snapshot, b: &Snapshot) -> Comparison {
    let later: BTreeMap<String, Option<u64>> = b.figures().into_iter().collect();
    let deltas = a
        .figures()
        .into_iter()
        .filter_map(|(figure, a_bytes)| {
            let (a_bytes, b_bytes) = (a_bytes?, (*later.get(&figure)?)?);
            let delta_bytes = b_bytes as i64 - a_bytes as i64;
            Some(Delta {
                figure,
                a_bytes,
                b_bytes,
                delta_bytes,
                delta_mb: round2(delta_bytes as f64 / MB),
                percent: (a_bytes > 0).then(|| round2(delta_bytes as f64 * 100.0 / a_bytes as f64)),
            })
        })
        .collect();
    Comparison {
        a: a.clone(),
        b: b.clone(),
        deltas,
    }
}

/// The profiler's formatted statistics (MB = 2^20 bytes, two decimals).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MemoryStats {
    /// The allocator serving the Rust heap.
    pub allocator: Allocator,
    /// Whether heap profiles can be taken.
    pub heap_profiling: HeapProfiling,
    /// jemalloc's `stats.allocated`: bytes the application holds.
    pub heap_alloc_mb: Option<f64>,
    /// jemalloc's `stats.active`: pages in active use.
    pub heap_active_mb: Option<f64>,
    /// jemalloc's `stats.resident`: pages resident in memory.
    pub heap_resident_mb: Option<f64>,
    /// jemalloc's `stats.mapped`: extents mapped.
    pub heap_mapped_mb: Option<f64>,
    /// jemalloc's `stats.retained`: address space kept for reuse, not resident.
    pub heap_retained_mb: Option<f64>,
    /// jemalloc's `stats.metadata`: its own bookkeeping.
    pub heap_metadata_mb: Option<f64>,
    /// The process's resident set size.
    pub rss_mb: Option<f64>,
    /// The process's virtual size.
    pub virtual_mb: Option<f64>,
    /// Megabytes each subsystem accounts for.
    pub accounted_mb: BTreeMap<String, f64>,
    /// `profiler.memory_threshold_mb` (`MEMORY_THRESHOLD_MB`): the resident memory
    /// threshold, in MB.
    pub threshold_mb: u64,
    /// Resident memory is above the threshold.
    pub over_threshold: bool,
    /// Figures that are `null` above, and why.
    pub unavailable: Vec<String>,
    /// Snapshots in the ring now.
    pub snapshots_kept: usize,
    /// Seconds between automatic snapshots.
    pub snapshot_interval_seconds: u64,
    /// Heap profiles written since start.
    pub profiles_captured: u64,
    /// Where heap profiles are written.
    pub profiles_dir: PathBuf,
}

const MB: f64 = 1024.0 * 1024.0;

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn mb(bytes: u64) -> f64 {
    round2(bytes as f64 / MB)
}

/// State that outlives one incarnation of the profiler: the snapshot ring, counters and
/// the capture lock. Cheap to clone; also the profiler's metrics [`Source`].
#[derive(Clone)]
pub struct ProfilerShared {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    opts: ProfilerOpts,
    accounts: Vec<Arc<dyn MemoryAccount>>,
    ring: Mutex<VecDeque<Snapshot>>,
    next_index: AtomicU64,
    captured: AtomicU64,
    capturing: AtomicBool,
    dumper: Dumper,
}

impl ProfilerShared {
    /// Shared state for a profiler with `opts`, reading `accounts`, capturing with
    /// [`alloc::dump_pprof`].
    pub fn new(opts: ProfilerOpts, accounts: Vec<Arc<dyn MemoryAccount>>) -> Self {
        Self::with_dumper(opts, accounts, Arc::new(alloc::dump_pprof))
    }

    /// As [`ProfilerShared::new`] with another way of producing profiles.
    pub fn with_dumper(
        opts: ProfilerOpts,
        accounts: Vec<Arc<dyn MemoryAccount>>,
        dumper: Dumper,
    ) -> Self {
        ProfilerShared {
            inner: Arc::new(SharedInner {
                opts,
                accounts,
                ring: Mutex::new(VecDeque::new()),
                next_index: AtomicU64::new(1),
                captured: AtomicU64::new(0),
                capturing: AtomicBool::new(false),
                dumper,
            }),
        }
    }

    /// The kept snapshots, oldest first.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.ring().iter().cloned().collect()
    }

    /// The kept snapshot `reference` names.
    pub fn find(&self, reference: &SnapshotRef) -> Option<Snapshot> {
        let ring = self.ring();
        match reference {
            SnapshotRef::Latest => ring.back(),
            SnapshotRef::Index(index) => ring.iter().find(|s| s.index == *index),
            SnapshotRef::Label(label) => ring
                .iter()
                .rev()
                .find(|s| s.label.as_deref() == Some(label)),
        }
        .cloned()
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Snapshot>> {
        self.inner
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, snapshot: Snapshot) {
        let mut ring = self.ring();
        while ring.len() >= self.inner.opts.snapshots {
            ring.pop_front();
        }
        ring.push_back(snapshot);
    }

    /// Claims the capture slot; `None` while another capture runs.
    fn claim(&self) -> Option<CaptureClaim> {
        self.inner
            .capturing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| CaptureClaim(self.clone()))
    }

    fn accounted(&self) -> BTreeMap<String, u64> {
        self.inner
            .accounts
            .iter()
            .map(|account| (account.name().to_owned(), account.accounted_bytes()))
            .collect()
    }
}

/// Held while a capture runs; frees the slot when dropped (a panicking dump too).
struct CaptureClaim(ProfilerShared);

impl Drop for CaptureClaim {
    fn drop(&mut self) {
        self.0.inner.capturing.store(false, Ordering::Release);
    }
}

impl Source for ProfilerShared {
    fn collect(&self, out: &mut Collector) {
        if let Some(heap) = alloc::heap_stats() {
            let figures: [(&'static str, &'static str, u64); 6] = [
                (
                    "heap_allocated_bytes",
                    "Bytes the application holds (jemalloc stats.allocated).",
                    heap.allocated,
                ),
                (
                    "heap_active_bytes",
                    "Bytes in active pages (jemalloc stats.active).",
                    heap.active,
                ),
                (
                    "heap_resident_bytes",
                    "Bytes in resident pages the allocator maps (jemalloc stats.resident).",
                    heap.resident,
                ),
                (
                    "heap_mapped_bytes",
                    "Bytes in extents the allocator maps (jemalloc stats.mapped).",
                    heap.mapped,
                ),
                (
                    "heap_retained_bytes",
                    "Bytes of virtual memory the allocator keeps for reuse (jemalloc stats.retained).",
                    heap.retained,
                ),
                (
                    "heap_metadata_bytes",
                    "Bytes of the allocator's own metadata (jemalloc stats.metadata).",
                    heap.metadata,
                ),
            ];
            for (name, help, value) in figures {
                out.gauge(name, help, value as f64);
            }
        }
        out.labelled(
            "memory_accounted_bytes",
            "Bytes each subsystem holds by its own accounting.",
            crate::metrics::Kind::Gauge,
            "subsystem",
            self.accounted()
                .into_iter()
                .map(|(name, bytes)| (name, bytes as f64)),
            |name| Some(format!("memory_accounted_bytes_{name}")),
        );
        out.counter(
            "heap_profiles_captured_total",
            "Heap profiles captured since start.",
            self.inner.captured.load(Ordering::Relaxed) as f64,
        );
    }
}

/// The profiler actor (see the module docs).
pub struct Profiler {
    shared: ProfilerShared,
    probe: ProcessProbe,
}

impl Profiler {
    /// A profiler keeping its snapshots in `shared`.
    pub fn new(shared: ProfilerShared) -> Self {
        Profiler {
            shared,
            probe: ProcessProbe::new(),
        }
    }

    fn snapshot(&mut self, label: Option<String>) -> Snapshot {
        let now = jiff::Timestamp::now();
        let process = self.probe.read();
        let snapshot = Snapshot {
            index: self.shared.inner.next_index.fetch_add(1, Ordering::Relaxed),
            label,
            taken_at_unix_ms: u64::try_from(now.as_millisecond()).unwrap_or(0),
            taken_at: now
                .round(jiff::Unit::Millisecond)
                .unwrap_or(now)
                .to_string(),
            heap: alloc::heap_stats(),
            rss_bytes: process.map(|p| p.rss_bytes),
            virtual_bytes: process.map(|p| p.virtual_bytes),
            accounted: self.shared.accounted(),
        };
        let threshold = self.shared.inner.opts.memory_threshold_mb;
        if let Some(rss) = snapshot.rss_bytes
            && rss > threshold << 20
        {
            log::warn!(
                "profiler: resident memory {:.1} MB is above MEMORY_THRESHOLD_MB ({threshold})",
                mb(rss)
            );
        }
        self.shared.keep(snapshot.clone());
        snapshot
    }

    fn stats(&mut self) -> MemoryStats {
        let process = self.probe.read();
        let heap = alloc::heap_stats();
        let opts = &self.shared.inner.opts;
        let mut unavailable = Vec::new();
        let allocator = alloc::allocator();
        if heap.is_none() {
            unavailable.push(format!(
                "heap_*_mb: jemalloc is not the global allocator (allocator: {allocator:?})"
            ));
        }
        if process.is_none() {
            unavailable.push("rss_mb, virtual_mb: the platform offers no process figures".into());
        }
        let heap_mb = |pick: fn(&HeapStats) -> u64| heap.as_ref().map(|h| mb(pick(h)));
        let rss = process.map(|p| p.rss_bytes);
        MemoryStats {
            allocator,
            heap_profiling: alloc::heap_profiling(),
            heap_alloc_mb: heap_mb(|h| h.allocated),
            heap_active_mb: heap_mb(|h| h.active),
            heap_resident_mb: heap_mb(|h| h.resident),
            heap_mapped_mb: heap_mb(|h| h.mapped),
            heap_retained_mb: heap_mb(|h| h.retained),
            heap_metadata_mb: heap_mb(|h| h.metadata),
            rss_mb: rss.map(mb),
            virtual_mb: process.map(|p| mb(p.virtual_bytes)),
            accounted_mb: self
                .shared
                .accounted()
                .into_iter()
                .map(|(name, bytes)| (name, mb(bytes)))
                .collect(),
            threshold_mb: opts.memory_threshold_mb,
            over_threshold: rss.is_some_and(|rss| rss > opts.memory_threshold_mb << 20),
            unavailable,
            snapshots_kept: self.shared.ring().len(),
            snapshot_interval_seconds: opts.interval.as_secs(),
            profiles_captured: self.shared.inner.captured.load(Ordering::Relaxed),
            profiles_dir: opts.profiles_dir.clone(),
        }
    }
}

impl Actor for Profiler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let interval = self.shared.inner.opts.interval;
        log::info!("profiler: a memory snapshot every {interval:?}");
        self.snapshot(None);
        ctx.run_interval(interval, |profiler, _| {
            profiler.snapshot(None);
        });
    }
}

impl Handler<TakeSnapshot> for Profiler {
    type Result = Result<Snapshot, ProfilerError>;

    fn handle(&mut self, message: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        let label = message.label.as_deref().map(check_label).transpose()?;
        Ok(self.snapshot(label))
    }
}

impl Handler<GetMemoryStats> for Profiler {
    type Result = MessageResult<GetMemoryStats>;

    fn handle(&mut self, _: GetMemoryStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<CompareSnapshots> for Profiler {
    type Result = Result<Comparison, ProfilerError>;

    fn handle(&mut self, message: CompareSnapshots, _: &mut Context<Self>) -> Self::Result {
        let find = |text: &str| {
            let reference = SnapshotRef::parse(text)?;
            self.shared
                .find(&reference)
                .ok_or_else(|| ProfilerError::UnknownSnapshot(text.to_owned()))
        };
        Ok(compare(&find(&message.a)?, &find(&message.b)?))
    }
}

impl Handler<HeapProfile> for Profiler {
    type Result = ResponseFuture<Result<Bytes, ProfilerError>>;

    fn handle(&mut self, _: HeapProfile, _: &mut Context<Self>) -> Self::Result {
        let claim = self.shared.claim();
        Box::pin(async move {
            let claim = claim.ok_or(ProfilerError::Busy)?;
            let profile = dump(&claim.0).await?;
            claim.0.inner.captured.fetch_add(1, Ordering::Relaxed);
            Ok(Bytes::from(profile))
        })
    }
}

impl Handler<CaptureHeapProfile> for Profiler {
    type Result = ResponseFuture<Result<CapturedProfile, ProfilerError>>;

    fn handle(&mut self, message: CaptureHeapProfile, _: &mut Context<Self>) -> Self::Result {
        let label = message.label.as_deref().map(check_label).transpose();
        let claim = self.shared.claim();
        // The snapshot is taken here, on the actor's thread, before the dump starts.
        let snapshot = match (&label, &claim) {
            (Ok(label), Some(_)) => Some(self.snapshot(label.clone())),
            _ => None,
        };
        Box::pin(async move {
            let label = label?;
            let claim = claim.ok_or(ProfilerError::Busy)?;
            let dir = claim.0.inner.opts.profiles_dir.clone();
            // The folder may sit on a slow disk: checked and made on the blocking pool.
            let checking = dir.clone();
            actix_web::rt::task::spawn_blocking(move || prepare_dir(&checking))
                .await
                .map_err(|error| ProfilerError::ProfilesDir {
                    path: dir.clone(),
                    reason: error.to_string(),
                })??;
            let profile = dump(&claim.0).await?;
            let taken_at = jiff::Timestamp::now();
            let name = profile_file_name(taken_at, label.as_deref());
            let path = dir.join(name);
            let bytes = profile.len() as u64;
            let written = path.clone();
            actix_web::rt::task::spawn_blocking(move || write_new(&written, &profile))
                .await
                .map_err(|error| ProfilerError::Write {
                    path: path.clone(),
                    reason: error.to_string(),
                })??;
            claim.0.inner.captured.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "profiler: heap profile written to {} ({bytes} bytes)",
                path.display()
            );
            Ok(CapturedProfile {
                path,
                bytes,
                label,
                snapshot: snapshot.map(|s| s.index),
            })
        })
    }
}

/// A heap profile written to disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CapturedProfile {
    /// The file written: `heap-<UTC time>[-<label>].pb.gz` in `profiler.profiles_dir`.
    pub path: PathBuf,
    /// Size of the file, in bytes (a gzip-compressed pprof profile).
    pub bytes: u64,
    /// The label asked for with it (`None`: unlabelled).
    pub label: Option<String>,
    /// Index of the snapshot taken with it (same label).
    pub snapshot: Option<u64>,
}

/// `heap-<UTC time to the millisecond>[-<label>].pb.gz`, sortable by time.
pub fn profile_file_name(at: jiff::Timestamp, label: Option<&str>) -> String {
    let time = at
        .strftime("%Y%m%dT%H%M%S%.3fZ")
        .to_string()
        .replace('.', "");
    match label {
        Some(label) => format!("heap-{time}-{label}.pb.gz"),
        None => format!("heap-{time}.pb.gz"),
    }
}

async fn dump(shared: &ProfilerShared) -> Result<Vec<u8>, ProfilerError> {
    let dumper = shared.inner.dumper.clone();
    actix_web::rt::task::spawn_blocking(move || dumper())
        .await
        .map_err(|error| ProfileError::Dump(format!("the dump panicked: {error}")))?
        .map_err(ProfilerError::Profile)
}

/// Creates the profiles directory if missing and checks it is a writable directory.
fn prepare_dir(dir: &Path) -> Result<(), ProfilerError> {
    let fail = |reason: String| ProfilerError::ProfilesDir {
        path: dir.to_owned(),
        reason,
    };
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|error| fail(format!("cannot create it: {error}")))?;
    }
    let metadata = fs::metadata(dir).map_err(|error| fail(error.to_string()))?;
    if !metadata.is_dir() {
        return Err(fail("not a directory".into()));
    }
    if metadata.permissions().readonly() {
        return Err(fail("not writable".into()));
    }
    Ok(())
}

/// Writes `bytes` to a new file at `path` (never replacing one), through a temporary
/// name so a reader never sees half a profile.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ProfilerError> {
    let fail = |error: std::io::Error| ProfilerError::Write {
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let partial = path.with_extension("partial");
    let mut file = fs::File::create_new(&partial).map_err(fail)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(error) = written.and_then(|()| {
        if path.exists() {
            Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a profile with this name exists",
            ))
        } else {
            fs::rename(&partial, path)
        }
    }) {
        let _ = fs::remove_file(&partial);
        return Err(fail(error));
    }
    Ok(())
}

/// The profiler as the runtime holds it: the actor and the state that outlives it.
#[derive(Clone)]
pub(crate) struct ProfilerHandle {
    actor: crate::supervisor::Handle<Profiler>,
    shared: ProfilerShared,
}

impl ProfilerHandle {
    /// Switches jemalloc's heap sampling as `opts.heap_profiling` says (for the whole
    /// process: the one thing a runtime sets globally) and makes the `profiler` child
    /// over `accounts`, the subsystems that hold memory on purpose.
    pub(crate) fn start(
        opts: &ProfilerOpts,
        accounts: Vec<Arc<dyn MemoryAccount>>,
    ) -> (crate::supervisor::ChildSpec, ProfilerHandle) {
        match (
            alloc::set_heap_profiling(opts.heap_profiling),
            opts.heap_profiling,
        ) {
            (HeapProfiling::Unavailable { reason }, true) => log::warn!(
                "profiler.heap_profiling is on, but heap profiles are unavailable: {reason}"
            ),
            (state, _) => log::info!("heap profiling: {state:?}"),
        }
        let shared = ProfilerShared::new(opts.clone(), accounts);
        let kept = shared.clone();
        let (spec, actor) =
            crate::supervisor::ChildSpec::worker("profiler", move || Profiler::new(kept.clone()));
        (spec, ProfilerHandle { actor, shared })
    }

    /// The state snapshots and figures are kept in (a metrics source too).
    pub(crate) fn shared(&self) -> &ProfilerShared {
        &self.shared
    }

    /// Current memory figures.
    pub(crate) async fn memory_stats(&self) -> Result<MemoryStats, CallError> {
        self.actor.send(GetMemoryStats).await
    }

    /// Takes and keeps a snapshot.
    pub(crate) async fn take_snapshot(
        &self,
        label: Option<String>,
    ) -> Result<Snapshot, ProfilerError> {
        self.actor.send(TakeSnapshot { label }).await?
    }

    /// Compares two kept snapshots.
    pub(crate) async fn compare(&self, a: String, b: String) -> Result<Comparison, ProfilerError> {
        self.actor.send(CompareSnapshots { a, b }).await?
    }

    /// Captures a heap profile into the profiles folder.
    pub(crate) async fn capture(
        &self,
        label: Option<String>,
    ) -> Result<CapturedProfile, ProfilerError> {
        self.actor.send(CaptureHeapProfile { label }).await?
    }

    /// Captures a heap profile and answers its bytes.
    pub(crate) async fn heap_profile(&self) -> Result<Bytes, ProfilerError> {
        self.actor.send(HeapProfile).await?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn opts(dir: &Path) -> ProfilerOpts {
        ProfilerOpts {
            memory_threshold_mb: 1,
            interval: std::time::Duration::from_secs(3600),
            snapshots: 3,
            heap_profiling: true,
            profiles_dir: dir.to_owned(),
        }
    }

    struct Fixed(u64);

    impl MemoryAccount for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn accounted_bytes(&self) -> u64 {
            self.0
        }
    }

    fn snapshot(index: u64, heap: Option<u64>, accounted: u64) -> Snapshot {
        Snapshot {
            index,
            label: None,
            taken_at_unix_ms: 0,
            taken_at: String::new(),
            heap: heap.map(|allocated| HeapStats {
                allocated,
                ..HeapStats::default()
            }),
            rss_bytes: Some(4 << 20),
            virtual_bytes: None,
            accounted: BTreeMap::from([("file_cache".to_owned(), accounted)]),
        }
    }

    #[test]
    fn profiler_labels_are_checked() {
        for good in ["before", "a", "after-opt_2.1", &"x".repeat(64)] {
            assert_eq!(check_label(good).unwrap(), good);
        }
        for bad in [
            "",
            "1st",
            "latest",
            "has space",
            "../x",
            "é",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(check_label(bad), Err(ProfilerError::InvalidLabel(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn profiler_snapshot_refs_read_index_label_or_latest() {
        assert_eq!(SnapshotRef::parse("latest").unwrap(), SnapshotRef::Latest);
        assert_eq!(SnapshotRef::parse(" 12 ").unwrap(), SnapshotRef::Index(12));
        assert_eq!(
            SnapshotRef::parse("before").unwrap(),
            SnapshotRef::Label("before".into())
        );
        assert!(SnapshotRef::parse("-1").is_err());
        assert!(SnapshotRef::parse("a b").is_err());
    }

    #[test]
    fn profiler_compare_gives_deltas_and_percent_of_figures_both_have() {
        let a = snapshot(1, Some(4 << 20), 0);
        let b = snapshot(2, None, 1 << 20);
        let comparison = compare(&a, &b);
        let figures: Vec<&str> = comparison
            .deltas
            .iter()
            .map(|d| d.figure.as_str())
            .collect();
        // Heap figures are missing in b and virtual in both: left out.
        assert_eq!(figures, ["rss", "accounted.file_cache"]);
        let cache = &comparison.deltas[1];
        assert_eq!(
            (cache.delta_bytes, cache.delta_mb, cache.percent),
            (1 << 20, 1.0, None)
        );
        let c = snapshot(3, Some(3 << 20), 0);
        let heap = &compare(&a, &c).deltas[0];
        assert_eq!(heap.figure, "heap_allocated");
        assert_eq!(
            (heap.delta_bytes, heap.delta_mb, heap.percent),
            (-(1 << 20), -1.0, Some(-25.0))
        );
    }

    #[test]
    fn profiler_file_names_sort_by_time_and_carry_the_label() {
        let at: jiff::Timestamp = "2026-11-27T03:04:05.678Z".parse().unwrap();
        assert_eq!(
            profile_file_name(at, Some("before")),
            "heap-20261127T030405678Z-before.pb.gz"
        );
        assert_eq!(
            profile_file_name(at, None),
            "heap-20261127T030405678Z.pb.gz"
        );
    }

    #[test]
    fn profiler_profiles_dir_is_created_or_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        prepare_dir(&nested).unwrap();
        assert!(nested.is_dir());
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        for bad in [file.clone(), file.join("below")] {
            let error = prepare_dir(&bad).unwrap_err();
            assert!(
                matches!(&error, ProfilerError::ProfilesDir { path, .. } if *path == bad),
                "{error}"
            );
        }
    }

    #[test]
    fn profiler_never_replaces_a_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pb.gz");
        write_new(&path, b"one").unwrap();
        assert!(write_new(&path, b"two").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert!(!dir.path().join("p.pb.partial").exists());
    }

    #[actix_rt::test]
    async fn profiler_keeps_a_bounded_ring_and_reports_what_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let shared = ProfilerShared::new(opts(dir.path()), vec![Arc::new(Fixed(3 << 20))]);
        let profiler = Profiler::new(shared.clone()).start();
        for label in ["one", "two", "three"] {
            let label = Some(label.to_owned());
            profiler
                .send(TakeSnapshot { label })
                .await
                .unwrap()
                .unwrap();
        }
        // The start-up snapshot (index 1) fell out of a ring of three.
        let kept: Vec<(u64, Option<String>)> = shared
            .snapshots()
            .into_iter()
            .map(|s| (s.index, s.label))
            .collect();
        assert_eq!(
            kept,
            [
                (2, Some("one".to_owned())),
                (3, Some("two".to_owned())),
                (4, Some("three".to_owned()))
            ]
        );
        let stats = profiler.send(GetMemoryStats).await.unwrap();
        // Unit tests run on the system allocator: no heap figures, said so.
        assert_eq!(stats.allocator, Allocator::System);
        assert_eq!(stats.heap_alloc_mb, None);
        assert!(stats.unavailable[0].starts_with("heap_*_mb"), "{stats:?}");
        assert_eq!(stats.accounted_mb["fixed"], 3.0);
        assert!(stats.over_threshold, "a test process holds more than 1 MB");
        let error = profiler
            .send(CompareSnapshots {
                a: "1".into(),
                b: "latest".into(),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, ProfilerError::UnknownSnapshot(ref name) if name == "1"));
        let comparison = profiler
            .send(CompareSnapshots {
                a: "two".into(),
                b: "4".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((comparison.a.index, comparison.b.index), (3, 4));
    }

    #[actix_rt::test]
    async fn profiler_refuses_a_second_capture_while_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (release, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let (started_tx, started) = tokio::sync::mpsc::unbounded_channel::<()>();
        let dumper: Dumper = Arc::new(move || {
            started_tx.send(()).unwrap();
            wait.lock().unwrap().recv().unwrap();
            Ok(b"profile".to_vec())
        });
        let shared = ProfilerShared::with_dumper(opts(dir.path()), Vec::new(), dumper);
        let profiler = Profiler::new(shared.clone()).start();
        let first = profiler.send(CaptureHeapProfile {
            label: Some("first".into()),
        });
        let first = actix_rt::spawn(first);
        let mut started = started;
        started.recv().await.unwrap();
        for second in [
            profiler.send(HeapProfile).await.unwrap().map(|_| ()),
            profiler
                .send(CaptureHeapProfile { label: None })
                .await
                .unwrap()
                .map(|_| ()),
        ] {
            assert!(matches!(second, Err(ProfilerError::Busy)), "{second:?}");
        }
        release.send(()).unwrap();
        let captured = first.await.unwrap().unwrap().unwrap();
        assert_eq!(fs::read(&captured.path).unwrap(), b"profile");
        assert_eq!(captured.label.as_deref(), Some("first"));
        assert!(captured.path.starts_with(dir.path()));
        // The slot is free again, and a bad label is refused before any work.
        release.send(()).unwrap();
        assert_eq!(
            profiler.send(HeapProfile).await.unwrap().unwrap(),
            &b"profile"[..]
        );
        let error = profiler
            .send(CaptureHeapProfile {
                label: Some("../etc".into()),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, ProfilerError::InvalidLabel(_)));
        assert_eq!(shared.inner.captured.load(Ordering::Relaxed), 2);
    }
}
