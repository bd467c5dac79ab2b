//! Request metering: counts every DynamoDB and S3 request with the units AWS bills
//! (write units per started KB of each item, read units per started 4 KB), for the cost
//! model and for Ember's own metrics.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::WriteRequest;
use bytes::Bytes;
use ember_blocks::{ObjectMeta, ObjectStore, ObjectStoreError};
use serde::Serialize;

use crate::api::{DdbError, DynamoApi, Item, QueryPage, QuerySpec, item_size};

/// us-east-1 on-demand prices used by [`MeterSnapshot::dollars`] (see reference/anchors.md).
pub mod prices {
    /// $ per DynamoDB write request unit.
    pub const WRU: f64 = 0.625 / 1e6;
    /// $ per DynamoDB read request unit.
    pub const RRU: f64 = 0.125 / 1e6;
    /// $ per S3 PUT, COPY, POST or LIST.
    pub const S3_PUT: f64 = 0.005 / 1000.0;
    /// $ per S3 GET.
    pub const S3_GET: f64 = 0.0004 / 1000.0;
}

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident),* $(,)? }) => {
        /// Live counters (atomics).
        #[derive(Debug, Default)]
        pub struct Meter { $($(#[$fm])* pub $f: AtomicU64,)* }
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
        pub struct $name { $($(#[$fm])* pub $f: u64,)* }
        impl Meter {
            /// The current values.
            pub fn snapshot(&self) -> $name { $name { $($f: self.$f.load(Ordering::Relaxed),)* } }
        }
        impl std::ops::Sub for $name {
            type Output = $name;
            fn sub(self, o: $name) -> $name { $name { $($f: self.$f.saturating_sub(o.$f),)* } }
        }
    };
}

counters!(
    /// A copy of the counters at one moment (subtract two for a delta).
    MeterSnapshot {
        /// DynamoDB requests of any kind (each attempt).
        ddb_requests,
        /// BatchWriteItem requests.
        ddb_batch_writes,
        /// Items written (puts and deletes that were processed).
        ddb_items_written,
        /// Write request units billed.
        ddb_wru,
        /// Bytes of items written (DynamoDB item size).
        ddb_bytes_written,
        /// Read request units billed, times two (eventually consistent reads are halves).
        ddb_rru_x2,
        /// Bytes of items read.
        ddb_bytes_read,
        /// Throttled or failed DynamoDB attempts.
        ddb_errors,
        /// S3 PUT requests.
        s3_puts,
        /// S3 bytes uploaded.
        s3_put_bytes,
        /// S3 GET requests (whole or ranged).
        s3_gets,
        /// S3 bytes downloaded.
        s3_get_bytes,
        /// S3 LIST requests.
        s3_lists,
        /// S3 DELETE requests (free).
        s3_deletes,
    }
);

impl MeterSnapshot {
    /// Dollars for these requests at us-east-1 on-demand prices (storage not included).
    pub fn dollars(&self) -> f64 {
        self.ddb_wru as f64 * prices::WRU
            + self.ddb_rru_x2 as f64 / 2.0 * prices::RRU
            + (self.s3_puts + self.s3_lists) as f64 * prices::S3_PUT
            + self.s3_gets as f64 * prices::S3_GET
    }
}

fn wru(size: usize) -> u64 {
    size.div_ceil(1024).max(1) as u64
}

fn rru_x2(bytes: usize, consistent: bool) -> u64 {
    let units = bytes.div_ceil(4096).max(1) as u64;
    if consistent { units * 2 } else { units }
}

fn add(c: &AtomicU64, v: u64) {
    c.fetch_add(v, Ordering::Relaxed);
}

/// A [`DynamoApi`] that meters another.
pub struct MeteredDynamo<A> {
    inner: A,
    meter: Arc<Meter>,
}

impl<A> MeteredDynamo<A> {
    /// Meters `inner` into `meter`.
    pub fn new(inner: A, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }

    /// The counters.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// The wrapped access layer.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn wrote(&self, size: usize) {
        add(&self.meter.ddb_items_written, 1);
        add(&self.meter.ddb_wru, wru(size));
        add(&self.meter.ddb_bytes_written, size as u64);
    }

    fn read(&self, bytes: usize, consistent: bool) {
        add(&self.meter.ddb_rru_x2, rru_x2(bytes, consistent));
        add(&self.meter.ddb_bytes_read, bytes as u64);
    }

    fn result<T>(&self, r: Result<T, DdbError>) -> Result<T, DdbError> {
        if r.is_err() {
            add(&self.meter.ddb_errors, 1);
        }
        r
    }
}

fn request_size(r: &WriteRequest) -> usize {
    match (r.put_request(), r.delete_request()) {
        (Some(p), _) => item_size(p.item()),
        (None, Some(d)) => item_size(d.key()),
        _ => 0,
    }
}

#[async_trait]
impl<A: DynamoApi> DynamoApi for MeteredDynamo<A> {
    async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, DdbError> {
        add(&self.meter.ddb_requests, 1);
        add(&self.meter.ddb_batch_writes, 1);
        let sizes: Vec<(String, usize)> = requests
            .iter()
            .map(|r| (request_key(r), request_size(r)))
            .collect();
        let r = self.result(self.inner.batch_write(requests).await)?;
        let unprocessed: std::collections::HashSet<String> = r.iter().map(request_key).collect();
        for (k, size) in sizes {
            if !unprocessed.contains(&k) {
                self.wrote(size);
            }
        }
        Ok(r)
    }

    async fn put_if_absent(&self, item: Item) -> Result<bool, DdbError> {
        add(&self.meter.ddb_requests, 1);
        let size = item_size(&item);
        let r = self.result(self.inner.put_if_absent(item).await)?;
        self.wrote(size);
        Ok(r)
    }

    async fn put_if_equal(
        &self,
        item: Item,
        attr: &str,
        expected: Option<u64>,
    ) -> Result<bool, DdbError> {
        add(&self.meter.ddb_requests, 1);
        let size = item_size(&item);
        let r = self.result(self.inner.put_if_equal(item, attr, expected).await)?;
        self.wrote(size);
        Ok(r)
    }

    async fn put(&self, item: Item) -> Result<(), DdbError> {
        add(&self.meter.ddb_requests, 1);
        let size = item_size(&item);
        self.result(self.inner.put(item).await)?;
        self.wrote(size);
        Ok(())
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, DdbError> {
        add(&self.meter.ddb_requests, 1);
        let r = self.result(self.inner.get(pk, sk).await)?;
        self.read(r.as_ref().map_or(0, item_size), true);
        Ok(r)
    }

    async fn add(&self, pk: &str, sk: &str, attr: &str, n: u64) -> Result<u64, DdbError> {
        add(&self.meter.ddb_requests, 1);
        let r = self.result(self.inner.add(pk, sk, attr, n).await)?;
        self.wrote(pk.len() + sk.len() + attr.len() + 8);
        Ok(r)
    }

    async fn set_number(&self, pk: &str, sk: &str, attr: &str, v: i64) -> Result<(), DdbError> {
        add(&self.meter.ddb_requests, 1);
        self.result(self.inner.set_number(pk, sk, attr, v).await)?;
        self.wrote(pk.len() + sk.len() + attr.len() + 24);
        Ok(())
    }

    async fn query(&self, spec: &QuerySpec, start: Option<Item>) -> Result<QueryPage, DdbError> {
        add(&self.meter.ddb_requests, 1);
        let r = self.result(self.inner.query(spec, start).await)?;
        self.read(r.items.iter().map(item_size).sum(), spec.consistent);
        Ok(r)
    }
}

fn request_key(r: &WriteRequest) -> String {
    let key = |i: &Item| {
        let g = |k: &str| {
            i.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        format!("{}\u{0}{}", g("pk"), g("sk"))
    };
    match (r.put_request(), r.delete_request()) {
        (Some(p), _) => key(p.item()),
        (None, Some(d)) => key(d.key()),
        _ => String::new(),
    }
}

/// An [`ObjectStore`] that meters another.
pub struct MeteredObjects<O> {
    inner: O,
    meter: Arc<Meter>,
}

impl<O> MeteredObjects<O> {
    /// Meters `inner` into `meter`.
    pub fn new(inner: O, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

#[async_trait]
impl<O: ObjectStore> ObjectStore for MeteredObjects<O> {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectStoreError> {
        add(&self.meter.s3_puts, 1);
        add(&self.meter.s3_put_bytes, data.len() as u64);
        self.inner.put(key, data).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        add(&self.meter.s3_gets, 1);
        let r = self.inner.get(key).await?;
        add(&self.meter.s3_get_bytes, r.len() as u64);
        Ok(r)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        add(&self.meter.s3_gets, 1);
        let r = self.inner.get_range(key, range).await?;
        add(&self.meter.s3_get_bytes, r.len() as u64);
        Ok(r)
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        add(&self.meter.s3_deletes, 1);
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectStoreError> {
        add(&self.meter.s3_lists, 1);
        self.inner.list(prefix).await
    }
}
