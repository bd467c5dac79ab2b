//! Silences, as Alertmanager's API v2 shows them, kept in one StateStore blob
//! (`silences/all`) so the HTTP function that edits them and the rules function that
//! honours them share them.

use std::collections::BTreeMap;
use std::sync::Arc;

use ember_storage::state::StateStore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::matcher::{MatchOp, Matcher, Matchers};

/// The state key of all silences.
pub const SILENCES_KEY: &str = "silences/all";

/// Expired silences are kept this long (Alertmanager's default `--data.retention`, 120h).
pub const RETENTION_MS: i64 = 120 * 3600 * 1000;

/// One matcher of a silence (API v2 shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Regex match.
    pub is_regex: bool,
    /// Equality (false: negated).
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn compile(&self) -> Result<Matcher> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(&self.name, op, &self.value).map_err(|e| Error::Silence(e.to_string()))
    }
}

/// A stored silence (times in Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// UUID.
    pub id: String,
    /// All must match for an alert to be silenced.
    pub matchers: Vec<SilenceMatcher>,
    /// Start (ms).
    pub starts_at: i64,
    /// End (ms).
    pub ends_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// `pending`, `active` or `expired`.
pub fn state_at(s: &Silence, now: i64) -> &'static str {
    if now < s.starts_at {
        "pending"
    } else if now < s.ends_at {
        "active"
    } else {
        "expired"
    }
}

impl Silence {
    /// The compiled matchers.
    pub fn compiled(&self) -> Result<Matchers> {
        self.matchers
            .iter()
            .map(SilenceMatcher::compile)
            .collect::<Result<Vec<_>>>()
            .map(Matchers)
    }

    /// The API v2 `gettableSilence` JSON.
    pub fn to_api(&self, now: i64) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": {"state": state_at(self, now)},
            "updatedAt": rfc3339(self.updated_at),
            "comment": self.comment,
            "createdBy": self.created_by,
            "endsAt": rfc3339(self.ends_at),
            "startsAt": rfc3339(self.starts_at),
            "matchers": self.matchers,
        })
    }
}

/// The API v2 `postableSilence` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Set to update an existing silence.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers.
    pub matchers: Vec<SilenceMatcher>,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end.
    pub ends_at: String,
    /// Author.
    #[serde(default)]
    pub created_by: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
}

/// Formats Unix ms as the API v2 does (go-openapi `strfmt.DateTime`: always milliseconds).
pub fn rfc3339(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "0001-01-01T00:00:00.000Z".to_string(),
    }
}

/// Formats Unix ms as Go's `time.Time` JSON (RFC 3339 with trailing fraction zeros
/// trimmed: `…:41.2Z`, `…:41Z`), as in Alertmanager's webhook messages.
pub fn go_time(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => {
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let frac = format!("{:03}", ms.rem_euclid(1000));
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{base}Z")
            } else {
                format!("{base}.{frac}Z")
            }
        }
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// Parses RFC 3339 to Unix ms.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_time_trims_like_go() {
        assert_eq!(super::go_time(1_700_000_000_200), "2023-11-14T22:13:20.2Z");
        assert_eq!(super::go_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            super::go_time(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            super::rfc3339(1_700_000_000_000),
            "2023-11-14T22:13:20.000Z"
        );
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Blob {
    silences: Vec<Silence>,
}

/// Silences in a [`StateStore`].
#[derive(Clone)]
pub struct Silences {
    store: Arc<dyn StateStore>,
}

impl std::fmt::Debug for Silences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Silences")
    }
}

impl Silences {
    /// Silences kept in `store` under [`SILENCES_KEY`].
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// All silences (expired ones included, until retention drops them).
    pub async fn list(&self) -> Result<Vec<Silence>> {
        let blob = self
            .store
            .get(SILENCES_KEY)
            .await
            .map_err(|e| Error::State {
                key: SILENCES_KEY.into(),
                message: e.to_string(),
            })?;
        match blob {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice::<Blob>(&b)
                .map(|b| b.silences)
                .map_err(|e| Error::State {
                    key: SILENCES_KEY.into(),
                    message: e.to_string(),
                }),
        }
    }

    async fn save(&self, mut all: Vec<Silence>, now: i64) -> Result<()> {
        all.retain(|s| s.ends_at + RETENTION_MS > now);
        let blob = serde_json::to_vec(&Blob { silences: all }).map_err(|e| Error::State {
            key: SILENCES_KEY.into(),
            message: e.to_string(),
        })?;
        self.store
            .put(SILENCES_KEY, blob)
            .await
            .map_err(|e| Error::State {
                key: SILENCES_KEY.into(),
                message: e.to_string(),
            })
    }

    /// One silence by id.
    pub async fn get(&self, id: &str) -> Result<Option<Silence>> {
        Ok(self.list().await?.into_iter().find(|s| s.id == id))
    }

    /// Creates or updates a silence; returns its id. Validation as Alertmanager's.
    pub async fn upsert(&self, p: PostableSilence, now: i64) -> Result<String> {
        let starts = parse_time(&p.starts_at)
            .ok_or_else(|| Error::Silence(format!("bad startsAt {:?}", p.starts_at)))?;
        let ends = parse_time(&p.ends_at)
            .ok_or_else(|| Error::Silence(format!("bad endsAt {:?}", p.ends_at)))?;
        if p.matchers.is_empty() {
            return Err(Error::Silence("at least one matcher required".into()));
        }
        let mut any_non_empty = false;
        for m in &p.matchers {
            if m.name.is_empty() {
                return Err(Error::Silence("matcher with empty label name".into()));
            }
            let c = m.compile()?;
            if !c.matches_value("") {
                any_non_empty = true;
            }
        }
        if !any_non_empty {
            return Err(Error::Silence(
                "at least one matcher must not match the empty string".into(),
            ));
        }
        if ends < starts {
            return Err(Error::Silence(
                "end time must not be before start time".into(),
            ));
        }
        if ends < now {
            return Err(Error::Silence("end time can't be in the past".into()));
        }
        let mut all = self.list().await?;
        // A start in the past means now (Alertmanager does the same).
        let starts = starts.max(now);
        let existing =
            p.id.as_deref()
                .filter(|i| !i.is_empty())
                .map(|id| all.iter().position(|s| s.id == id).ok_or(id));
        let id = match existing {
            Some(Err(id)) => return Err(Error::Silence(format!("silence {id} not found"))),
            Some(Ok(i)) if state_at(&all[i], now) != "expired" => {
                let s = &mut all[i];
                s.matchers = p.matchers;
                // An active silence keeps its start; a pending one may move.
                if state_at(s, now) == "pending" {
                    s.starts_at = starts;
                }
                s.ends_at = ends;
                s.updated_at = now;
                s.created_by = p.created_by;
                s.comment = p.comment;
                s.id.clone()
            }
            _ => {
                let id = uuid::Uuid::new_v4().to_string();
                all.push(Silence {
                    id: id.clone(),
                    matchers: p.matchers,
                    starts_at: starts,
                    ends_at: ends,
                    updated_at: now,
                    created_by: p.created_by,
                    comment: p.comment,
                });
                id
            }
        };
        self.save(all, now).await?;
        Ok(id)
    }

    /// Expires a silence now. Errors when unknown or already expired (as Alertmanager).
    pub async fn expire(&self, id: &str, now: i64) -> Result<()> {
        let mut all = self.list().await?;
        let s = all
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::Silence(format!("silence {id} not found")))?;
        match state_at(s, now) {
            "expired" => return Err(Error::Silence(format!("silence {id} already expired"))),
            "pending" => {
                s.starts_at = now;
                s.ends_at = now;
            }
            _ => s.ends_at = now,
        }
        s.updated_at = now;
        self.save(all, now).await
    }
}

/// Silences active at `now`, compiled (a silence that fails to compile is skipped and logged).
pub fn active(all: &[Silence], now: i64) -> Vec<(String, Matchers)> {
    all.iter()
        .filter(|s| state_at(s, now) == "active")
        .filter_map(|s| match s.compiled() {
            Ok(m) => Some((s.id.clone(), m)),
            Err(e) => {
                tracing::warn!(id = %s.id, error = %e, "skipping invalid silence");
                None
            }
        })
        .collect()
}

/// Whether `labels` are silenced by one of `active`.
pub fn silenced_by<'a>(
    active: &'a [(String, Matchers)],
    labels: &BTreeMap<String, String>,
) -> Option<&'a str> {
    active
        .iter()
        .find(|(_, m)| m.matches(labels))
        .map(|(id, _)| id.as_str())
}

/// API v2 `filter` (`name="value"` matchers): a silence is kept when the filter matchers match
/// the label set formed by its equality matchers.
pub fn filter_matches(filter: &Matchers, s: &Silence) -> bool {
    let labels: BTreeMap<String, String> = s
        .matchers
        .iter()
        .filter(|m| !m.is_regex && m.is_equal)
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    filter.0.iter().all(|f| {
        labels.contains_key(&f.name) && f.matches(&labels)
            || s.matchers.iter().any(|m| {
                m.name == f.name
                    && m.value == f.value
                    && m.is_regex == matches!(f.op, MatchOp::Regex | MatchOp::NotRegex)
            })
    })
}
