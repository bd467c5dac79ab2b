//! Self-monitoring of the parts the runtime opens: the backend's requests and bytes by
//! store kind, compaction runs and lag, and the AWS backend's billed request units with
//! their modeled cost. Each is a
//! [`MetricsSource`]-shaped closure (`Fn(&mut String)`) the server appends to `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use ember_blocks::{CompactionConfig, CompactionReport};
use ember_formats::exposition::{family, sample};
use ember_storage::StorageError;
use ember_storage::usage::{StoreKind, StoreOp, StoreUsage};
use ember_storage_aws::{Meter, metering::prices};

use crate::backend::RunCompaction;

/// Writes metric families into a `/metrics` page.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Totals of the compaction passes this process ran.
#[derive(Debug, Default, Clone)]
struct CompactionTotals {
    ok: u64,
    failed: u64,
    buckets: u64,
    blocks_written: u64,
    blocks_merged: u64,
    blocks_expired: u64,
    samples: u64,
    last_duration_s: f64,
    last_success_s: Option<f64>,
    /// When the oldest bucket left by the last successful pass is due (ms), if any.
    next_due_ms: Option<i64>,
    /// Whether a pass has succeeded (lag is only known after one).
    known: bool,
}

/// Compaction passes counted as they run: wrap the backend's compactor with
/// [`CompactionMetrics::wrap`] and serve [`CompactionMetrics::source`].
#[derive(Debug, Default)]
pub struct CompactionMetrics {
    totals: Mutex<CompactionTotals>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl CompactionMetrics {
    /// A compactor that runs `inner` and records every pass here.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn RunCompaction>) -> Arc<dyn RunCompaction> {
        Arc::new(CountedCompaction {
            inner,
            metrics: Arc::clone(self),
        })
    }

    fn record(
        &self,
        cfg: &CompactionConfig,
        r: &Result<CompactionReport, StorageError>,
        secs: f64,
    ) {
        let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        t.last_duration_s = secs;
        match r {
            Ok(report) => {
                t.ok += 1;
                t.buckets += report.buckets_compacted as u64;
                t.blocks_written += report.blocks_written.len() as u64;
                t.blocks_merged += report.blocks_merged as u64;
                t.blocks_expired += report.blocks_expired as u64;
                t.samples += report.samples_compacted;
                t.last_success_s = Some(now_ms() as f64 / 1000.0);
                t.next_due_ms = report.next_due_ms(cfg.grace_ms);
                t.known = true;
            }
            Err(_) => t.failed += 1,
        }
    }

    /// Seconds compaction is behind at `now_ms`: how long ago the oldest bucket still in
    /// the hot store (as of the last successful pass) became due; 0 when none is overdue.
    /// `None` before the first successful pass.
    pub fn lag_seconds(&self, now_ms: i64) -> Option<f64> {
        let t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        if !t.known {
            return None;
        }
        Some(
            t.next_due_ms
                .map_or(0.0, |due| (now_ms - due).max(0) as f64 / 1000.0),
        )
    }

    /// The families: `ember_compaction_runs_total{result}`,
    /// `ember_compaction_{buckets,blocks_written,blocks_merged,blocks_expired,samples}_total`,
    /// `ember_compaction_last_duration_seconds`,
    /// `ember_compaction_last_success_timestamp_seconds` and `ember_compaction_lag_seconds`.
    pub fn source(self: &Arc<Self>) -> MetricsSource {
        let me = Arc::clone(self);
        Arc::new(move |out: &mut String| me.render(out))
    }

    fn render(&self, out: &mut String) {
        let lag = self.lag_seconds(now_ms());
        let t = self
            .totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        family(
            out,
            "ember_compaction_runs_total",
            "counter",
            "Compaction passes (hot buckets to Parquet blocks, merges, retention), by result.",
        );
        sample(
            out,
            "ember_compaction_runs_total",
            &[("result", "success")],
            t.ok as f64,
        );
        sample(
            out,
            "ember_compaction_runs_total",
            &[("result", "failure")],
            t.failed as f64,
        );
        for (name, help, v) in [
            (
                "ember_compaction_buckets_total",
                "Hot buckets compacted into blocks (or dropped by retention).",
                t.buckets,
            ),
            (
                "ember_compaction_blocks_written_total",
                "Blocks written (level 0 and merged).",
                t.blocks_written,
            ),
            (
                "ember_compaction_blocks_merged_total",
                "Blocks merged away into daily blocks.",
                t.blocks_merged,
            ),
            (
                "ember_compaction_blocks_expired_total",
                "Blocks dropped by retention.",
                t.blocks_expired,
            ),
            (
                "ember_compaction_samples_total",
                "Samples written into level-0 blocks.",
                t.samples,
            ),
        ] {
            family(out, name, "counter", help);
            sample(out, name, &[], v as f64);
        }
        family(
            out,
            "ember_compaction_last_duration_seconds",
            "gauge",
            "Duration of the last compaction pass.",
        );
        sample(
            out,
            "ember_compaction_last_duration_seconds",
            &[],
            t.last_duration_s,
        );
        if let Some(ts) = t.last_success_s {
            family(
                out,
                "ember_compaction_last_success_timestamp_seconds",
                "gauge",
                "When the last successful compaction pass ended.",
            );
            sample(
                out,
                "ember_compaction_last_success_timestamp_seconds",
                &[],
                ts,
            );
        }
        if let Some(lag) = lag {
            family(
                out,
                "ember_compaction_lag_seconds",
                "gauge",
                "How long ago the oldest hot bucket still waiting for compaction became due (bucket end + grace); 0 when nothing is overdue.",
            );
            sample(out, "ember_compaction_lag_seconds", &[], lag);
        }
    }
}

/// The backend's requests, failures and bytes by store kind (`hot`, `blocks`):
/// `ember_storage_backend_requests_total{kind,op}`,
/// `ember_storage_backend_failures_total{kind,op}` and
/// `ember_storage_backend_bytes_total{kind,direction}`.
pub fn store_usage_source(usage: Arc<StoreUsage>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        type Count = fn(&StoreUsage, StoreKind, StoreOp) -> u64;
        let by_kind_and_op: [(&str, &str, Count); 2] = [
            (
                "ember_storage_backend_requests_total",
                "Operations on the backend's stores (hot: redb or DynamoDB; blocks: files or S3), by store kind and operation; a hot-store call answered from its cache counts too.",
                StoreUsage::requests,
            ),
            (
                "ember_storage_backend_failures_total",
                "Failed operations on the backend's stores, by store kind and operation.",
                StoreUsage::failures,
            ),
        ];
        for (name, help, count) in by_kind_and_op {
            family(out, name, "counter", help);
            for kind in StoreKind::ALL {
                for op in StoreOp::ALL {
                    let v = count(&usage, kind, op) as f64;
                    sample(out, name, &[("kind", kind.label()), ("op", op.label())], v);
                }
            }
        }
        family(
            out,
            "ember_storage_backend_bytes_total",
            "counter",
            "Payload bytes (segments, block files and ranges) read from and written to the backend's stores, by store kind.",
        );
        for kind in StoreKind::ALL {
            for (op, direction) in [(StoreOp::Read, "read"), (StoreOp::Write, "written")] {
                let v = usage.bytes(kind, op) as f64;
                sample(
                    out,
                    "ember_storage_backend_bytes_total",
                    &[("direction", direction), ("kind", kind.label())],
                    v,
                );
            }
        }
    })
}

struct CountedCompaction {
    inner: Arc<dyn RunCompaction>,
    metrics: Arc<CompactionMetrics>,
}

#[async_trait]
impl RunCompaction for CountedCompaction {
    async fn run(&self, cfg: &CompactionConfig) -> Result<CompactionReport, StorageError> {
        let started = Instant::now();
        let r = self.inner.run(cfg).await;
        self.metrics
            .record(cfg, &r, started.elapsed().as_secs_f64());
        r
    }
}

/// Writes `ember_modeled_request_cost_dollars_total{service}`: the storage requests'
/// cost at us-east-1 on-demand prices (storage itself not included).
fn render_modeled_cost(out: &mut String, dynamodb: f64, s3: f64) {
    family(
        out,
        "ember_modeled_request_cost_dollars_total",
        "counter",
        "Modeled cost of the storage requests at us-east-1 on-demand prices, by service (AWS backend: billed units; embedded backend: what the same requests would bill on AWS).",
    );
    sample(
        out,
        "ember_modeled_request_cost_dollars_total",
        &[("service", "dynamodb")],
        dynamodb,
    );
    sample(
        out,
        "ember_modeled_request_cost_dollars_total",
        &[("service", "s3")],
        s3,
    );
}

/// The AWS backend's billed usage since start: `ember_dynamodb_request_units_total{type}`,
/// `ember_s3_requests_total{type}` and `ember_modeled_request_cost_dollars_total{service}`.
pub fn aws_meter_source(meter: Arc<Meter>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let m = meter.snapshot();
        let rru = m.ddb_rru_x2 as f64 / 2.0;
        family(
            out,
            "ember_dynamodb_request_units_total",
            "counter",
            "DynamoDB request units billed (on-demand), by type.",
        );
        sample(
            out,
            "ember_dynamodb_request_units_total",
            &[("type", "read")],
            rru,
        );
        sample(
            out,
            "ember_dynamodb_request_units_total",
            &[("type", "write")],
            m.ddb_wru as f64,
        );
        family(
            out,
            "ember_s3_requests_total",
            "counter",
            "S3 requests, by billing type.",
        );
        for (ty, v) in [
            ("put", m.s3_puts),
            ("get", m.s3_gets),
            ("list", m.s3_lists),
            ("delete", m.s3_deletes),
        ] {
            sample(out, "ember_s3_requests_total", &[("type", ty)], v as f64);
        }
        render_modeled_cost(
            out,
            m.ddb_wru as f64 * prices::WRU + rru * prices::RRU,
            (m.s3_puts + m.s3_lists) as f64 * prices::S3_PUT + m.s3_gets as f64 * prices::S3_GET,
        );
    })
}

/// The embedded backend's modeled AWS cost: the hot tier's modeled DynamoDB units (see
/// `CountingHotStore`) and one S3 request per block-file request, priced as on AWS.
pub fn modeled_cost_source(usage: Arc<StoreUsage>) -> MetricsSource {
    Arc::new(move |out: &mut String| {
        let dynamodb = usage.hot_units(StoreOp::Write) as f64 * prices::WRU
            + usage.hot_units(StoreOp::Read) as f64 * prices::RRU;
        let blocks = |op| usage.requests(StoreKind::Blocks, op) as f64;
        let s3 = (blocks(StoreOp::Write) + blocks(StoreOp::List)) * prices::S3_PUT
            + blocks(StoreOp::Read) * prices::S3_GET;
        render_modeled_cost(out, dynamodb, s3);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_storage::layout::BUCKET_MS;
    use std::sync::atomic::Ordering;

    struct Fixed(Result<CompactionReport, ()>);

    #[async_trait]
    impl RunCompaction for Fixed {
        async fn run(&self, _: &CompactionConfig) -> Result<CompactionReport, StorageError> {
            self.0
                .clone()
                .map_err(|()| StorageError::Unavailable("s3 down".into()))
        }
    }

    #[tokio::test]
    async fn runs_counted_and_lag_grows_from_the_oldest_pending_bucket() {
        let m = Arc::new(CompactionMetrics::default());
        let cfg = CompactionConfig::at(now_ms());
        assert_eq!(m.lag_seconds(now_ms()), None, "unknown before a pass");

        let bucket = 0i64;
        let report = CompactionReport {
            buckets_compacted: 2,
            samples_compacted: 500,
            oldest_pending_bucket_ms: Some(bucket),
            ..CompactionReport::default()
        };
        let ok = m.wrap(Arc::new(Fixed(Ok(report))));
        ok.run(&cfg).await.unwrap();
        let due = bucket + BUCKET_MS + cfg.grace_ms;
        assert_eq!(m.lag_seconds(due - 1000), Some(0.0));
        assert_eq!(m.lag_seconds(due + 90_000), Some(90.0));

        let failing = m.wrap(Arc::new(Fixed(Err(()))));
        assert!(failing.run(&cfg).await.is_err());
        let mut out = String::new();
        m.source()(&mut out);
        for line in [
            "ember_compaction_runs_total{result=\"success\"} 1",
            "ember_compaction_runs_total{result=\"failure\"} 1",
            "ember_compaction_buckets_total 2",
            "ember_compaction_samples_total 500",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
        assert!(out.contains("ember_compaction_lag_seconds "));

        // Nothing left in the hot store: no lag.
        let empty = m.wrap(Arc::new(Fixed(Ok(CompactionReport::default()))));
        empty.run(&cfg).await.unwrap();
        assert_eq!(m.lag_seconds(now_ms()), Some(0.0));
    }

    #[test]
    fn store_usage_families() {
        let usage = Arc::new(StoreUsage::default());
        usage.record(StoreKind::Blocks, StoreOp::Write, 1234, true);
        usage.record(StoreKind::Hot, StoreOp::Read, 10, false);
        let mut out = String::new();
        store_usage_source(usage)(&mut out);
        for line in [
            "ember_storage_backend_requests_total{kind=\"blocks\",op=\"write\"} 1",
            "ember_storage_backend_failures_total{kind=\"hot\",op=\"read\"} 1",
            "ember_storage_backend_bytes_total{direction=\"written\",kind=\"blocks\"} 1234",
            "ember_storage_backend_bytes_total{direction=\"read\",kind=\"hot\"} 10",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }

    #[test]
    fn embedded_backend_cost_modeled_from_usage() {
        let usage = Arc::new(StoreUsage::default());
        usage.record(StoreKind::Blocks, StoreOp::Write, 10, true);
        usage.record(StoreKind::Blocks, StoreOp::Read, 10, true);
        let mut out = String::new();
        modeled_cost_source(usage)(&mut out);
        let s3 = prices::S3_PUT + prices::S3_GET;
        assert!(
            out.contains(&format!(
                "ember_modeled_request_cost_dollars_total{{service=\"s3\"}} {s3}\n"
            )),
            "{out}"
        );
        assert!(out.contains("ember_modeled_request_cost_dollars_total{service=\"dynamodb\"} 0\n"));
    }

    #[test]
    fn aws_meter_priced() {
        let meter = Arc::new(Meter::default());
        meter.ddb_wru.store(1_000_000, Ordering::Relaxed);
        meter.s3_puts.store(1000, Ordering::Relaxed);
        let mut out = String::new();
        aws_meter_source(meter)(&mut out);
        assert!(
            out.contains("ember_modeled_request_cost_dollars_total{service=\"dynamodb\"} 0.625\n"),
            "{out}"
        );
        assert!(
            out.contains("ember_modeled_request_cost_dollars_total{service=\"s3\"} 0.005\n"),
            "{out}"
        );
        assert!(out.contains("ember_dynamodb_request_units_total{type=\"write\"} 1000000\n"));
    }
}
