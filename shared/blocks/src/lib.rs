//! Cold storage for Ember: Parquet block files, the block index, object stores,
//! compaction of closed hot buckets into blocks, and the query path over hot ∪ cold.
//!
//! The block layout is documented in `docs/BLOCKS.md`. Nothing here depends on an AWS
//! SDK: the S3 object store and the DynamoDB block index live in `ember-storage-aws`
//! and implement this crate's traits.

pub mod block;
pub mod compact;
pub mod index;
pub mod local;
pub mod memhot;
pub mod objstore;
pub mod testing;
pub mod tiered;
pub mod usage;

pub use block::{
    BlockError, BlockFooter, BlockSeries, BlockStats, BlockWriteOptions, ReadMode, WrittenBlock,
};
pub use compact::{CompactionConfig, CompactionReport, Compactor, compact_once};
pub use index::{BlockEntry, BlockIndex, BlockIndexStore, ObjectBlockIndex};
pub use local::{compact_local_once, open_local_tiered, open_local_tiered_counted};
pub use memhot::MemHotStore;
pub use objstore::{LocalFsStore, MemoryObjectStore, ObjectMeta, ObjectStore, ObjectStoreError};
pub use tiered::{SharedHot, TieredStorage};
pub use usage::CountingObjectStore;
