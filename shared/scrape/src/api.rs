//! `/api/v1/targets` in Prometheus' exact JSON shape (the `data` member of the response).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::ScrapeState;

/// The `data` of `GET /api/v1/targets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsResponse {
    /// Targets being scraped.
    pub active_targets: Vec<ActiveTarget>,
    /// Targets relabeling dropped.
    pub dropped_targets: Vec<DroppedTarget>,
    /// Number of dropped targets per scrape pool.
    pub dropped_target_counts: BTreeMap<String, usize>,
}

/// One active target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTarget {
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
    /// Labels after relabeling (no `__` names).
    pub labels: BTreeMap<String, String>,
    /// The job.
    pub scrape_pool: String,
    /// The URL scraped.
    pub scrape_url: String,
    /// The URL as seen from outside (same as `scrapeUrl` here).
    pub global_url: String,
    /// Error of the last scrape, "" if none.
    pub last_error: String,
    /// Start of the last scrape, RFC 3339 (`0001-01-01T00:00:00Z` if never).
    pub last_scrape: String,
    /// Duration of the last scrape in seconds.
    pub last_scrape_duration: f64,
    /// `up`, `down` or `unknown`.
    pub health: String,
    /// `15s`.
    pub scrape_interval: String,
    /// `10s`.
    pub scrape_timeout: String,
}

/// One dropped target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedTarget {
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
    /// The job (Prometheus 3 adds it).
    pub scrape_pool: String,
}

impl TargetsResponse {
    /// Builds the response from a scrape state (also usable by an API Lambda that only
    /// reads the state the scrape Lambda persisted).
    pub fn from_state(state: &ScrapeState) -> Self {
        let mut r = TargetsResponse::default();
        for (job, js) in &state.jobs {
            for t in js.targets.values() {
                r.active_targets.push(ActiveTarget {
                    discovered_labels: t.discovered_labels.clone(),
                    labels: t.labels.clone(),
                    scrape_pool: job.clone(),
                    scrape_url: t.scrape_url.clone(),
                    global_url: t.scrape_url.clone(),
                    last_error: t.last_error.clone(),
                    last_scrape: rfc3339_ms(t.last_scrape_ms),
                    last_scrape_duration: t.last_scrape_duration_s,
                    health: t.health.as_str().to_string(),
                    scrape_interval: t.scrape_interval.clone(),
                    scrape_timeout: t.scrape_timeout.clone(),
                });
            }
            for d in &js.dropped {
                r.dropped_targets.push(DroppedTarget {
                    discovered_labels: d.clone(),
                    scrape_pool: job.clone(),
                });
            }
            r.dropped_target_counts
                .insert(job.clone(), js.dropped.len());
        }
        r
    }

    /// Applies the API's `state` (`active`, `dropped`, `any`) and `scrapePool` parameters.
    pub fn filter(mut self, state: Option<&str>, scrape_pool: Option<&str>) -> Self {
        if let Some(pool) = scrape_pool {
            self.active_targets.retain(|t| t.scrape_pool == pool);
            self.dropped_targets.retain(|t| t.scrape_pool == pool);
            self.dropped_target_counts.retain(|k, _| k == pool);
        }
        match state {
            Some("active") => self.dropped_targets.clear(),
            Some("dropped") => self.active_targets.clear(),
            _ => {}
        }
        self
    }
}

/// Formats milliseconds since the epoch as RFC 3339 with milliseconds (`Z`); 0 gives Go's zero time.
pub fn rfc3339_ms(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_ms(0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn json_shape_matches_prometheus() {
        let r = TargetsResponse {
            active_targets: vec![ActiveTarget {
                health: "up".into(),
                ..Default::default()
            }],
            dropped_targets: vec![DroppedTarget::default()],
            dropped_target_counts: BTreeMap::from([("node".to_string(), 1)]),
        };
        let v = serde_json::to_value(&r).unwrap();
        let t = &v["activeTargets"][0];
        for key in [
            "discoveredLabels",
            "labels",
            "scrapePool",
            "scrapeUrl",
            "globalUrl",
            "lastError",
            "lastScrape",
            "lastScrapeDuration",
            "health",
            "scrapeInterval",
            "scrapeTimeout",
        ] {
            assert!(t.get(key).is_some(), "missing {key}");
        }
        assert!(v["droppedTargets"][0].get("discoveredLabels").is_some());
        assert_eq!(v["droppedTargetCounts"]["node"], 1);
    }
}
