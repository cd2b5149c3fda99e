//! The monitor actor. Every `monitoring.interval` it collects figures from the registered
//! [`Source`]s (it knows none of them by name), keeps a bounded history of samples,
//! evaluates the alert rules and announces state changes (log, optional webhook).
//!
//! It publishes through a [`MonitorReader`] that the HTTP side reads without messages:
//! the latest sample with its metric families (`/metrics`, `/monitoring`), the history
//! (`/monitoring/history`) and the alert states (`/monitoring/alerts`). It answers
//! [`CheckAlerts`] (the firing alerts) from `Subsystems`. A restart keeps both the
//! published history (the record of what happened, which windowed rules need to see,
//! for instance, the restart that just happened) and the alert states with their timers
//! and cooldowns: a condition that holds across restarts fires, and notifies the
//! webhook, once.

mod webhook;

pub use webhook::{Webhook, payload};

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use serde::Serialize;

use crate::alerts::{Rule, State, Step, Tracker};
use crate::config::MonitoringOpts;
use crate::metrics::{ChildFigure, Collector, Family, Source};

// ---- messages ------------------------------------------------------------------------

/// Answers the alerts firing now.
#[derive(Message)]
#[rtype(result = "Vec<AlertStatus>")]
pub struct CheckAlerts;

/// Collects and evaluates now, outside the interval (tests, and a fresh sample on demand).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CollectNow;

// ---- what the monitor publishes ------------------------------------------------------

/// One collection.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub timestamp_ms: u64,
    /// The flat JSON view of every figure.
    pub metrics: Figures,
    pub children: Vec<ChildFigure>,
    /// The families, for `/metrics`: the latest sample's only (the history keeps the
    /// flat figures; with every family a sample took 62 KB, 45 MB for an hour's history).
    #[serde(skip)]
    pub families: Arc<Vec<Family>>,
}

/// The flat figures of one collection, by name. The names are shared with the samples
/// before it while the set stays the same (it changes when a source appears), so a kept
/// sample costs 8 bytes a figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Sorted.
    names: Arc<[Box<str>]>,
    values: Box<[f64]>,
}

impl Figures {
    /// `flat`'s figures, sharing `previous`'s names when they are the same.
    fn new(flat: BTreeMap<String, f64>, previous: Option<&Figures>) -> Figures {
        let same = previous.filter(|previous| {
            previous.names.len() == flat.len()
                && previous
                    .names
                    .iter()
                    .zip(flat.keys())
                    .all(|(a, b)| **a == **b)
        });
        let names = match same {
            Some(previous) => Arc::clone(&previous.names),
            None => flat.keys().map(|name| name.as_str().into()).collect(),
        };
        Figures {
            names,
            values: flat.into_values().collect(),
        }
    }

    /// The figure named `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .binary_search_by(|probe| (**probe).cmp(name))
            .ok()
            .map(|index| self.values[index])
    }

    /// Every figure, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names
            .iter()
            .map(|name| &**name)
            .zip(self.values.iter().copied())
    }
}

impl Serialize for Figures {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// An alert rule and its state, as `/monitoring/alerts` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertStatus {
    /// The rule's unique name (the Alertmanager `alertname`).
    pub name: String,
    /// How urgent the alert is.
    pub severity: crate::alerts::Severity,
    /// The rule's state now.
    pub state: State,
    /// The figure of the JSON view (`/monitoring`) the rule watches, e.g. `cache_hit_ratio`.
    pub metric: String,
    /// How the figure is compared with `threshold`.
    pub comparison: crate::alerts::Comparison,
    /// The value the figure is compared with, in the figure's own unit.
    pub threshold: f64,
    /// The figure at the last evaluation (its increase for windowed rules).
    pub value: Option<f64>,
    /// What the alert says when it fires.
    pub message: String,
    /// When the current state began, in milliseconds since the epoch.
    pub since_ms: u64,
}

#[derive(Debug, Default)]
struct Published {
    history: VecDeque<Arc<Sample>>,
    alerts: Vec<AlertStatus>,
    /// The rules' states as of the last collection, for the next incarnation.
    trackers: Vec<Tracker>,
}

/// The HTTP side's view of the monitor.
#[derive(Clone, Debug)]
pub struct MonitorReader {
    published: Arc<RwLock<Published>>,
    interval: Duration,
}

impl MonitorReader {
    /// A reader for a monitor collecting every `interval`.
    pub fn new(interval: Duration) -> Self {
        MonitorReader {
            published: Arc::default(),
            interval,
        }
    }

    /// The collection interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The latest sample, once there is one.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        self.read().history.back().cloned()
    }

    /// Every kept sample, oldest first.
    pub fn history(&self) -> Vec<Arc<Sample>> {
        self.read().history.iter().cloned().collect()
    }

    /// Every rule with its state.
    pub fn alerts(&self) -> Vec<AlertStatus> {
        self.read().alerts.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        self.published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Published> {
        self.published
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

// ---- the actor -----------------------------------------------------------------------

/// The monitor actor (see the module docs).
pub struct Monitor {
    reader: MonitorReader,
    sources: Vec<Arc<dyn Source>>,
    rules: Vec<Rule>,
    trackers: Vec<Tracker>,
    history_len: usize,
    webhook: Option<Webhook>,
    /// (when, requests_total) at the previous collection, for requests per second.
    last_requests: Option<(Instant, f64)>,
}

impl Monitor {
    /// A monitor publishing through `reader`, collecting from `sources`.
    pub fn new(
        reader: MonitorReader,
        sources: Vec<Arc<dyn Source>>,
        opts: &MonitoringOpts,
    ) -> Self {
        let now = Instant::now();
        // A restarted monitor carries on from its predecessor's last collection.
        let saved = reader.read().trackers.clone();
        let trackers = if saved.len() == opts.alerts.len() {
            saved
        } else {
            opts.alerts.iter().map(|_| Tracker::new(now)).collect()
        };
        Monitor {
            reader,
            sources,
            trackers,
            rules: opts.alerts.clone(),
            history_len: opts.history_len,
            webhook: opts.webhook_url.as_ref().map(|url| Webhook {
                url: url.clone(),
                timeout: opts.webhook_timeout,
                retries: opts.webhook_retries,
            }),
            last_requests: None,
        }
    }

    fn collect(&mut self) {
        let now = Instant::now();
        let now_ms = unix_ms(SystemTime::now());
        let mut out = Collector::default();
        for source in &self.sources {
            source.collect(&mut out);
        }
        let mut metrics = out.flat();
        let requests = metrics.get("requests_total").copied().unwrap_or(0.0);
        let rate = match self.last_requests {
            Some((then, before)) => {
                let seconds = now.saturating_duration_since(then).as_secs_f64();
                if seconds > 0.0 {
                    (requests - before).max(0.0) / seconds
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last_requests = Some((now, requests));
        metrics.insert("requests_per_second".into(), rate);
        let children = out.children().to_vec();
        let previous = self.reader.latest();
        let sample = Arc::new(Sample {
            timestamp_ms: now_ms,
            metrics: Figures::new(metrics, previous.as_ref().map(|sample| &sample.metrics)),
            children,
            families: Arc::new(out.into_families()),
        });
        let history = self.reader.history();
        // `min_requests` guards count static file requests (cache lookups): health checks
        // and admin calls say nothing about the hit ratio.
        let lookups = ["cache_hits_total", "cache_misses_total"]
            .iter()
            .filter_map(|key| sample.metrics.get(key))
            .sum();
        let alerts = self.evaluate(&sample, &history, lookups, now, now_ms);
        let mut published = self.reader.write();
        if let Some(before) = published.history.back_mut() {
            *before = Arc::new(Sample {
                families: Arc::default(),
                ..Sample::clone(before)
            });
        }
        published.history.push_back(sample);
        while published.history.len() > self.history_len {
            published.history.pop_front();
        }
        published.alerts = alerts;
        published.trackers = self.trackers.clone();
    }

    fn evaluate(
        &mut self,
        sample: &Sample,
        history: &[Arc<Sample>],
        requests: f64,
        now: Instant,
        now_ms: u64,
    ) -> Vec<AlertStatus> {
        let mut statuses = Vec::with_capacity(self.rules.len());
        let webhook = self.webhook.as_ref();
        for (rule, tracker) in self.rules.iter().zip(&mut self.trackers) {
            let current = sample.metrics.get(&rule.metric);
            let value = match rule.over {
                None => current,
                Some(window) => {
                    let cutoff = now_ms.saturating_sub(window.as_millis() as u64);
                    // The increase since the newest sample at or before the window's start
                    // (or the oldest kept one).
                    let base = history
                        .iter()
                        .rev()
                        .find(|old| old.timestamp_ms <= cutoff)
                        .or_else(|| history.first())
                        .and_then(|old| old.metrics.get(&rule.metric));
                    match (current, base) {
                        (Some(now), Some(then)) => Some((now - then).max(0.0)),
                        (Some(_), None) => Some(0.0),
                        _ => None,
                    }
                }
            };
            match tracker.step(rule, value, requests, now) {
                Step::Changed { from, to, announce } => {
                    let line = format!(
                        "alert `{}` ({}) {from} -> {to}: {} [{} = {}]",
                        rule.name,
                        rule.severity,
                        rule.message,
                        rule.metric,
                        value.map_or("none".into(), |v| v.to_string())
                    );
                    match to {
                        State::Firing => log::warn!("{line}"),
                        _ => log::info!("{line}"),
                    }
                    if announce {
                        notify(webhook, rule, to, value, tracker, now, now_ms);
                    }
                }
                Step::Reminder => {
                    log::warn!("alert `{}` still firing: {}", rule.name, rule.message);
                    notify(webhook, rule, State::Firing, value, tracker, now, now_ms);
                }
                Step::Quiet => {}
            }
            statuses.push(AlertStatus {
                name: rule.name.clone(),
                severity: rule.severity,
                state: tracker.state,
                metric: rule.metric.clone(),
                comparison: rule.comparison,
                threshold: rule.threshold,
                value,
                message: rule.message.clone(),
                since_ms: since_ms(tracker, now, now_ms),
            });
        }
        statuses
    }
}

/// Posts an announcement to the webhook, if one is configured (the log line is written
/// by the caller).
fn notify(
    webhook: Option<&Webhook>,
    rule: &Rule,
    state: State,
    value: Option<f64>,
    tracker: &Tracker,
    now: Instant,
    now_ms: u64,
) {
    if let Some(webhook) = webhook {
        webhook.send(payload(
            rule,
            state,
            value,
            since_ms(tracker, now, now_ms),
            now_ms,
        ));
    }
}

/// When the tracker's current state began, in milliseconds since the epoch.
fn since_ms(tracker: &Tracker, now: Instant, now_ms: u64) -> u64 {
    now_ms.saturating_sub(now.saturating_duration_since(tracker.since).as_millis() as u64)
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(
            "monitor: every {:?}, {} sources, {} alert rules, history of {} samples{}",
            self.reader.interval,
            self.sources.len(),
            self.rules.len(),
            self.history_len,
            self.webhook
                .as_ref()
                .map_or(String::new(), |w| format!(", webhook {}", w.url)),
        );
        self.collect();
        ctx.run_interval(self.reader.interval, |monitor, _| monitor.collect());
    }
}

impl Handler<CheckAlerts> for Monitor {
    type Result = Vec<AlertStatus>;

    fn handle(&mut self, _: CheckAlerts, _: &mut Context<Self>) -> Vec<AlertStatus> {
        self.reader
            .alerts()
            .into_iter()
            .filter(|alert| alert.state == State::Firing)
            .collect()
    }
}

impl Handler<CollectNow> for Monitor {
    type Result = ();

    fn handle(&mut self, _: CollectNow, _: &mut Context<Self>) {
        self.collect();
    }
}

/// The monitor as the runtime holds it: the actor and the samples it publishes.
#[derive(Clone)]
pub(crate) struct MonitorHandle {
    actor: crate::supervisor::Handle<Monitor>,
    reader: MonitorReader,
}

impl MonitorHandle {
    /// The `monitor` child, collecting `sources` every `opts.interval`.
    pub(crate) fn child(
        opts: &MonitoringOpts,
        sources: Vec<Arc<dyn Source>>,
    ) -> (crate::supervisor::ChildSpec, MonitorHandle) {
        let reader = MonitorReader::new(opts.interval);
        let (published, opts) = (reader.clone(), opts.clone());
        let (spec, actor) = crate::supervisor::ChildSpec::worker("monitor", move || {
            Monitor::new(published.clone(), sources.clone(), &opts)
        });
        (spec, MonitorHandle { actor, reader })
    }

    /// The published samples and alerts.
    pub(crate) fn reader(&self) -> &MonitorReader {
        &self.reader
    }

    /// The alerts firing now.
    pub(crate) async fn check_alerts(
        &self,
    ) -> Result<Vec<AlertStatus>, crate::supervisor::CallError> {
        self.actor.send(CheckAlerts).await
    }

    /// Collects and evaluates the alerts now.
    pub(crate) async fn collect_now(&self) -> Result<(), crate::supervisor::CallError> {
        self.actor.send(CollectNow).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Comparison, Severity};

    struct Fixed(std::sync::Mutex<f64>);

    impl Source for Fixed {
        fn collect(&self, out: &mut Collector) {
            out.gauge("level", "A test figure.", *self.0.lock().unwrap());
        }
    }

    fn opts(rules: Vec<Rule>) -> MonitoringOpts {
        MonitoringOpts {
            enabled: true,
            public_metrics: false,
            interval: Duration::from_secs(3600),
            history_len: 3,
            webhook_url: None,
            webhook_timeout: Duration::from_secs(1),
            webhook_retries: 0,
            alerts: rules,
        }
    }

    #[test]
    fn monitor_figures_share_names_and_serialize_as_a_map() {
        let flat = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), *value))
                .collect::<BTreeMap<_, _>>()
        };
        let first = Figures::new(flat(&[("b", 2.0), ("a", 1.0)]), None);
        assert_eq!(
            (first.get("a"), first.get("b"), first.get("c")),
            (Some(1.0), Some(2.0), None)
        );
        let second = Figures::new(flat(&[("a", 3.0), ("b", 4.0)]), Some(&first));
        assert!(Arc::ptr_eq(&first.names, &second.names));
        let third = Figures::new(flat(&[("a", 3.0), ("c", 4.0)]), Some(&second));
        assert!(!Arc::ptr_eq(&second.names, &third.names));
        assert_eq!(third.get("c"), Some(4.0));
        assert_eq!(
            serde_json::to_value(&second).unwrap(),
            serde_json::json!({ "a": 3.0, "b": 4.0 })
        );
    }

    #[actix_rt::test]
    async fn monitor_collects_sources_bounds_history_and_fires_alerts() {
        let level = Arc::new(Fixed(std::sync::Mutex::new(1.0)));
        let rule = Rule {
            name: "level_high".into(),
            metric: "level".into(),
            comparison: Comparison::Above,
            threshold: 5.0,
            for_duration: Duration::ZERO,
            cooldown: Duration::from_secs(60),
            severity: Severity::Critical,
            message: "level is high".into(),
            over: None,
            min_requests: None,
        };
        let reader = MonitorReader::new(Duration::from_secs(3600));
        let monitor = Monitor::new(
            reader.clone(),
            vec![level.clone() as Arc<dyn Source>],
            &opts(vec![rule]),
        )
        .start();
        monitor.send(CollectNow).await.unwrap();
        assert_eq!(reader.latest().unwrap().metrics.get("level"), Some(1.0));
        assert!(monitor.send(CheckAlerts).await.unwrap().is_empty());
        *level.0.lock().unwrap() = 9.0;
        monitor.send(CollectNow).await.unwrap();
        let firing = monitor.send(CheckAlerts).await.unwrap();
        assert_eq!(firing.len(), 1);
        assert_eq!(
            (firing[0].name.as_str(), firing[0].value),
            ("level_high", Some(9.0))
        );
        for _ in 0..5 {
            monitor.send(CollectNow).await.unwrap();
        }
        assert_eq!(reader.history().len(), 3, "history is bounded");
        // Only the latest sample keeps its families; the kept ones share the names.
        let history = reader.history();
        assert!(history[..2].iter().all(|sample| sample.families.is_empty()));
        assert!(!history[2].families.is_empty());
        assert!(Arc::ptr_eq(
            &history[0].metrics.names,
            &history[2].metrics.names
        ));
        *level.0.lock().unwrap() = 0.0;
        monitor.send(CollectNow).await.unwrap();
        assert_eq!(reader.alerts()[0].state, State::Resolved);
    }
}
