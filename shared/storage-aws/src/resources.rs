//! Creating the table and bucket when missing (`--create-resources`), with the settings
//! the SAM template declares (see `docs/STORAGE.md`): on-demand billing, `pk`/`sk` string
//! keys, TTL on attribute `ttl`.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use ember_storage::{Result, StorageError};

/// Name of the TTL attribute.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// What [`create_resources`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatedResources {
    /// The table was created.
    pub table_created: bool,
    /// TTL was switched on.
    pub ttl_enabled: bool,
    /// The bucket was created.
    pub bucket_created: bool,
}

/// Creates the DynamoDB table (on-demand, TTL on `ttl`) and the S3 bucket if they do not
/// exist; leaves existing ones alone. Idempotent.
pub async fn create_resources(
    dynamo: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
    table: &str,
    bucket: &str,
) -> Result<CreatedResources> {
    let mut done = CreatedResources::default();
    let exists = match dynamo.describe_table().table_name(table).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => {
            return Err(StorageError::internal(
                format!("describing table {table}"),
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            ));
        }
    };
    if !exists {
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
        };
        let build_err = |e: aws_sdk_dynamodb::error::BuildError| {
            StorageError::internal("building CreateTable", e)
        };
        let res = dynamo
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(build_err)?)
            .attribute_definitions(attr("sk").map_err(build_err)?)
            .key_schema(key("pk", KeyType::Hash).map_err(build_err)?)
            .key_schema(key("sk", KeyType::Range).map_err(build_err)?)
            .send()
            .await;
        match res {
            Ok(_) => done.table_created = true,
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => {
                return Err(StorageError::internal(
                    format!("creating table {table}"),
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                ));
            }
        }
        for _ in 0..120 {
            let d = dynamo
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| {
                    StorageError::internal(
                        format!("describing table {table}"),
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    )
                })?;
            if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            StorageError::internal(
                format!("describing TTL of {table}"),
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    let enabled = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|e| StorageError::internal("building TTL specification", e))?;
        dynamo
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| {
                StorageError::internal(
                    format!("enabling TTL on {table}"),
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        done.ttl_enabled = true;
    }
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error().is_some_and(|s| s.is_not_found())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            let region = s3
                .config()
                .region()
                .map(|r| r.as_ref().to_string())
                .unwrap_or_default();
            let mut req = s3.create_bucket().bucket(bucket);
            if !region.is_empty() && region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region.as_str()))
                        .build(),
                );
            }
            match req.send().await {
                Ok(_) => done.bucket_created = true,
                Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => {}
                Err(e) => {
                    return Err(StorageError::internal(
                        format!("creating bucket {bucket}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ));
                }
            }
        }
        Err(e) => {
            return Err(StorageError::internal(
                format!("checking bucket {bucket}"),
                aws_sdk_s3::error::DisplayErrorContext(e),
            ));
        }
    }
    Ok(done)
}
