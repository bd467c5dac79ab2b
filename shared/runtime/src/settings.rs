//! [`RuntimeSettings`]: the environment variables of the Lambda contract (see
//! `docs/LAMBDA.md`), read once per process.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{BackendKind, StorageArgs};
use crate::config::{ConfigLocation, LocationError};

/// `EMBER_STORAGE`: `local` or `aws` (default: aws when `EMBER_TABLE` is set, else local).
pub const ENV_STORAGE: &str = "EMBER_STORAGE";
/// `EMBER_TABLE`: the DynamoDB table (aws backend; also holds the state store).
pub const ENV_TABLE: &str = "EMBER_TABLE";
/// `EMBER_BUCKET`: the S3 bucket for blocks (aws backend).
pub const ENV_BUCKET: &str = "EMBER_BUCKET";
/// `EMBER_DATA_DIR`: the embedded store and state directory (local backend; default `./data`).
pub const ENV_DATA_DIR: &str = "EMBER_DATA_DIR";
/// `EMBER_CONFIG`: the prometheus.yml-style configuration (path, `s3://`, `ssm:`).
pub const ENV_CONFIG: &str = "EMBER_CONFIG";
/// `EMBER_CONFIG_TTL`: seconds between checks for a changed configuration (default 60).
pub const ENV_CONFIG_TTL: &str = "EMBER_CONFIG_TTL";
/// `EMBER_AUTH_TOKEN`: secret reference of the HTTP functions' token (`ssm:`, `secretsmanager:`, `file:`).
pub const ENV_AUTH_TOKEN: &str = "EMBER_AUTH_TOKEN";
/// `EMBER_ALERTMANAGER_CONFIG`: the built-in notifier's Alertmanager-format configuration.
pub const ENV_ALERTMANAGER_CONFIG: &str = "EMBER_ALERTMANAGER_CONFIG";
/// `EMBER_CREATE_RESOURCES`: `true` creates a missing table and bucket (local moto use only).
pub const ENV_CREATE_RESOURCES: &str = "EMBER_CREATE_RESOURCES";

/// `EMBER_EXTERNAL_URL`: the URL alerts link back to (generator URLs, `externalURL`).
pub const ENV_EXTERNAL_URL: &str = "EMBER_EXTERNAL_URL";

/// Every variable [`RuntimeSettings::from_env`] reads (the template test checks them).
pub const ENV_VARS: &[&str] = &[
    ENV_STORAGE,
    ENV_TABLE,
    ENV_BUCKET,
    ENV_DATA_DIR,
    ENV_CONFIG,
    ENV_CONFIG_TTL,
    ENV_AUTH_TOKEN,
    ENV_ALERTMANAGER_CONFIG,
    ENV_CREATE_RESOURCES,
    ENV_EXTERNAL_URL,
];

/// Default seconds between configuration change checks.
pub const DEFAULT_CONFIG_TTL: Duration = Duration::from_secs(60);

/// A setting in the environment is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable has a value that cannot be used.
    #[error("{var}={value:?}: {message}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is wrong.
        message: String,
    },
    /// A configuration location is malformed.
    #[error("{var}: {source}")]
    Location {
        /// The variable.
        var: &'static str,
        /// The cause.
        source: LocationError,
    },
    /// The aws backend lacks its table or bucket.
    #[error("the aws storage backend needs EMBER_TABLE and EMBER_BUCKET")]
    MissingAws,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    /// Embedded storage in a data directory.
    Local,
    /// DynamoDB table and S3 bucket.
    Aws {
        /// The table (samples, indexes and process state).
        table: String,
        /// The bucket (Parquet blocks).
        bucket: String,
    },
}

/// The process settings from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Storage backend.
    pub storage: StorageSettings,
    /// Data directory for the embedded store and file state (local backend).
    pub data_dir: PathBuf,
    /// Where the configuration lives; `None` means built-in defaults.
    pub config: Option<ConfigLocation>,
    /// At most this often a warm process checks whether the configuration changed.
    pub config_ttl: Duration,
    /// The secret reference of the HTTP token (resolved by `ember-secrets`), if any.
    pub auth_token: Option<String>,
    /// Where the built-in notifier's Alertmanager configuration lives, if any.
    pub alertmanager_config: Option<ConfigLocation>,
    /// Create a missing table and bucket (development against moto).
    pub create_resources: bool,
    /// The URL alerts link back to (the API's public URL), if set.
    pub external_url: Option<String>,
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token reference names where the secret is, not the secret; still keep it out.
        f.debug_struct("RuntimeSettings")
            .field("storage", &self.storage)
            .field("data_dir", &self.data_dir)
            .field("config", &self.config)
            .field("config_ttl", &self.config_ttl)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .field("alertmanager_config", &self.alertmanager_config)
            .field("create_resources", &self.create_resources)
            .field("external_url", &self.external_url)
            .finish()
    }
}

impl RuntimeSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map). Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let table = get(ENV_TABLE);
        let bucket = get(ENV_BUCKET);
        let kind = match get(ENV_STORAGE).as_deref() {
            None if table.is_some() => BackendKind::Aws,
            None | Some("local") => BackendKind::Local,
            Some("aws") => BackendKind::Aws,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    var: ENV_STORAGE,
                    value: other.to_string(),
                    message: "must be local or aws".into(),
                });
            }
        };
        let storage = match kind {
            BackendKind::Local => StorageSettings::Local,
            BackendKind::Aws => match (table, bucket) {
                (Some(table), Some(bucket)) => StorageSettings::Aws { table, bucket },
                _ => return Err(SettingsError::MissingAws),
            },
        };
        let location = |var: &'static str| -> Result<Option<ConfigLocation>, SettingsError> {
            get(var)
                .map(|v| {
                    ConfigLocation::parse(&v)
                        .map_err(|source| SettingsError::Location { var, source })
                })
                .transpose()
        };
        let config_ttl = match get(ENV_CONFIG_TTL) {
            None => DEFAULT_CONFIG_TTL,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|e| SettingsError::Invalid {
                    var: ENV_CONFIG_TTL,
                    value: v.clone(),
                    message: format!("seconds expected: {e}"),
                })?,
        };
        let create_resources = match get(ENV_CREATE_RESOURCES).as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    var: ENV_CREATE_RESOURCES,
                    value: other.to_string(),
                    message: "must be true or false".into(),
                });
            }
        };
        Ok(Self {
            storage,
            data_dir: get(ENV_DATA_DIR)
                .map(PathBuf::from)
                .unwrap_or_else(crate::backend::default_data_dir),
            config: location(ENV_CONFIG)?,
            config_ttl,
            auth_token: get(ENV_AUTH_TOKEN),
            alertmanager_config: location(ENV_ALERTMANAGER_CONFIG)?,
            create_resources,
            external_url: get(ENV_EXTERNAL_URL),
        })
    }

    /// The same choice as storage flags, for [`crate::backend::open_with`].
    pub fn storage_args(&self) -> StorageArgs {
        match &self.storage {
            StorageSettings::Local => StorageArgs {
                storage: Some(BackendKind::Local),
                ..StorageArgs::default()
            },
            StorageSettings::Aws { table, bucket } => StorageArgs {
                storage: Some(BackendKind::Aws),
                table: Some(table.clone()),
                bucket: Some(bucket.clone()),
                create_resources: self.create_resources,
            },
        }
    }

    /// Whether anything needs AWS clients (the aws backend or an `s3://`/`ssm:` config).
    pub fn needs_aws(&self) -> bool {
        matches!(self.storage, StorageSettings::Aws { .. })
            || [&self.config, &self.alertmanager_config]
                .into_iter()
                .flatten()
                .any(ConfigLocation::is_remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<RuntimeSettings, SettingsError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RuntimeSettings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_local_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.storage, StorageSettings::Local);
        assert_eq!(s.data_dir, PathBuf::from("data"));
        assert_eq!(s.config, None);
        assert_eq!(s.config_ttl, Duration::from_secs(60));
        assert!(!s.needs_aws());
    }

    #[test]
    fn a_table_selects_aws_unless_local_is_forced() {
        let s = settings(&[("EMBER_TABLE", "t"), ("EMBER_BUCKET", "b")]).unwrap();
        assert_eq!(
            s.storage,
            StorageSettings::Aws {
                table: "t".into(),
                bucket: "b".into()
            }
        );
        assert!(s.needs_aws());
        let s = settings(&[
            ("EMBER_TABLE", "t"),
            ("EMBER_BUCKET", "b"),
            ("EMBER_STORAGE", "local"),
        ])
        .unwrap();
        assert_eq!(s.storage, StorageSettings::Local);
        assert!(matches!(
            settings(&[("EMBER_STORAGE", "aws"), ("EMBER_TABLE", "t")]),
            Err(SettingsError::MissingAws)
        ));
        assert!(matches!(
            settings(&[("EMBER_STORAGE", "dynamo")]),
            Err(SettingsError::Invalid {
                var: "EMBER_STORAGE",
                ..
            })
        ));
    }

    #[test]
    fn config_locations_and_ttl_parse() {
        let s = settings(&[
            ("EMBER_CONFIG", "s3://cfg/ember/prometheus.yml"),
            ("EMBER_CONFIG_TTL", "5"),
            ("EMBER_ALERTMANAGER_CONFIG", "ssm:/ember/alertmanager"),
            ("EMBER_AUTH_TOKEN", "ssm:/ember/token"),
        ])
        .unwrap();
        assert_eq!(
            s.config,
            Some(ConfigLocation::S3 {
                bucket: "cfg".into(),
                key: "ember/prometheus.yml".into()
            })
        );
        assert_eq!(s.config_ttl, Duration::from_secs(5));
        assert!(s.needs_aws());
        assert!(!format!("{s:?}").contains("/ember/token"));
        assert!(matches!(
            settings(&[("EMBER_CONFIG_TTL", "soon")]),
            Err(SettingsError::Invalid {
                var: "EMBER_CONFIG_TTL",
                ..
            })
        ));
        assert!(matches!(
            settings(&[("EMBER_CONFIG", "s3://only-bucket")]),
            Err(SettingsError::Location {
                var: "EMBER_CONFIG",
                ..
            })
        ));
    }
}
