//! The process sampler. It owns a `sysinfo::System` and, every `process.sample_interval`,
//! reads this process's resident and virtual memory and CPU usage, publishing the latest
//! sample through a [`ProcessStats`] read handle, so the HTTP side, and later the monitor
//! and the profiler, read it without a mailbox round trip. It answers [`SampleProcess`]
//! (sample now) from admin routes and tests. On restart it starts with a fresh `System`
//! (the first CPU figure after a restart is 0, as sysinfo needs two readings); the last
//! published sample stays readable meanwhile. Sampling reads `/proc/self`, which the
//! kernel serves from memory, so it runs on the actor's thread.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use serde::Serialize;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Takes a sample now and answers it (`None` when the platform offers no figures).
#[derive(Message)]
#[rtype(result = "Option<ProcessSample>")]
pub struct SampleProcess;

/// One reading of this process by the process sampler: its memory and CPU use.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProcessSample {
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// Percent of one CPU since the previous sample.
    pub cpu_percent: f32,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
}

/// The latest sample, shared by the sampler (writer) and any number of readers.
#[derive(Clone, Debug, Default)]
pub struct ProcessStats {
    latest: Arc<RwLock<Option<ProcessSample>>>,
}

impl ProcessStats {
    /// The most recent sample, if one was taken.
    pub fn latest(&self) -> Option<ProcessSample> {
        *self.latest.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, sample: ProcessSample) {
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = Some(sample);
    }
}

impl crate::metrics::Source for ProcessStats {
    fn collect(&self, out: &mut crate::metrics::Collector) {
        if let Some(sample) = self.latest() {
            out.gauge(
                "process_rss_bytes",
                "Resident memory of the process.",
                sample.rss_bytes as f64,
            );
            out.gauge(
                "process_virtual_bytes",
                "Virtual memory size of the process.",
                sample.virtual_bytes as f64,
            );
            out.gauge(
                "process_cpu_percent",
                "CPU use, percent of one core, at the last sample.",
                f64::from(sample.cpu_percent),
            );
        }
    }
}

/// This process's resident memory now, from `/proc/self/status` (`None` where there is
/// no procfs): fresher than the sampler's last sample, for decisions that compare it with
/// other figures read now.
pub fn current_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb << 10)
}

/// Reads this process's memory and CPU figures through sysinfo. The sampler owns one;
/// so does the profiler, for figures fresher than the last sample.
pub struct ProcessProbe {
    /// `None` where sysinfo cannot read processes.
    system: Option<(System, Pid)>,
}

impl ProcessProbe {
    /// A probe of the current process (logs once when the platform has no figures).
    pub fn new() -> Self {
        let system = match (System::new(), sysinfo::get_current_pid()) {
            (Ok(system), Ok(pid)) => Some((system, pid)),
            (Err(error), _) | (_, Err(error)) => {
                log::warn!("process figures unavailable: {error}");
                None
            }
        };
        ProcessProbe { system }
    }

    /// Reads the figures now; the CPU share is since the previous read of this probe.
    pub fn read(&mut self) -> Option<ProcessSample> {
        let (system, pid) = self.system.as_mut()?;
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[*pid]),
            false,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        let process = system.process(*pid)?;
        Some(ProcessSample {
            rss_bytes: process.memory(),
            virtual_bytes: process.virtual_memory(),
            cpu_percent: process.cpu_usage(),
            taken_at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
        })
    }
}

impl Default for ProcessProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// The sampler actor (see the module docs).
pub struct ProcessSampler {
    interval: Duration,
    stats: ProcessStats,
    probe: ProcessProbe,
}

impl ProcessSampler {
    /// A sampler publishing into `stats` every `interval`.
    pub fn new(interval: Duration, stats: ProcessStats) -> Self {
        ProcessSampler {
            interval,
            stats,
            probe: ProcessProbe::new(),
        }
    }

    fn sample(&mut self) -> Option<ProcessSample> {
        let sample = self.probe.read()?;
        self.stats.publish(sample);
        Some(sample)
    }
}

impl Actor for ProcessSampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!("process sampler: every {:?}", self.interval);
        self.sample();
        ctx.run_interval(self.interval, |sampler, _| {
            sampler.sample();
        });
    }
}

impl Handler<SampleProcess> for ProcessSampler {
    type Result = Option<ProcessSample>;

    fn handle(&mut self, _: SampleProcess, _: &mut Context<Self>) -> Self::Result {
        self.sample()
    }
}

/// The process sampler as the runtime holds it: the actor and its latest sample.
#[derive(Clone)]
pub(crate) struct ProcessHandle {
    actor: crate::supervisor::Handle<ProcessSampler>,
    stats: ProcessStats,
}

impl ProcessHandle {
    /// The `process` child, sampling every `opts.sample_interval`.
    pub(crate) fn child(
        opts: &crate::config::ProcessOpts,
    ) -> (crate::supervisor::ChildSpec, ProcessHandle) {
        let (interval, stats) = (opts.sample_interval, ProcessStats::default());
        let sampled = stats.clone();
        let (spec, actor) = crate::supervisor::ChildSpec::worker("process", move || {
            ProcessSampler::new(interval, sampled.clone())
        });
        (spec, ProcessHandle { actor, stats })
    }

    /// The samples, read without a message.
    pub(crate) fn stats(&self) -> &ProcessStats {
        &self.stats
    }

    /// Takes a sample now.
    pub(crate) async fn sample(
        &self,
    ) -> Result<Option<ProcessSample>, crate::supervisor::CallError> {
        self.actor.send(SampleProcess).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn process_sampler_publishes_real_figures() {
        let stats = ProcessStats::default();
        let sampler = ProcessSampler::new(Duration::from_secs(60), stats.clone()).start();
        let sample = sampler
            .send(SampleProcess)
            .await
            .unwrap()
            .expect("linux has figures");
        // A test binary with actix loaded holds at least a megabyte resident.
        assert!(sample.rss_bytes > 1 << 20, "{sample:?}");
        assert!(sample.virtual_bytes >= sample.rss_bytes, "{sample:?}");
        assert_eq!(stats.latest(), Some(sample));
        let now = current_rss().expect("linux has procfs");
        assert!(
            now > 1 << 20 && now.abs_diff(sample.rss_bytes) < 64 << 20,
            "{now}"
        );
    }
}
