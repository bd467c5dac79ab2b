//! The DynamoDB access layer: the handful of calls the hot store makes, behind a trait so
//! tests can inject faults (throttling, timeouts, partial batches) and benchmarks can
//! meter every request, with the real SDK client as the production implementation.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ReturnValue, WriteRequest,
};

/// A DynamoDB item (or key).
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute name.
pub const PK: &str = "pk";
/// Sort key attribute name.
pub const SK: &str = "sk";

/// Why a DynamoDB call failed, classified for the retry loop.
#[derive(Debug, thiserror::Error)]
pub enum DdbError {
    /// Throttled (ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded):
    /// retry with backoff.
    #[error("throttled during {context}: {message}")]
    Throttled {
        /// The operation.
        context: String,
        /// Details.
        message: String,
    },
    /// A timeout, a connection failure or a 5xx: retry with backoff.
    #[error("transient failure during {context}: {message}")]
    Transient {
        /// The operation.
        context: String,
        /// Details.
        message: String,
    },
    /// The request itself is wrong (validation, item too large, missing table).
    #[error("DynamoDB rejected {context}: {message}")]
    Fatal {
        /// The operation.
        context: String,
        /// Details.
        message: String,
    },
}

impl DdbError {
    /// Whether retrying may help.
    pub fn retryable(&self) -> bool {
        !matches!(self, DdbError::Fatal { .. })
    }

    fn from_sdk<E, R>(context: &str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let context = context.to_string();
        let message = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
        match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => DdbError::Transient { context, message },
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or_default();
                if matches!(
                    code,
                    "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "LimitExceededException"
                ) {
                    DdbError::Throttled { context, message }
                } else if matches!(
                    code,
                    "InternalServerError" | "ServiceUnavailable" | "TransactionInProgressException"
                ) {
                    DdbError::Transient { context, message }
                } else {
                    DdbError::Fatal { context, message }
                }
            }
            _ => DdbError::Fatal { context, message },
        }
    }
}

/// One page of a Query.
#[derive(Debug, Default)]
pub struct QueryPage {
    /// Items of the page.
    pub items: Vec<Item>,
    /// Where the next page starts, if there is one.
    pub last_key: Option<Item>,
}

/// What to query: one partition, optionally a sort-key lower bound.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// Partition key value.
    pub pk: String,
    /// Only items whose sort key is `>=` this.
    pub sk_from: Option<String>,
    /// Only items whose sort key begins with this.
    pub sk_prefix: Option<String>,
    /// Attributes to return (all when empty).
    pub projection: Vec<&'static str>,
    /// Strongly consistent read.
    pub consistent: bool,
}

impl QuerySpec {
    /// Every item of partition `pk`.
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk_from: None,
            sk_prefix: None,
            projection: Vec::new(),
            consistent: true,
        }
    }
}

/// The DynamoDB calls the AWS backend makes. Every method is one request.
#[async_trait]
pub trait DynamoApi: Send + Sync {
    /// BatchWriteItem of up to 25 put/delete requests; returns the unprocessed requests.
    async fn batch_write(&self, requests: Vec<WriteRequest>)
    -> Result<Vec<WriteRequest>, DdbError>;

    /// PutItem with `attribute_not_exists(pk)`; `Ok(false)` when the item already exists.
    async fn put_if_absent(&self, item: Item) -> Result<bool, DdbError>;

    /// PutItem that succeeds only when the stored item's numeric attribute `attr` equals
    /// `expected` (or the item is absent when `expected` is `None`); `Ok(false)` otherwise.
    async fn put_if_equal(
        &self,
        item: Item,
        attr: &str,
        expected: Option<u64>,
    ) -> Result<bool, DdbError>;

    /// Unconditional PutItem.
    async fn put(&self, item: Item) -> Result<(), DdbError>;

    /// GetItem (strongly consistent).
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, DdbError>;

    /// UpdateItem `ADD attr :n` returning the new value.
    async fn add(&self, pk: &str, sk: &str, attr: &str, n: u64) -> Result<u64, DdbError>;

    /// UpdateItem `SET attr = :v`.
    async fn set_number(&self, pk: &str, sk: &str, attr: &str, v: i64) -> Result<(), DdbError>;

    /// One page of a Query.
    async fn query(&self, spec: &QuerySpec, start: Option<Item>) -> Result<QueryPage, DdbError>;
}

/// [`DynamoApi`] over the AWS SDK client for one table.
#[derive(Debug, Clone)]
pub struct SdkDynamo {
    client: Client,
    table: String,
}

impl SdkDynamo {
    /// Calls go to `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(pk.to_string())),
        (SK.to_string(), AttributeValue::S(sk.to_string())),
    ])
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

#[async_trait]
impl DynamoApi for SdkDynamo {
    async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, DdbError> {
        let out = self
            .client
            .batch_write_item()
            .request_items(self.table.clone(), requests)
            .send()
            .await
            .map_err(|e| DdbError::from_sdk("BatchWriteItem", e))?;
        Ok(out
            .unprocessed_items
            .and_then(|mut m| m.remove(&self.table))
            .unwrap_or_default())
    }

    async fn put_if_absent(&self, item: Item) -> Result<bool, DdbError> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(DdbError::from_sdk("PutItem (if absent)", e)),
        }
    }

    async fn put_if_equal(
        &self,
        item: Item,
        attr: &str,
        expected: Option<u64>,
    ) -> Result<bool, DdbError> {
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let req = match expected {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(v) => req
                .condition_expression("#a = :v")
                .expression_attribute_names("#a", attr)
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(DdbError::from_sdk("PutItem (if equal)", e)),
        }
    }

    async fn put(&self, item: Item) -> Result<(), DdbError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| DdbError::from_sdk("PutItem", e))?;
        Ok(())
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, DdbError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DdbError::from_sdk("GetItem", e))?;
        Ok(out.item)
    }

    async fn add(&self, pk: &str, sk: &str, attr: &str, n: u64) -> Result<u64, DdbError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression("ADD #a :n")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| DdbError::from_sdk("UpdateItem (ADD)", e))?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get(attr))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| DdbError::Fatal {
                context: "UpdateItem (ADD)".into(),
                message: "no new value returned".into(),
            })
    }

    async fn set_number(&self, pk: &str, sk: &str, attr: &str, v: i64) -> Result<(), DdbError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", AttributeValue::N(v.to_string()))
            .send()
            .await
            .map_err(|e| DdbError::from_sdk("UpdateItem (SET)", e))?;
        Ok(())
    }

    async fn query(&self, spec: &QuerySpec, start: Option<Item>) -> Result<QueryPage, DdbError> {
        let mut cond = "pk = :pk".to_string();
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(spec.consistent)
            .expression_attribute_values(":pk", AttributeValue::S(spec.pk.clone()))
            .set_exclusive_start_key(start);
        if let Some(from) = &spec.sk_from {
            cond.push_str(" AND sk >= :from");
            req = req.expression_attribute_values(":from", AttributeValue::S(from.clone()));
        } else if let Some(prefix) = &spec.sk_prefix {
            cond.push_str(" AND begins_with(sk, :prefix)");
            req = req.expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()));
        }
        if !spec.projection.is_empty() {
            let names: Vec<String> = (0..spec.projection.len())
                .map(|i| format!("#p{i}"))
                .collect();
            req = req.projection_expression(names.join(","));
            for (n, attr) in names.iter().zip(&spec.projection) {
                req = req.expression_attribute_names(n, *attr);
            }
        }
        let out = req
            .key_condition_expression(cond)
            .send()
            .await
            .map_err(|e| DdbError::from_sdk("Query", e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key,
        })
    }
}

/// A put request for `item`.
pub fn put_request(item: Item) -> Result<WriteRequest, DdbError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| DdbError::Fatal {
            context: "building PutRequest".into(),
            message: e.to_string(),
        })?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// A delete request for the item with this key.
pub fn delete_request(pk: &str, sk: &str) -> Result<WriteRequest, DdbError> {
    let del = DeleteRequest::builder()
        .set_key(Some(key(pk, sk)))
        .build()
        .map_err(|e| DdbError::Fatal {
            context: "building DeleteRequest".into(),
            message: e.to_string(),
        })?;
    Ok(WriteRequest::builder().delete_request(del).build())
}

/// DynamoDB's billing size of an item: attribute names plus values (strings and binary by
/// length, numbers roughly 1 byte per 2 digits + 1).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}
