//! [`AwsContext`]: the AWS SDK configuration and clients of one process (one Lambda
//! container), built on first use and then shared, so nothing slow happens at init and
//! no client is built twice.

use aws_config::SdkConfig;
use ember_storage_aws::AwsClients;
use tokio::sync::OnceCell;

/// Lazily built SDK configuration and clients (standard environment: `AWS_ENDPOINT_URL`,
/// `AWS_REGION`, credentials chain).
#[derive(Debug, Default)]
pub struct AwsContext {
    sdk: OnceCell<SdkConfig>,
    clients: OnceCell<AwsClients>,
    #[cfg(feature = "ssm")]
    ssm: OnceCell<aws_sdk_ssm::Client>,
}

impl AwsContext {
    /// A context that loads the SDK configuration from the environment on first use.
    pub fn from_env() -> Self {
        Self::default()
    }

    /// A context over an explicit SDK configuration (tests point it at moto).
    pub fn with_config(sdk: SdkConfig) -> Self {
        let ctx = Self::default();
        // A fresh cell cannot be full, so this cannot fail.
        let _ = ctx.sdk.set(sdk);
        ctx
    }

    /// The SDK configuration.
    pub async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await
            })
            .await
    }

    /// DynamoDB and S3 clients (S3 with path-style addressing).
    pub async fn clients(&self) -> &AwsClients {
        let sdk = self.sdk().await;
        self.clients
            .get_or_init(|| async { AwsClients::from_sdk_config(sdk) })
            .await
    }

    /// The SSM client.
    #[cfg(feature = "ssm")]
    pub async fn ssm(&self) -> &aws_sdk_ssm::Client {
        let sdk = self.sdk().await;
        self.ssm
            .get_or_init(|| async { aws_sdk_ssm::Client::new(sdk) })
            .await
    }
}
