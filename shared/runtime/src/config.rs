//! Loading the prometheus.yml-style configuration from a file, an S3 object or an SSM
//! parameter, with its rule files, and noticing when either changes.
//!
//! - `path` (or `file:path`): the file; `rule_files` globs resolve against its directory.
//! - `s3://bucket/key`: `rule_files` globs resolve against the key's prefix (the "directory"
//!   of the key). One `ListObjectsV2` of that prefix per check tells whether the config or a
//!   matching rule file changed (ETags); only then are the objects fetched. Matching rule
//!   files are downloaded into a local cache directory, which becomes the base directory
//!   the rules crate loads them from.
//! - `ssm:/name` (feature `ssm`): `GetParameter` with decryption; the parameter version
//!   tells whether it changed. `rule_files` entries name sibling parameters
//!   (`ssm:/ember/prometheus.yml` + `rules.yml` → `/ember/rules.yml`); globs are not
//!   supported there.
//!
//! [`ConfigLoader::poll`] checks at most once per TTL and returns a [`LoadedConfig`] only
//! when something changed (always on the first call).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_config::Config;

use crate::aws::AwsContext;

/// A malformed configuration location.
#[derive(Debug, thiserror::Error)]
#[error("{value:?}: {message}")]
pub struct LocationError {
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub message: String,
}

/// Where a configuration lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    /// A local file.
    File(PathBuf),
    /// An S3 object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// An SSM parameter (String or SecureString).
    Ssm {
        /// Parameter name (`/path/name`).
        name: String,
    },
}

impl ConfigLocation {
    /// Parses `path`, `file:path`, `s3://bucket/key` or `ssm:/name`.
    pub fn parse(value: &str) -> Result<Self, LocationError> {
        let err = |message: &str| LocationError {
            value: value.to_string(),
            message: message.to_string(),
        };
        let v = value.trim();
        if let Some(rest) = v.strip_prefix("s3://") {
            let (bucket, key) = rest
                .split_once('/')
                .ok_or_else(|| err("s3:// locations are s3://bucket/key"))?;
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(err(
                    "s3:// locations are s3://bucket/key (an object, not a prefix)",
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if let Some(name) = v.strip_prefix("ssm:") {
            if name.is_empty() || name.ends_with('/') {
                return Err(err("ssm: locations are ssm:/parameter/name"));
            }
            return Ok(Self::Ssm {
                name: name.to_string(),
            });
        }
        let path = v.strip_prefix("file:").unwrap_or(v);
        if path.is_empty() {
            return Err(err("empty path"));
        }
        Ok(Self::File(PathBuf::from(path)))
    }

    /// Whether reading it needs AWS.
    pub fn is_remote(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

impl std::fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Self::Ssm { name } => write!(f, "ssm:{name}"),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    /// Reading the source failed.
    #[error("reading {location}: {message}")]
    Read {
        /// Where.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration text is invalid.
    #[error(transparent)]
    Parse(#[from] ember_config::ConfigError),
    /// A `rule_files` entry cannot be used with this source.
    #[error("rule_files entry {pattern:?} of {location}: {message}")]
    RuleFiles {
        /// The config location.
        location: String,
        /// The entry.
        pattern: String,
        /// Why.
        message: String,
    },
    /// The source kind is not compiled in.
    #[error("{0}")]
    Unsupported(String),
}

/// A configuration as loaded, with where its rule files can be read locally.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed configuration (built-in defaults when no location is set).
    pub config: Config,
    /// Its text (for `/api/v1/status/config`).
    pub yaml: String,
    /// The directory `config.rule_files` resolve against.
    pub base_dir: PathBuf,
    /// An opaque version of the config and its rule files (changes when they do).
    pub version: String,
    /// Where it came from (for logs).
    pub location: String,
}

/// Loads a configuration and notices changes (see the module docs).
pub struct ConfigLoader {
    location: Option<ConfigLocation>,
    ttl: Duration,
    aws: Arc<AwsContext>,
    cache_dir: PathBuf,
    last_check: Option<Instant>,
    current: Option<Current>,
}

#[derive(Debug, Clone)]
struct Current {
    version: String,
    rule_patterns: Vec<String>,
}

impl std::fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigLoader")
            .field("location", &self.location)
            .field("ttl", &self.ttl)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl ConfigLoader {
    /// A loader for `location` (`None`: built-in defaults), checking at most every `ttl`;
    /// remote rule files are downloaded under `cache_dir`.
    pub fn new(
        location: Option<ConfigLocation>,
        ttl: Duration,
        aws: Arc<AwsContext>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            location,
            ttl,
            aws,
            cache_dir: cache_dir.into(),
            last_check: None,
            current: None,
        }
    }

    /// The location.
    pub fn location(&self) -> Option<&ConfigLocation> {
        self.location.as_ref()
    }

    /// The new configuration when it is the first load or it changed since the last one;
    /// `None` when unchanged or when the last check is younger than the TTL. After an
    /// error the previous configuration stays current and the next check waits a TTL.
    pub async fn poll(&mut self) -> Result<Option<LoadedConfig>, ConfigLoadError> {
        let now = Instant::now();
        if self.current.is_some()
            && let Some(last) = self.last_check
            && now.duration_since(last) < self.ttl
        {
            return Ok(None);
        }
        self.last_check = Some(now);
        let loaded = match self.location.clone() {
            None => {
                if self.current.is_some() {
                    return Ok(None);
                }
                Some(LoadedConfig {
                    config: Config::default(),
                    yaml: String::new(),
                    base_dir: PathBuf::from("."),
                    version: "default".into(),
                    location: "built-in defaults".into(),
                })
            }
            Some(ConfigLocation::File(path)) => self.poll_file(&path)?,
            Some(ConfigLocation::S3 { bucket, key }) => self.poll_s3(&bucket, &key).await?,
            Some(ConfigLocation::Ssm { name }) => self.poll_ssm(&name).await?,
        };
        if let Some(l) = &loaded {
            self.current = Some(Current {
                version: l.version.clone(),
                rule_patterns: l.config.rule_files.clone(),
            });
        }
        Ok(loaded)
    }

    fn unchanged(&self, version: &str) -> bool {
        self.current.as_ref().is_some_and(|c| c.version == version)
    }

    fn poll_file(&self, path: &Path) -> Result<Option<LoadedConfig>, ConfigLoadError> {
        let location = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigLoadError::Read {
            location: location.clone(),
            message: e.to_string(),
        })?;
        let config = Config::from_yaml(&text, path)?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        // Version: the config text and every matching rule file's contents.
        let mut h = ember_storage::state::fnv1a64(text.as_bytes());
        for pattern in &config.rule_files {
            let full = if Path::new(pattern).is_absolute() {
                pattern.clone()
            } else {
                base_dir.join(pattern).display().to_string()
            };
            let paths = glob::glob(&full).map_err(|e| ConfigLoadError::RuleFiles {
                location: location.clone(),
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            for p in paths.flatten() {
                h = mix(h, p.display().to_string().as_bytes());
                if let Ok(bytes) = std::fs::read(&p) {
                    h = mix(h, &bytes);
                }
            }
        }
        let version = format!("{h:016x}");
        if self.unchanged(&version) {
            return Ok(None);
        }
        Ok(Some(LoadedConfig {
            config,
            yaml: text,
            base_dir,
            version,
            location,
        }))
    }

    async fn poll_s3(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<LoadedConfig>, ConfigLoadError> {
        let location = format!("s3://{bucket}/{key}");
        let s3 = &self.aws.clients().await.s3;
        let prefix = match key.rfind('/') {
            Some(i) => &key[..=i],
            None => "",
        };
        let listing =
            list_prefix(s3, bucket, prefix)
                .await
                .map_err(|message| ConfigLoadError::Read {
                    location: location.clone(),
                    message,
                })?;
        if !listing.contains_key(key) {
            // Right after `sam deploy` nothing has been uploaded yet: run on the built-in
            // defaults (no scrape jobs, no rules) and pick the file up once it appears.
            const MISSING: &str = "missing";
            if self.unchanged(MISSING) {
                return Ok(None);
            }
            tracing::warn!(%location, "configuration object not found; using built-in defaults until it is uploaded");
            return Ok(Some(LoadedConfig {
                config: Config::default(),
                yaml: String::new(),
                base_dir: PathBuf::from("."),
                version: MISSING.into(),
                location: format!("{location} (not found: built-in defaults)"),
            }));
        }
        // Cheap check first: the config's and the known rule files' ETags.
        if let Some(cur) = &self.current
            && let Ok(matched) = match_keys(&listing, prefix, &cur.rule_patterns, &location)
            && self.unchanged(&s3_version(&listing, key, &matched))
        {
            return Ok(None);
        }
        let text =
            get_object_text(s3, bucket, key)
                .await
                .map_err(|message| ConfigLoadError::Read {
                    location: location.clone(),
                    message,
                })?;
        let config = Config::from_yaml(&text, Path::new(&location))?;
        let matched = match_keys(&listing, prefix, &config.rule_files, &location)?;
        let version = s3_version(&listing, key, &matched);
        let dir = self.fresh_cache_dir(&location)?;
        for k in &matched {
            let rel = &k[prefix.len()..];
            let body =
                get_object_text(s3, bucket, k)
                    .await
                    .map_err(|message| ConfigLoadError::Read {
                        location: format!("s3://{bucket}/{k}"),
                        message,
                    })?;
            write_cached(&dir, rel, &body, &location)?;
        }
        Ok(Some(LoadedConfig {
            config,
            yaml: text,
            base_dir: dir,
            version,
            location,
        }))
    }

    #[cfg(feature = "ssm")]
    async fn poll_ssm(&self, name: &str) -> Result<Option<LoadedConfig>, ConfigLoadError> {
        let location = format!("ssm:{name}");
        let ssm = self.aws.ssm().await;
        let (text, v) =
            get_parameter(ssm, name)
                .await
                .map_err(|message| ConfigLoadError::Read {
                    location: location.clone(),
                    message,
                })?;
        let config = Config::from_yaml(&text, Path::new(&location))?;
        let parent = match name.rfind('/') {
            Some(i) => &name[..=i],
            None => "",
        };
        let mut version = format!("{v}");
        let mut files = Vec::new();
        for pattern in &config.rule_files {
            if pattern.contains(['*', '?', '[']) {
                return Err(ConfigLoadError::RuleFiles {
                    location,
                    pattern: pattern.clone(),
                    message:
                        "globs are not supported with an ssm: configuration; name each parameter"
                            .into(),
                });
            }
            let param = if pattern.starts_with('/') {
                pattern.clone()
            } else {
                format!("{parent}{pattern}")
            };
            let (body, pv) =
                get_parameter(ssm, &param)
                    .await
                    .map_err(|message| ConfigLoadError::Read {
                        location: format!("ssm:{param}"),
                        message,
                    })?;
            version.push_str(&format!(",{param}={pv}"));
            files.push((pattern.trim_start_matches('/').to_string(), body));
        }
        if self.unchanged(&version) {
            return Ok(None);
        }
        let dir = self.fresh_cache_dir(&location)?;
        let mut config = config;
        for (rel, body) in &files {
            write_cached(&dir, rel, body, &location)?;
        }
        // Absolute parameter names were stored relative to the cache directory.
        config.rule_files = files.into_iter().map(|(rel, _)| rel).collect();
        Ok(Some(LoadedConfig {
            config,
            yaml: text,
            base_dir: dir,
            version,
            location,
        }))
    }

    #[cfg(not(feature = "ssm"))]
    async fn poll_ssm(&self, name: &str) -> Result<Option<LoadedConfig>, ConfigLoadError> {
        Err(ConfigLoadError::Unsupported(format!(
            "ssm:{name}: this binary was built without SSM support (feature `ssm` of ember-runtime)"
        )))
    }

    /// An empty cache directory for the rule files of `location`.
    fn fresh_cache_dir(&self, location: &str) -> Result<PathBuf, ConfigLoadError> {
        let h = ember_storage::state::fnv1a64(location.as_bytes());
        let dir = self.cache_dir.join(format!("{h:016x}"));
        let io = |e: std::io::Error| ConfigLoadError::Read {
            location: format!("rule-file cache {}", dir.display()),
            message: e.to_string(),
        };
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        Ok(dir)
    }
}

fn mix(h: u64, bytes: &[u8]) -> u64 {
    let mut buf = h.to_le_bytes().to_vec();
    buf.extend_from_slice(bytes);
    ember_storage::state::fnv1a64(&buf)
}

fn s3_version(listing: &BTreeMap<String, String>, key: &str, matched: &[String]) -> String {
    let mut h = mix(0, key.as_bytes());
    for k in std::iter::once(&key.to_string()).chain(matched) {
        h = mix(h, k.as_bytes());
        h = mix(h, listing.get(k).map(String::as_bytes).unwrap_or_default());
    }
    format!("{h:016x}")
}

/// Keys under `prefix` matching the (relative) `patterns`, sorted.
fn match_keys(
    listing: &BTreeMap<String, String>,
    prefix: &str,
    patterns: &[String],
    location: &str,
) -> Result<Vec<String>, ConfigLoadError> {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut out = Vec::new();
    for p in patterns {
        let rule_err = |message: String| ConfigLoadError::RuleFiles {
            location: location.to_string(),
            pattern: p.clone(),
            message,
        };
        if p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(rule_err(
                "with an s3:// configuration, rule_files are relative to the config's prefix"
                    .into(),
            ));
        }
        let pat =
            glob::Pattern::new(p.trim_start_matches("./")).map_err(|e| rule_err(e.to_string()))?;
        for k in listing.keys() {
            if let Some(rel) = k.strip_prefix(prefix)
                && pat.matches_with(rel, opts)
            {
                out.push(k.clone());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn write_cached(dir: &Path, rel: &str, body: &str, location: &str) -> Result<(), ConfigLoadError> {
    let path = dir.join(rel);
    let io = |e: std::io::Error| ConfigLoadError::Read {
        location: format!("{location}: caching {}", path.display()),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&path, body).map_err(io)
}

/// Every key under `prefix` with its ETag.
async fn list_prefix(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let resp = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ListObjectsV2: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        for o in resp.contents() {
            if let Some(k) = o.key() {
                out.insert(k.to_string(), o.e_tag().unwrap_or_default().to_string());
            }
        }
        match resp.next_continuation_token() {
            Some(t) if resp.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

async fn get_object_text(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<String, String> {
    let resp = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("GetObject: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let bytes = resp
        .body
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .into_bytes();
    String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8 text".to_string())
}

#[cfg(feature = "ssm")]
async fn get_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<(String, i64), String> {
    let resp = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetParameter: {}",
                aws_sdk_ssm::error::DisplayErrorContext(e)
            )
        })?;
    let p = resp.parameter().ok_or("no parameter in the answer")?;
    let value = p.value().ok_or("the parameter has no value")?.to_string();
    Ok((value, p.version()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            ConfigLocation::parse("/etc/ember/prometheus.yml").unwrap(),
            ConfigLocation::File("/etc/ember/prometheus.yml".into())
        );
        assert_eq!(
            ConfigLocation::parse("file:conf/p.yml").unwrap(),
            ConfigLocation::File("conf/p.yml".into())
        );
        assert_eq!(
            ConfigLocation::parse("s3://b/dir/p.yml").unwrap(),
            ConfigLocation::S3 {
                bucket: "b".into(),
                key: "dir/p.yml".into()
            }
        );
        assert_eq!(
            ConfigLocation::parse("ssm:/ember/config").unwrap(),
            ConfigLocation::Ssm {
                name: "/ember/config".into()
            }
        );
        for bad in ["s3://b", "s3://b/", "s3:///k", "ssm:", "ssm:/x/", ""] {
            assert!(ConfigLocation::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ConfigLocation::parse("s3://b/dir/p.yml")
                .unwrap()
                .to_string(),
            "s3://b/dir/p.yml"
        );
    }

    #[test]
    fn rule_globs_match_relative_keys_without_crossing_directories() {
        let listing: BTreeMap<String, String> = [
            "cfg/prometheus.yml",
            "cfg/rules/a.yml",
            "cfg/rules/b.yaml",
            "cfg/rules/sub/c.yml",
            "other/rules/d.yml",
        ]
        .iter()
        .map(|k| (k.to_string(), "e".to_string()))
        .collect();
        let m = match_keys(&listing, "cfg/", &["rules/*.yml".into()], "x").unwrap();
        assert_eq!(m, vec!["cfg/rules/a.yml".to_string()]);
        let m = match_keys(&listing, "cfg/", &["rules/**/*.y*ml".into()], "x").unwrap();
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(match_keys(&listing, "cfg/", &["/abs.yml".into()], "x").is_err());
        assert!(match_keys(&listing, "cfg/", &["../other/rules/d.yml".into()], "x").is_err());
    }

    #[tokio::test]
    async fn file_config_reloads_only_when_it_or_a_rule_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(&cfg, "rule_files: [\"rules/*.yml\"]\n").unwrap();
        std::fs::write(dir.path().join("rules/a.yml"), "groups: []\n").unwrap();
        let mut loader = ConfigLoader::new(
            Some(ConfigLocation::File(cfg.clone())),
            Duration::ZERO,
            Arc::new(AwsContext::from_env()),
            dir.path().join("cache"),
        );
        let first = loader.poll().await.unwrap().expect("first load");
        assert_eq!(first.base_dir, dir.path());
        assert_eq!(first.config.rule_files, vec!["rules/*.yml".to_string()]);
        assert!(loader.poll().await.unwrap().is_none(), "unchanged");
        std::fs::write(
            dir.path().join("rules/a.yml"),
            "groups: [{name: g, rules: []}]\n",
        )
        .unwrap();
        assert!(loader.poll().await.unwrap().is_some(), "rule file changed");
        std::fs::write(dir.path().join("rules/b.yml"), "groups: []\n").unwrap();
        assert!(loader.poll().await.unwrap().is_some(), "rule file added");
        assert!(loader.poll().await.unwrap().is_none());
        std::fs::write(&cfg, "global: {scrape_interval: 10s}\n").unwrap();
        let changed = loader.poll().await.unwrap().expect("config changed");
        assert!(changed.config.rule_files.is_empty());
        // A broken file is an error; the loader stays usable.
        std::fs::write(&cfg, "global: [").unwrap();
        assert!(loader.poll().await.is_err());
    }

    #[tokio::test]
    async fn ttl_limits_checks() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("p.yml");
        std::fs::write(&cfg, "rule_files: []\n").unwrap();
        let mut loader = ConfigLoader::new(
            Some(ConfigLocation::File(cfg.clone())),
            Duration::from_secs(3600),
            Arc::new(AwsContext::from_env()),
            dir.path().join("cache"),
        );
        assert!(loader.poll().await.unwrap().is_some());
        std::fs::write(&cfg, "global: {scrape_interval: 10s}\n").unwrap();
        assert!(loader.poll().await.unwrap().is_none(), "not due yet");
    }

    #[tokio::test]
    async fn no_location_gives_defaults_once() {
        let mut loader = ConfigLoader::new(
            None,
            Duration::ZERO,
            Arc::new(AwsContext::from_env()),
            std::env::temp_dir(),
        );
        let first = loader.poll().await.unwrap().unwrap();
        assert!(first.config.scrape_configs.is_empty());
        assert!(loader.poll().await.unwrap().is_none());
    }
}
