//! Alert rules and their states, evaluated by the monitor on every tick.
//!
//! A rule compares one figure of the JSON view (`/monitoring`) with a threshold: its
//! value, or with `over` set its increase across that window of history. States follow
//! Prometheus: *inactive*, *pending* (the condition holds, for less than `for`), *firing*,
//! and *resolved* (it was firing and the condition stopped holding). Every state change
//! is reported once; announcements (log at warning level, webhook) go out when a rule
//! starts firing or resolves, and while it keeps firing at most once per `cooldown`, so a
//! flapping rule is not re-announced within its cooldown. Everything here is pure: the
//! caller passes the clock.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a figure is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Comparison {
    /// `>`: the figure is above the threshold.
    #[serde(rename = ">")]
    Above,
    /// `>=`: the figure is at least the threshold.
    #[serde(rename = ">=")]
    AtLeast,
    /// `<`: the figure is below the threshold.
    #[serde(rename = "<")]
    Below,
    /// `<=`: the figure is at most the threshold.
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    /// Parses `>`, `>=`, `<`, `<=`.
    pub fn parse(text: &str) -> Option<Comparison> {
        match text.trim() {
            ">" => Some(Comparison::Above),
            ">=" => Some(Comparison::AtLeast),
            "<" => Some(Comparison::Below),
            "<=" => Some(Comparison::AtMost),
            _ => None,
        }
    }

    /// The operator: `>`, `>=`, `<` or `<=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
        }
    }

    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; nothing to do.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// Parses `info`, `warning`, `critical`.
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim() {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// One alert rule.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// Unique name (the Alertmanager `alertname`).
    pub name: String,
    /// A key of the JSON view, e.g. `cache_hit_ratio`.
    pub metric: String,
    /// How the figure is compared with `threshold`.
    pub comparison: Comparison,
    /// The value the figure is compared with.
    pub threshold: f64,
    /// How long the condition must hold before the alert fires.
    pub for_duration: Duration,
    /// Least time between two announcements of this rule.
    pub cooldown: Duration,
    /// How urgent the alert is.
    pub severity: Severity,
    /// What the alert says when it fires.
    pub message: String,
    /// Compare the metric's increase over this window rather than its value.
    pub over: Option<Duration>,
    /// Evaluate only once this many static file requests (cache lookups) were seen.
    pub min_requests: Option<u64>,
}

impl Rule {
    /// A rule named `name` that fires as soon as `metric` compares with `threshold` as
    /// `comparison` says: warning severity, no `for` duration, a minute between
    /// announcements, and a message naming the condition.
    pub fn new(
        name: impl Into<String>,
        metric: impl Into<String>,
        comparison: Comparison,
        threshold: f64,
    ) -> Self {
        let (name, metric) = (name.into(), metric.into());
        Rule {
            message: format!("{metric} {} {threshold}", comparison.symbol()),
            name,
            metric,
            comparison,
            threshold,
            for_duration: Duration::ZERO,
            cooldown: Duration::from_secs(60),
            severity: Severity::Warning,
            over: None,
            min_requests: None,
        }
    }

    /// Fires only once the condition has held this long.
    pub fn for_duration(mut self, duration: Duration) -> Self {
        self.for_duration = duration;
        self
    }

    /// The least time between two announcements.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How urgent the alert is.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// What the alert says when it fires.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Compares the metric's increase over `window` rather than its value.
    pub fn over(mut self, window: Duration) -> Self {
        self.over = Some(window);
        self
    }

    /// Evaluates only once this many static file requests were seen.
    pub fn min_requests(mut self, requests: u64) -> Self {
        self.min_requests = Some(requests);
        self
    }
}

/// The state of an alert rule, as Prometheus names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum State {
    /// The condition does not hold (or the rule was never evaluated).
    Inactive,
    /// The condition holds, for less than the rule's `for` duration so far.
    Pending,
    /// The condition has held for the rule's `for` duration: the alert is announced.
    Firing,
    /// The rule was firing and its condition stopped holding.
    Resolved,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        })
    }
}

/// What one evaluation step produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to report.
    Quiet,
    /// The state changed (to be logged once), and whether it is to be announced.
    Changed {
        from: State,
        to: State,
        announce: bool,
    },
    /// Still firing and the cooldown has passed: announce again.
    Reminder,
}

/// A rule's evolving state.
#[derive(Clone, Debug)]
pub struct Tracker {
    pub state: State,
    /// When the current state began.
    pub since: Instant,
    /// The value seen at the last evaluation (`None`: the figure was missing).
    pub value: Option<f64>,
    last_announced: Option<Instant>,
}

impl Tracker {
    pub fn new(now: Instant) -> Tracker {
        Tracker {
            state: State::Inactive,
            since: now,
            value: None,
            last_announced: None,
        }
    }

    /// Evaluates `rule` against `value` (the figure, or its increase for `over` rules) at
    /// `now`. `requests` is the count of static file requests, for `min_requests`.
    pub fn step(&mut self, rule: &Rule, value: Option<f64>, requests: f64, now: Instant) -> Step {
        self.value = value;
        let warmed_up = rule.min_requests.is_none_or(|min| requests >= min as f64);
        let holds = warmed_up && value.is_some_and(|v| rule.comparison.holds(v, rule.threshold));
        let next = match (self.state, holds) {
            (State::Inactive | State::Resolved, true) if rule.for_duration.is_zero() => {
                State::Firing
            }
            (State::Inactive | State::Resolved, true) => State::Pending,
            (State::Pending, true)
                if now.saturating_duration_since(self.since) >= rule.for_duration =>
            {
                State::Firing
            }
            (State::Pending, false) => State::Inactive,
            (State::Firing, false) => State::Resolved,
            (state, _) => state,
        };
        let cooled = self
            .last_announced
            .is_none_or(|at| now.saturating_duration_since(at) >= rule.cooldown);
        if next == self.state {
            if next == State::Firing && cooled {
                self.last_announced = Some(now);
                return Step::Reminder;
            }
            return Step::Quiet;
        }
        let from = self.state;
        self.state = next;
        self.since = now;
        let announce = match next {
            State::Firing => cooled,
            // A resolution is announced when its firing was.
            State::Resolved => true,
            State::Inactive | State::Pending => false,
        };
        if announce && next == State::Firing {
            self.last_announced = Some(now);
        }
        Step::Changed {
            from,
            to: next,
            announce,
        }
    }
}

/// The default rules, given `MEMORY_THRESHOLD_MB`.
pub fn default_rules(memory_threshold_mb: u64) -> Vec<Rule> {
    let threshold_bytes = memory_threshold_mb as f64 * 1024.0 * 1024.0;
    let rule =
        |name: &str, metric: &str, comparison, threshold, for_secs, severity, message: &str| Rule {
            name: name.into(),
            metric: metric.into(),
            comparison,
            threshold,
            for_duration: Duration::from_secs(for_secs),
            cooldown: Duration::from_secs(15 * 60),
            severity,
            message: message.into(),
            over: None,
            min_requests: None,
        };
    use Comparison::{Above, Below};
    use Severity::{Critical, Warning};
    vec![
        rule(
            "cache_nearly_full",
            "cache_fill_ratio",
            Above,
            0.9,
            60,
            Warning,
            "the file cache holds over 90% of its byte budget",
        ),
        Rule {
            min_requests: Some(100),
            ..rule(
                "low_hit_ratio",
                "cache_hit_ratio",
                Below,
                0.5,
                300,
                Warning,
                "under half of the file lookups hit the cache",
            )
        },
        rule(
            "slow_serving_average",
            "serve_time_average_seconds",
            Above,
            0.010,
            60,
            Warning,
            "files take over 10 ms on average to serve",
        ),
        rule(
            "slow_serving_p99",
            "serve_time_p99_seconds",
            Above,
            0.050,
            60,
            Warning,
            "the slowest 1% of files take over 50 ms to serve",
        ),
        rule(
            "memory_high",
            "process_rss_bytes",
            Above,
            threshold_bytes,
            60,
            Warning,
            "resident memory is above MEMORY_THRESHOLD_MB",
        ),
        rule(
            "memory_critical",
            "process_rss_bytes",
            Above,
            threshold_bytes * 1.25,
            30,
            Critical,
            "resident memory is above 1.25 x MEMORY_THRESHOLD_MB",
        ),
        Rule {
            over: Some(Duration::from_secs(300)),
            cooldown: Duration::from_secs(300),
            ..rule(
                "actor_restarts",
                "actor_restarts_total",
                Above,
                0.0,
                0,
                Warning,
                "a supervised actor restarted in the last 5 minutes",
            )
        },
        rule(
            "tls_cert_expiring",
            "tls_cert_expiry_seconds",
            Below,
            14.0 * 86_400.0,
            0,
            Warning,
            "a listener's TLS certificate expires within 14 days",
        ),
        Rule {
            over: Some(Duration::from_secs(300)),
            cooldown: Duration::from_secs(300),
            ..rule(
                "tls_reload_failed",
                "tls_reload_failures_total",
                Above,
                0.0,
                0,
                Warning,
                "renewed TLS certificate files could not be used; the old pair still serves",
            )
        },
        rule(
            "supervisor_escalated",
            "supervisor_escalated",
            Above,
            0.0,
            0,
            Critical,
            "the supervision tree gave up; the server is stopping",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(for_secs: u64, cooldown_secs: u64) -> Rule {
        Rule {
            name: "r".into(),
            metric: "m".into(),
            comparison: Comparison::Above,
            threshold: 10.0,
            for_duration: Duration::from_secs(for_secs),
            cooldown: Duration::from_secs(cooldown_secs),
            severity: Severity::Warning,
            message: "m is high".into(),
            over: None,
            min_requests: None,
        }
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    fn changed(from: State, to: State, announce: bool) -> Step {
        Step::Changed { from, to, announce }
    }

    #[test]
    fn alert_goes_pending_then_firing_after_for_then_resolved() {
        let (start, rule) = (Instant::now(), rule(30, 600));
        let mut t = Tracker::new(start);
        assert_eq!(t.step(&rule, Some(5.0), 0.0, at(start, 0)), Step::Quiet);
        assert_eq!(
            t.step(&rule, Some(11.0), 0.0, at(start, 10)),
            changed(State::Inactive, State::Pending, false)
        );
        assert_eq!(
            t.step(&rule, Some(12.0), 0.0, at(start, 30)),
            Step::Quiet,
            "20 s pending < 30 s"
        );
        assert_eq!(
            t.step(&rule, Some(12.0), 0.0, at(start, 40)),
            changed(State::Pending, State::Firing, true)
        );
        assert_eq!(t.step(&rule, Some(12.0), 0.0, at(start, 50)), Step::Quiet);
        assert_eq!(
            t.step(&rule, Some(3.0), 0.0, at(start, 60)),
            changed(State::Firing, State::Resolved, true)
        );
        assert_eq!(
            t.step(&rule, Some(3.0), 0.0, at(start, 70)),
            Step::Quiet,
            "resolved stays until it holds again"
        );
    }

    #[test]
    fn alert_pending_that_stops_holding_goes_back_to_inactive_silently() {
        let (start, rule) = (Instant::now(), rule(30, 600));
        let mut t = Tracker::new(start);
        t.step(&rule, Some(11.0), 0.0, at(start, 0));
        assert_eq!(
            t.step(&rule, Some(9.0), 0.0, at(start, 5)),
            changed(State::Pending, State::Inactive, false)
        );
    }

    #[test]
    fn alert_with_zero_for_fires_at_once_and_flapping_is_not_reannounced_within_cooldown() {
        let (start, rule) = (Instant::now(), rule(0, 600));
        let mut t = Tracker::new(start);
        assert_eq!(
            t.step(&rule, Some(11.0), 0.0, at(start, 0)),
            changed(State::Inactive, State::Firing, true)
        );
        assert_eq!(
            t.step(&rule, Some(1.0), 0.0, at(start, 5)),
            changed(State::Firing, State::Resolved, true)
        );
        assert_eq!(
            t.step(&rule, Some(11.0), 0.0, at(start, 10)),
            changed(State::Resolved, State::Firing, false),
            "fires again within the cooldown: logged, not announced"
        );
        assert_eq!(t.step(&rule, Some(11.0), 0.0, at(start, 300)), Step::Quiet);
        assert_eq!(
            t.step(&rule, Some(11.0), 0.0, at(start, 600)),
            Step::Reminder,
            "announced again after the cooldown"
        );
        assert_eq!(t.step(&rule, Some(11.0), 0.0, at(start, 700)), Step::Quiet);
    }

    #[test]
    fn alert_missing_figure_and_warm_up_keep_it_inactive() {
        let start = Instant::now();
        let mut warm = Rule {
            min_requests: Some(100),
            ..rule(0, 0)
        };
        warm.comparison = Comparison::Below;
        warm.threshold = 0.5;
        let mut t = Tracker::new(start);
        assert_eq!(t.step(&warm, None, 500.0, start), Step::Quiet);
        assert_eq!(
            t.step(&warm, Some(0.1), 99.0, start),
            Step::Quiet,
            "not before 100 requests"
        );
        assert_eq!(
            t.step(&warm, Some(0.1), 100.0, start),
            changed(State::Inactive, State::Firing, true)
        );
    }

    #[test]
    fn alert_comparisons_and_names_parse() {
        assert_eq!(Comparison::parse(" >= "), Some(Comparison::AtLeast));
        assert_eq!(Comparison::parse("=="), None);
        assert_eq!(Severity::parse("critical"), Some(Severity::Critical));
        assert_eq!(Severity::parse("fatal"), None);
        assert!(Comparison::AtMost.holds(1.0, 1.0) && !Comparison::Below.holds(1.0, 1.0));
    }

    #[test]
    fn alert_default_rules_cover_the_documented_cases() {
        let rules = default_rules(512);
        let names: Vec<_> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cache_nearly_full",
                "low_hit_ratio",
                "slow_serving_average",
                "slow_serving_p99",
                "memory_high",
                "memory_critical",
                "actor_restarts",
                "tls_cert_expiring",
                "tls_reload_failed",
                "supervisor_escalated"
            ]
        );
        let memory = &rules[4];
        assert_eq!(memory.threshold, 512.0 * 1024.0 * 1024.0);
        assert_eq!(rules[5].threshold, memory.threshold * 1.25);
        assert_eq!(rules[1].min_requests, Some(100));
        assert_eq!(rules[6].over, Some(Duration::from_secs(300)));
        assert_eq!(rules[7].threshold, 14.0 * 86_400.0);
        assert_eq!(rules[8].over, Some(Duration::from_secs(300)));
    }
}
