//! The single writer thread: group commit of concurrent writes.
//!
//! Requests queue jobs on a channel; the thread takes everything queued, applies
//! it in one redb transaction with `Durability::Immediate` (fsync), and only then
//! answers each job. A failed commit fails every job of the group, so nothing is
//! acknowledged that is not on disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use ember_model::{Labels, MetricMetadata};
use ember_storage::layout::EncodedSegment;
use ember_storage::{Result, StorageError};
use redb::Database;
use tokio::sync::oneshot;

use crate::{METADATA, SEGMENTS, SERIES, Shared, codec};

/// Work for the writer thread.
pub(crate) enum WriteJob {
    /// Allocate ids for label sets not yet indexed.
    Resolve { tenant: String, labels: Vec<Labels> },
    /// Store segments and metadata.
    Write {
        tenant: String,
        segments: Vec<EncodedSegment>,
        metadata: Vec<MetricMetadata>,
    },
    /// Remove every segment of a bucket.
    DeleteBucket { tenant: String, bucket: i64 },
}

type Reply = oneshot::Sender<Result<Vec<(u64, bool)>>>;

/// Handle to the writer thread.
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<(WriteJob, Reply)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Upper bound of jobs in one group commit, to keep latency bounded under load.
const MAX_GROUP: usize = 256;

impl Writer {
    pub(crate) fn start(db: Arc<Database>, shared: Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::channel::<(WriteJob, Reply)>();
        let thread = std::thread::Builder::new()
            .name("ember-writer".into())
            .spawn(move || run(&db, &shared, rx))
            .map_err(|e| tracing::error!(error = %e, "cannot start storage writer thread"))
            .ok();
        Self {
            tx: Some(tx),
            thread,
        }
    }

    pub(crate) async fn submit(&self, job: WriteJob) -> Result<Vec<(u64, bool)>> {
        let (reply, rx) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| StorageError::Unavailable("storage writer stopped".into()))?;
        tx.send((job, reply))
            .map_err(|_| StorageError::Unavailable("storage writer stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Unavailable("storage writer stopped".into()))?
    }
}

impl Drop for Writer {
    /// Stops the thread after it has finished the queued jobs, so the database file is
    /// closed (and its lock released) when the store is dropped.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(db: &Database, shared: &Shared, rx: mpsc::Receiver<(WriteJob, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<WriteJob>, Vec<Reply>) = group.into_iter().unzip();
        match commit_group(db, shared, &jobs) {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = jobs.len(), "storage commit failed");
                for reply in replies {
                    let _ = reply.send(Err(StorageError::internal("committing write", &e)));
                }
            }
        }
    }
}

/// Applies a group in one transaction; on success publishes new series to the shared index.
fn commit_group(
    db: &Database,
    shared: &Shared,
    jobs: &[WriteJob],
) -> std::result::Result<Vec<Vec<(u64, bool)>>, redb::Error> {
    let txn = db.begin_write()?;
    let mut results = Vec::with_capacity(jobs.len());
    // Series created in this group, published only after the commit succeeds.
    let mut created: HashMap<String, Vec<(u64, Labels)>> = HashMap::new();
    let mut new_metadata: Vec<(String, MetricMetadata)> = Vec::new();
    {
        let mut series = txn.open_table(SERIES)?;
        let mut segments = txn.open_table(SEGMENTS)?;
        let mut metadata = txn.open_table(METADATA)?;
        let index = shared.series.read().map_err(|_| poisoned())?;
        let mut next_ids: HashMap<String, u64> = HashMap::new();
        let mut pending: HashMap<(String, Labels), u64> = HashMap::new();
        for job in jobs {
            match job {
                WriteJob::Resolve { tenant, labels } => {
                    let idx = index.get(tenant);
                    let mut out = Vec::with_capacity(labels.len());
                    for l in labels {
                        if let Some(id) = idx.and_then(|i| i.get(l)) {
                            out.push((id, false));
                        } else if let Some(id) = pending.get(&(tenant.clone(), l.clone())) {
                            out.push((*id, false));
                        } else {
                            let next = next_ids
                                .entry(tenant.clone())
                                .or_insert_with(|| idx.map_or(0, |i| i.next_id()));
                            let id = *next;
                            *next += 1;
                            series.insert(
                                (tenant.as_str(), id),
                                codec::encode_labels(l).as_slice(),
                            )?;
                            pending.insert((tenant.clone(), l.clone()), id);
                            created
                                .entry(tenant.clone())
                                .or_default()
                                .push((id, l.clone()));
                            out.push((id, true));
                        }
                    }
                    results.push(out);
                }
                WriteJob::Write {
                    tenant,
                    segments: segs,
                    metadata: md,
                } => {
                    for s in segs {
                        segments.insert(
                            (tenant.as_str(), s.key.bucket, s.key.shard, s.content_id),
                            s.bytes.as_slice(),
                        )?;
                    }
                    for m in md {
                        metadata.insert(
                            (tenant.as_str(), m.metric_family_name.as_str()),
                            codec::encode_metadata(m).as_slice(),
                        )?;
                        new_metadata.push((tenant.clone(), m.clone()));
                    }
                    results.push(Vec::new());
                }
                WriteJob::DeleteBucket { tenant, bucket } => {
                    let lo = (tenant.as_str(), *bucket, 0u32, 0u64);
                    let hi = (tenant.as_str(), *bucket, u32::MAX, u64::MAX);
                    segments.retain_in(lo..=hi, |_, _| false)?;
                    results.push(Vec::new());
                }
            }
        }
    }
    txn.commit()?;
    if !created.is_empty() {
        let mut index = shared.series.write().map_err(|_| poisoned())?;
        for (tenant, list) in created {
            let idx = index.entry(tenant).or_default();
            for (id, labels) in list {
                idx.insert(id, labels);
            }
        }
    }
    if !new_metadata.is_empty() {
        let mut md = shared.metadata.write().map_err(|_| poisoned())?;
        for (tenant, m) in new_metadata {
            md.entry(tenant)
                .or_default()
                .insert(m.metric_family_name.clone(), m);
        }
    }
    Ok(results)
}

fn poisoned() -> redb::Error {
    redb::Error::Io(std::io::Error::other("index lock poisoned"))
}
