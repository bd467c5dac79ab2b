//! Secret references and redacted secrets.
//!
//! Ember never takes a token or webhook URL as a plain command-line value or
//! environment value in deployed form: it takes a *reference* to where the secret
//! lives ([`SecretRef`]) and resolves it once (at cold start / server start) into a
//! [`Secret`], whose `Debug` and `Display` print `<redacted>` so it cannot leak
//! into logs, and which compares in constant time ([`Secret::matches`]).
//!
//! Reference forms (see [`SecretRef::parse`]):
//! - `ssm:/parameter/name` — SSM Parameter Store (`GetParameter`, `WithDecryption`,
//!   so SecureString works; IAM `ssm:GetParameter`, plus `kms:Decrypt` when the
//!   parameter uses a customer-managed key);
//! - `secretsmanager:<name-or-arn>` — Secrets Manager (`GetSecretValue`; IAM
//!   `secretsmanager:GetSecretValue`). A `#key` suffix selects one field of a JSON
//!   secret (`secretsmanager:ember/token#token`);
//! - `file:/path` — a local file (trailing newline removed);
//! - `env:NAME` — an environment variable (local use and tests).
//!
//! AWS clients come from the standard SDK environment ([`SecretClients::from_env`]:
//! `AWS_REGION`, credentials chain, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SSM` /
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, so a moto server works in tests).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Why a secret reference could not be parsed or resolved. Messages name the
/// reference (never the secret value).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The reference string is not one of the supported forms.
    #[error(
        "invalid secret reference {input:?}: {reason} (expected ssm:/name, secretsmanager:<name-or-arn>[#key], file:/path or env:NAME)"
    )]
    Parse {
        /// The reference as given (references are not secret).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// SSM `GetParameter` failed (missing parameter, access denied, network…).
    #[error("reading SSM parameter {name}: {message}")]
    Ssm {
        /// Parameter name.
        name: String,
        /// The SDK error, with its service error code where there is one.
        message: String,
    },
    /// Secrets Manager `GetSecretValue` failed.
    #[error("reading Secrets Manager secret {id}: {message}")]
    SecretsManager {
        /// Secret name or ARN.
        id: String,
        /// The SDK error, with its service error code where there is one.
        message: String,
    },
    /// A JSON secret did not have the requested `#key` as a string field.
    #[error("Secrets Manager secret {id}: {message}")]
    JsonKey {
        /// Secret name or ARN.
        id: String,
        /// What was missing (the key name, never values).
        message: String,
    },
    /// Reading a `file:` secret failed.
    #[error("reading secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An `env:` variable is unset or not Unicode.
    #[error("secret environment variable {name} is not set (or not valid UTF-8)")]
    Env {
        /// The variable name.
        name: String,
    },
    /// The referenced secret exists but is empty (an empty token would let anyone in).
    #[error("secret {reference} is empty")]
    Empty {
        /// The reference, as text.
        reference: String,
    },
    /// An `ssm:`/`secretsmanager:` reference in a build without the `aws` feature.
    #[error(
        "secret {reference} needs AWS support, which this build of ember-secrets lacks (feature \"aws\")"
    )]
    AwsUnsupported {
        /// The reference, as text.
        reference: String,
    },
    /// The value is not valid UTF-8 (binary Secrets Manager secrets, files).
    #[error("secret {reference} is not valid UTF-8")]
    NotUtf8 {
        /// The reference, as text.
        reference: String,
    },
}

/// Where a secret lives. Parse with [`SecretRef::parse`] (or `str::parse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// SSM Parameter Store parameter name or ARN (read with decryption).
    Ssm(String),
    /// Secrets Manager secret name or ARN, with an optional JSON field.
    SecretsManager {
        /// Secret name or ARN.
        id: String,
        /// Field of a JSON `SecretString` to use (`#key` suffix), if any.
        json_key: Option<String>,
    },
    /// A local file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl SecretRef {
    /// Parses `ssm:/name`, `secretsmanager:<name-or-arn>[#key]`, `file:/path` or `env:NAME`.
    pub fn parse(input: &str) -> Result<SecretRef, SecretError> {
        let err = |reason| SecretError::Parse {
            input: input.to_string(),
            reason,
        };
        let (scheme, rest) = input.split_once(':').ok_or(err("no scheme"))?;
        if rest.trim().is_empty() {
            return Err(err("empty name"));
        }
        if rest != rest.trim() {
            return Err(err("leading or trailing whitespace"));
        }
        match scheme {
            "ssm" => Ok(SecretRef::Ssm(rest.to_string())),
            "secretsmanager" => {
                let (id, json_key) = match rest.split_once('#') {
                    Some((id, key)) => {
                        if id.is_empty() || key.is_empty() {
                            return Err(err("empty secret id or #key"));
                        }
                        (id.to_string(), Some(key.to_string()))
                    }
                    None => (rest.to_string(), None),
                };
                Ok(SecretRef::SecretsManager { id, json_key })
            }
            "file" => Ok(SecretRef::File(PathBuf::from(rest))),
            "env" => Ok(SecretRef::Env(rest.to_string())),
            _ => Err(err("unknown scheme")),
        }
    }

    /// Whether resolving needs AWS clients (SSM or Secrets Manager).
    pub fn needs_aws(&self) -> bool {
        matches!(self, SecretRef::Ssm(_) | SecretRef::SecretsManager { .. })
    }

    /// Reads the secret. Files and `env:` values lose one trailing newline
    /// (`\n` or `\r\n`) as written by `echo` or editors; other whitespace is kept.
    /// An empty secret is an error.
    pub async fn resolve(&self, clients: &SecretClients) -> Result<Secret, SecretError> {
        let value: Zeroizing<String> = match self {
            #[cfg(feature = "aws")]
            SecretRef::Ssm(name) => {
                let out = clients
                    .ssm
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| SecretError::Ssm {
                        name: name.clone(),
                        message: sdk_message(&e),
                    })?;
                let value =
                    out.parameter
                        .and_then(|p| p.value)
                        .ok_or_else(|| SecretError::Empty {
                            reference: self.to_string(),
                        })?;
                Zeroizing::new(value)
            }
            #[cfg(feature = "aws")]
            SecretRef::SecretsManager { id, json_key } => {
                let out = clients
                    .secrets_manager
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| SecretError::SecretsManager {
                        id: id.clone(),
                        message: sdk_message(&e),
                    })?;
                let raw = match (out.secret_string, out.secret_binary) {
                    (Some(s), _) => Zeroizing::new(s),
                    (None, Some(b)) => {
                        Zeroizing::new(String::from_utf8(b.into_inner()).map_err(|_| {
                            SecretError::NotUtf8 {
                                reference: self.to_string(),
                            }
                        })?)
                    }
                    (None, None) => {
                        return Err(SecretError::Empty {
                            reference: self.to_string(),
                        });
                    }
                };
                match json_key {
                    None => raw,
                    Some(key) => Zeroizing::new(json_field(id, &raw, key)?),
                }
            }
            #[cfg(not(feature = "aws"))]
            SecretRef::Ssm(_) | SecretRef::SecretsManager { .. } => {
                let _ = clients;
                return Err(SecretError::AwsUnsupported {
                    reference: self.to_string(),
                });
            }
            SecretRef::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 {
                    reference: self.to_string(),
                })?;
                Zeroizing::new(strip_newline(text))
            }
            SecretRef::Env(name) => {
                let text =
                    std::env::var(name).map_err(|_| SecretError::Env { name: name.clone() })?;
                Zeroizing::new(strip_newline(text))
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                reference: self.to_string(),
            });
        }
        Ok(Secret(value))
    }

    /// Resolves with clients built from the standard AWS environment only when the
    /// reference needs them (so `file:`/`env:` references work with no AWS setup).
    pub async fn resolve_from_env(&self) -> Result<Secret, SecretError> {
        let clients = if self.needs_aws() {
            SecretClients::from_env().await
        } else {
            SecretClients::unconfigured()
        };
        self.resolve(&clients).await
    }
}

impl FromStr for SecretRef {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretRef::parse(s)
    }
}

impl fmt::Display for SecretRef {
    /// The reference in its parseable form (references are not secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Ssm(name) => write!(f, "ssm:{name}"),
            SecretRef::SecretsManager { id, json_key: None } => write!(f, "secretsmanager:{id}"),
            SecretRef::SecretsManager {
                id,
                json_key: Some(k),
            } => write!(f, "secretsmanager:{id}#{k}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Env(name) => write!(f, "env:{name}"),
        }
    }
}

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

#[cfg_attr(not(feature = "aws"), allow(dead_code))]
fn json_field(id: &str, raw: &str, key: &str) -> Result<String, SecretError> {
    let json_err = |message: String| SecretError::JsonKey {
        id: id.to_string(),
        message,
    };
    // The parse error text could quote part of the secret: do not include it.
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|_| json_err(format!("#{key} given but the secret is not a JSON object")))?;
    match value.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(json_err(format!("field {key:?} is not a string"))),
        None => Err(json_err(format!("no field {key:?}"))),
    }
}

#[cfg(feature = "aws")]
/// The SDK error's service code and message (e.g. `ParameterNotFound`), without
/// the full debug dump.
fn sdk_message<E, R>(e: &aws_sdk_ssm::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("service error"),
            service.message().unwrap_or("")
        ),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// The AWS clients secrets are read with; build once per process. Without the
/// `aws` feature it is empty and AWS references fail with
/// [`SecretError::AwsUnsupported`].
#[derive(Debug, Clone)]
pub struct SecretClients {
    #[cfg(feature = "aws")]
    ssm: aws_sdk_ssm::Client,
    #[cfg(feature = "aws")]
    secrets_manager: aws_sdk_secretsmanager::Client,
}

#[cfg(not(feature = "aws"))]
impl SecretClients {
    /// Without the `aws` feature: no clients.
    pub async fn from_env() -> Self {
        Self {}
    }

    /// Without the `aws` feature: no clients.
    pub fn unconfigured() -> Self {
        Self {}
    }
}

#[cfg(feature = "aws")]
impl SecretClients {
    /// Clients from the standard AWS environment (region, credentials chain,
    /// `AWS_ENDPOINT_URL*`).
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::from_sdk_config(&sdk)
    }

    /// Clients from an SDK configuration the caller already loaded (share it with
    /// the other SDK clients of the process).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            ssm: aws_sdk_ssm::Client::new(sdk),
            secrets_manager: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }

    /// Clients with no region or credentials: enough for `file:`/`env:` references;
    /// SSM/Secrets Manager references fail with a clear SDK error.
    pub fn unconfigured() -> Self {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Self::from_sdk_config(&sdk)
    }
}

/// A resolved secret (token, password, webhook URL). `Debug`/`Display` print
/// `<redacted>`; the memory is zeroed on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value obtained elsewhere (tests, config files already read).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret text, for the one place that must send it (an HTTP header, a
    /// webhook URL). Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented credential. The time taken does
    /// not depend on where the first differing byte is (it does reveal whether the
    /// lengths differ, as every length-prefixed compare does).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            SecretRef::parse("ssm:/ember/token").unwrap(),
            SecretRef::Ssm("/ember/token".into())
        );
        assert_eq!(
            SecretRef::parse(
                "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf"
            )
            .unwrap(),
            SecretRef::SecretsManager {
                id: "arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf".into(),
                json_key: None
            }
        );
        assert_eq!(
            SecretRef::parse("secretsmanager:ember/token#token").unwrap(),
            SecretRef::SecretsManager {
                id: "ember/token".into(),
                json_key: Some("token".into())
            }
        );
        assert_eq!(
            SecretRef::parse("file:/run/token").unwrap(),
            SecretRef::File("/run/token".into())
        );
        assert_eq!(
            SecretRef::parse("env:TOKEN").unwrap(),
            SecretRef::Env("TOKEN".into())
        );
        for s in [
            "ssm:/a",
            "secretsmanager:x",
            "secretsmanager:x#k",
            "file:/p",
            "env:N",
        ] {
            assert_eq!(SecretRef::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_references() {
        for s in [
            "",
            "token",
            "ssm:",
            "vault:/x",
            "secretsmanager:#k",
            "secretsmanager:x#",
            "file: /x",
            "SSM:/x",
        ] {
            let e = SecretRef::parse(s).unwrap_err();
            assert!(matches!(e, SecretError::Parse { .. }), "{s}: {e}");
        }
    }

    #[test]
    fn secret_is_redacted_and_compares() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert!(s.matches(b"hunter2-token"));
        assert!(!s.matches(b"hunter2-tokeN"));
        assert!(!s.matches(b"hunter2-token "));
        assert!(!s.matches(b"hunter2"));
        assert!(!s.matches(b""));
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn json_field_selection() {
        let raw = r#"{"token":"abc","n":1}"#;
        assert_eq!(json_field("id", raw, "token").unwrap(), "abc");
        assert!(matches!(
            json_field("id", raw, "n"),
            Err(SecretError::JsonKey { .. })
        ));
        assert!(matches!(
            json_field("id", raw, "missing"),
            Err(SecretError::JsonKey { .. })
        ));
        let e = json_field("id", "not json abc", "token").unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
    }

    #[test]
    fn strips_one_newline_only() {
        assert_eq!(strip_newline("a\n".into()), "a");
        assert_eq!(strip_newline("a\r\n".into()), "a");
        assert_eq!(strip_newline("a\n\n".into()), "a\n");
        assert_eq!(strip_newline(" a ".into()), " a ");
    }
}
