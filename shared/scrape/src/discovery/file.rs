//! `file_sd_configs`: JSON or YAML files holding `[{targets: [...], labels: {...}}]`.
//!
//! Files are matched with their glob patterns on every refresh. Each group gets
//! `__meta_filepath`. A file that fails to parse keeps its previous groups (as Prometheus
//! does) and the error is reported; a file that disappears drops its groups.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{ADDRESS_LABEL, DiscoveryError, TargetGroup};

/// The label naming the file a target came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads target groups from files.
#[derive(Debug)]
pub struct FileProvider {
    patterns: Vec<String>,
    previous: HashMap<String, Vec<TargetGroup>>,
}

impl FileProvider {
    /// A provider for the given glob patterns.
    pub fn new(patterns: Vec<String>) -> Self {
        Self {
            patterns,
            previous: HashMap::new(),
        }
    }

    /// Re-reads every matching file. Returns an error only if every file failed; otherwise
    /// failed files keep their previous groups.
    pub async fn refresh(&mut self) -> Result<Vec<TargetGroup>, DiscoveryError> {
        let mut paths = Vec::new();
        for pat in &self.patterns {
            let entries = glob::glob(pat).map_err(|e| DiscoveryError::File {
                path: pat.clone(),
                message: e.to_string(),
            })?;
            for entry in entries.flatten() {
                paths.push(entry.to_string_lossy().into_owned());
            }
        }
        paths.sort();
        paths.dedup();
        let mut out = Vec::new();
        let mut next = HashMap::new();
        let mut first_error = None;
        for path in paths {
            match read_file(&path).await {
                Ok(groups) => {
                    out.extend(groups.iter().cloned());
                    next.insert(path, groups);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "file_sd: keeping the previous targets of this file");
                    if let Some(prev) = self.previous.remove(&path) {
                        out.extend(prev.iter().cloned());
                        next.insert(path, prev);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        self.previous = next;
        match first_error {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }
}

/// Parses one file into groups.
pub async fn read_file(path: &str) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let err = |m: String| DiscoveryError::File {
        path: path.to_string(),
        message: m,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| err(e.to_string()))?;
    parse_groups(&text, path).map_err(err)
}

/// Parses file contents (`.json` as JSON, anything else as YAML).
pub fn parse_groups(text: &str, path: &str) -> Result<Vec<TargetGroup>, String> {
    let groups: Vec<FileGroup> = if path.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut labels = g.labels;
            labels.insert(FILEPATH_LABEL.to_string(), path.to_string());
            TargetGroup {
                source: format!("{path}:{i}"),
                targets: g
                    .targets
                    .into_iter()
                    .map(|t| BTreeMap::from([(ADDRESS_LABEL.to_string(), t)]))
                    .collect(),
                labels,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_json_and_yaml_and_keeps_previous_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        let yaml = dir.path().join("b.yml");
        std::fs::write(
            &json,
            r#"[{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"env": "dev"}}]"#,
        )
        .unwrap();
        std::fs::write(&yaml, "- targets: ['127.0.0.1:3']\n").unwrap();
        let mut p = FileProvider::new(vec![
            dir.path().join("*.json").to_string_lossy().into_owned(),
            dir.path().join("*.yml").to_string_lossy().into_owned(),
        ]);
        let groups = p.refresh().await.unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets.len(), 2);
        assert_eq!(groups[0].labels.get("env").map(String::as_str), Some("dev"));
        assert_eq!(
            groups[0].labels.get(FILEPATH_LABEL).map(String::as_str),
            Some(json.to_str().unwrap())
        );
        // A broken file keeps its previous groups.
        std::fs::write(&json, "[{").unwrap();
        let groups = p.refresh().await.unwrap();
        assert_eq!(groups.iter().map(|g| g.targets.len()).sum::<usize>(), 3);
        // A removed file drops its groups.
        std::fs::remove_file(&yaml).unwrap();
        let groups = p.refresh().await.unwrap();
        assert_eq!(groups.iter().map(|g| g.targets.len()).sum::<usize>(), 2);
    }
}
