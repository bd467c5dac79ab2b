//! [`S3ObjectStore`]: block files in an S3 bucket, read with ranged GETs.

use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use ember_blocks::{ObjectMeta, ObjectStore, ObjectStoreError};

/// An [`ObjectStore`] on one S3 bucket, keys optionally under a prefix.
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3ObjectStore {
    /// Objects live in `bucket` under `prefix` (empty or ending in `/`).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn classify<E>(
    context: String,
    key: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> ObjectStoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ObjectStoreError::Unavailable { context, message }
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let status = se.raw().status().as_u16();
            if matches!(code, "NoSuchKey" | "NotFound") || status == 404 {
                ObjectStoreError::NotFound(key.to_string())
            } else if matches!(
                code,
                "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout"
            ) || status >= 500
            {
                ObjectStoreError::Unavailable { context, message }
            } else {
                ObjectStoreError::Other { context, message }
            }
        }
        _ => ObjectStoreError::Other { context, message },
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("PUT s3://{}/{}", self.bucket, self.full(key)),
                    key,
                    e,
                )
            })?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        let ctx = || format!("GET s3://{}/{}", self.bucket, self.full(key));
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| classify(ctx(), key, e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ObjectStoreError::unavailable(ctx(), e))?;
        Ok(body.into_bytes())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let ctx = || {
            format!(
                "GET s3://{}/{} bytes={}-{}",
                self.bucket,
                self.full(key),
                range.start,
                range.end - 1
            )
        };
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| classify(ctx(), key, e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ObjectStoreError::unavailable(ctx(), e))?
            .into_bytes();
        if body.len() as u64 != range.end - range.start {
            return Err(ObjectStoreError::other(
                ctx(),
                format!("got {} bytes", body.len()),
            ));
        }
        Ok(body)
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("DELETE s3://{}/{}", self.bucket, self.full(key)),
                    key,
                    e,
                )
            })?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    classify(
                        format!("LIST s3://{}/{}", self.bucket, self.full(prefix)),
                        prefix,
                        e,
                    )
                })?;
            for obj in resp.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push(ObjectMeta {
                        key: k.to_string(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
