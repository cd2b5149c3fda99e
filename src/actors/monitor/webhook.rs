//! Alert notifications in Alertmanager's webhook format (version 4), one POST per
//! announced alert, each with a timeout and a bounded number of retries with doubling
//! delays. Sending runs in its own task on the monitor's arbiter: the monitor never waits
//! for it, and request handling never touches it, so a dead receiver slows nothing.

use std::time::Duration;

use serde_json::json;

use crate::alerts::{Rule, State};

/// Where and how notifications go.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
}

/// The Alertmanager webhook body for one alert of `rule`, `firing` or `resolved`.
pub fn payload(
    rule: &Rule,
    state: State,
    value: Option<f64>,
    starts_at_ms: u64,
    now_ms: u64,
) -> serde_json::Value {
    let status = if state == State::Firing {
        "firing"
    } else {
        "resolved"
    };
    let labels = json!({
        "alertname": rule.name,
        "severity": rule.severity.to_string(),
        "service": "leanserve",
        "metric": rule.metric,
    });
    let description = match value {
        Some(value) => format!(
            "{} is {value} ({} {:?} {})",
            rule.metric, rule.metric, rule.comparison, rule.threshold
        ),
        None => format!("{} has no value", rule.metric),
    };
    let annotations = json!({ "summary": rule.message, "description": description });
    let ends_at = if state == State::Firing {
        "0001-01-01T00:00:00Z".to_owned()
    } else {
        rfc3339(now_ms)
    };
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", rule.name),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "leanserve",
        "groupLabels": { "alertname": rule.name },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(starts_at_ms),
            "endsAt": ends_at,
            "generatorURL": "",
            "fingerprint": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(rule.name.as_bytes())),
        }],
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "1970-01-01T00:00:00Z".to_owned(), |t| t.to_string())
}

impl Webhook {
    /// Sends `body` in the background: up to `1 + retries` attempts, waiting 250 ms,
    /// 500 ms, 1 s ... between them. Failures are logged, never returned.
    pub fn send(&self, body: serde_json::Value) {
        let webhook = self.clone();
        actix_rt::spawn(async move {
            let client = awc::Client::builder().timeout(webhook.timeout).finish();
            let mut delay = Duration::from_millis(250);
            for attempt in 0..=webhook.retries {
                match client.post(&webhook.url).send_json(&body).await {
                    Ok(response) if response.status().is_success() => return,
                    Ok(response) => log::warn!(
                        "alert webhook {} answered {} (attempt {})",
                        webhook.url,
                        response.status(),
                        attempt + 1
                    ),
                    Err(error) => log::warn!(
                        "alert webhook {} failed: {error} (attempt {})",
                        webhook.url,
                        attempt + 1
                    ),
                }
                if attempt < webhook.retries {
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
            log::error!(
                "alert webhook {} gave up after {} attempts",
                webhook.url,
                webhook.retries + 1
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::default_rules;

    #[test]
    fn webhook_payload_follows_alertmanager_format() {
        let rule = &default_rules(512)[0];
        let firing = payload(
            rule,
            State::Firing,
            Some(0.95),
            1_795_743_232_902,
            1_795_743_232_902,
        );
        assert_eq!(firing["version"], "4");
        assert_eq!(firing["status"], "firing");
        let alert = &firing["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "cache_nearly_full");
        assert_eq!(alert["labels"]["severity"], "warning");
        assert_eq!(alert["startsAt"], "2026-11-27T01:33:52.902Z");
        assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alert["annotations"]["summary"], rule.message);
        let resolved = payload(rule, State::Resolved, Some(0.5), 1_000, 61_000);
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["endsAt"], "1970-01-01T00:01:01Z");
    }
}
