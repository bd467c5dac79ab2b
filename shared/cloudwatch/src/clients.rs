//! CloudWatch clients per (region, role), built once per process and reused across passes
//! (warm Lambda invocations included), with the account id where STS tells it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use tokio::sync::Mutex;

use crate::CloudWatchError;

/// A client for one region (and role), plus the account it reads.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The CloudWatch client.
    pub client: aws_sdk_cloudwatch::Client,
    /// The account id (the `account_id` label), when known.
    pub account_id: Option<String>,
}

/// Hands out CloudWatch clients; the SDK-backed one for real use, a fixed one for tests.
#[async_trait]
pub trait ClientProvider: Send + Sync {
    /// The client for `region`, assuming `role_arn` (with `external_id`) when given.
    async fn connect(
        &self,
        region: &str,
        role_arn: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Connection, CloudWatchError>;
}

/// Fixed clients per region (tests, or callers that build clients themselves).
#[derive(Debug, Default, Clone)]
pub struct StaticClients {
    by_region: HashMap<String, Connection>,
}

impl StaticClients {
    /// No clients.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the client for `region`.
    pub fn with(mut self, region: impl Into<String>, conn: Connection) -> Self {
        self.by_region.insert(region.into(), conn);
        self
    }
}

#[async_trait]
impl ClientProvider for StaticClients {
    async fn connect(
        &self,
        region: &str,
        _role_arn: Option<&str>,
        _external_id: Option<&str>,
    ) -> Result<Connection, CloudWatchError> {
        self.by_region
            .get(region)
            .cloned()
            .ok_or_else(|| CloudWatchError::Client {
                region: region.to_string(),
                message: "no client configured for this region".into(),
            })
    }
}

/// Clients from the standard AWS configuration (environment, profile, container or
/// instance credentials; `AWS_ENDPOINT_URL` honoured). A role is assumed with aws-config's
/// own `AssumeRoleProvider` (STS is already part of aws-config: no extra dependency), and
/// the account id comes from STS `GetCallerIdentity` (needs no IAM permission; one call
/// per region and role per process).
pub struct SdkClients {
    base: SdkConfig,
    resolve_account: bool,
    cache: Mutex<HashMap<(String, Option<String>), Connection>>,
}

impl std::fmt::Debug for SdkClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkClients")
            .field("resolve_account", &self.resolve_account)
            .finish_non_exhaustive()
    }
}

impl SdkClients {
    /// Clients from the default AWS configuration chain.
    pub async fn from_env() -> Self {
        Self::new(aws_config::defaults(BehaviorVersion::latest()).load().await)
    }

    /// Clients from a given SDK configuration.
    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            resolve_account: true,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to ask STS for the account id (default true).
    pub fn resolve_account(mut self, yes: bool) -> Self {
        self.resolve_account = yes;
        self
    }
}

#[async_trait]
impl ClientProvider for SdkClients {
    async fn connect(
        &self,
        region: &str,
        role_arn: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Connection, CloudWatchError> {
        let key = (region.to_string(), role_arn.map(str::to_string));
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let mut builder = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()));
        if let Some(role) = role_arn {
            let mut b = AssumeRoleProvider::builder(role)
                .session_name("ember-cloudwatch")
                .configure(&self.base)
                .region(Region::new(region.to_string()));
            if let Some(id) = external_id {
                b = b.external_id(id);
            }
            builder = builder.credentials_provider(SharedCredentialsProvider::new(b.build().await));
        }
        let conf = builder.build();
        // Retries are ours (crate::retry), with backoff sized for GetMetricData's quota.
        let cw = aws_sdk_cloudwatch::config::Builder::from(&conf)
            .retry_config(RetryConfig::disabled())
            .build();
        let client = aws_sdk_cloudwatch::Client::from_conf(cw);
        let account_id = if self.resolve_account {
            match aws_sdk_sts::Client::new(&conf)
                .get_caller_identity()
                .send()
                .await
            {
                Ok(out) => out.account().map(str::to_string),
                Err(e) => {
                    tracing::warn!(region, error = %aws_sdk_sts::error::DisplayErrorContext(&e),
                        "sts:GetCallerIdentity failed; imported series get no account_id label");
                    None
                }
            }
        } else {
            None
        };
        let conn = Connection { client, account_id };
        cache.insert(key, conn.clone());
        Ok(conn)
    }
}
