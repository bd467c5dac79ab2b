//! The embedded backend's cold tier: block files and the block index under
//! `DATA_DIR/blocks/`, the same files the AWS backend keeps in S3.

use std::path::Path;
use std::sync::Arc;

use ember_storage::Result;
use ember_storage::hot::HotStore;
use ember_storage::usage::StoreUsage;

use crate::compact::{CompactionConfig, CompactionReport, Compactor, compact_once};
use crate::index::{BlockIndexStore, ObjectBlockIndex};
use crate::objstore::{LocalFsStore, ObjectStore};
use crate::tiered::{SharedHot, TieredStorage};
use crate::usage::CountingObjectStore;

/// Directory under the data directory that holds blocks and the index.
pub const BLOCKS_DIR: &str = "blocks";

/// The object store and block index of a data directory.
pub fn local_cold(data_dir: &Path) -> (Arc<dyn ObjectStore>, Arc<dyn BlockIndexStore>) {
    local_cold_counted(data_dir, None)
}

/// [`local_cold`], counting block-file requests and bytes into `usage` when given.
pub fn local_cold_counted(
    data_dir: &Path,
    usage: Option<Arc<StoreUsage>>,
) -> (Arc<dyn ObjectStore>, Arc<dyn BlockIndexStore>) {
    let mut objects: Arc<dyn ObjectStore> = Arc::new(LocalFsStore::new(data_dir.join(BLOCKS_DIR)));
    if let Some(usage) = usage {
        objects = Arc::new(CountingObjectStore::new(objects, usage));
    }
    let index: Arc<dyn BlockIndexStore> = Arc::new(ObjectBlockIndex::new(Arc::clone(&objects)));
    (objects, index)
}

/// Hot store `hot` plus the blocks of `data_dir`, as one storage, and a compactor over
/// the same stores (for the server's compaction scheduler).
pub fn open_local_tiered<H: HotStore + 'static>(
    hot: Arc<H>,
    data_dir: &Path,
) -> (Arc<TieredStorage<SharedHot<H>>>, Compactor<H>) {
    open_local_tiered_counted(hot, data_dir, None)
}

/// [`open_local_tiered`], counting block-file requests and bytes into `usage` when given
/// (wrap `hot` in a `CountingHotStore` to count the hot tier too).
pub fn open_local_tiered_counted<H: HotStore + 'static>(
    hot: Arc<H>,
    data_dir: &Path,
    usage: Option<Arc<StoreUsage>>,
) -> (Arc<TieredStorage<SharedHot<H>>>, Compactor<H>) {
    let (objects, index) = local_cold_counted(data_dir, usage);
    let storage = Arc::new(TieredStorage::new(
        SharedHot(Arc::clone(&hot)),
        Arc::clone(&index),
        Arc::clone(&objects),
    ));
    (
        storage,
        Compactor {
            hot,
            index,
            objects,
        },
    )
}

/// One compaction pass of an embedded data directory whose hot store is `hot`.
pub async fn compact_local_once<H: HotStore + ?Sized>(
    hot: &H,
    data_dir: &Path,
    cfg: &CompactionConfig,
) -> Result<CompactionReport> {
    let (objects, index) = local_cold(data_dir);
    compact_once(hot, index.as_ref(), objects.as_ref(), cfg).await
}
