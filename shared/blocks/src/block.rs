//! Block files: one Parquet file per tenant and time range, one row per series.
//!
//! The schema and the reasons for it are in `docs/BLOCKS.md`. In short: label columns
//! `l_<name>` (optional UTF-8 strings, dictionary-encoded, `l___name__` first), then
//! `s_series_hash`, `s_min_t`, `s_max_t`, `s_samples` and `s_chunk` (the series' samples
//! in Ember's chunk format, see [`ember_storage::segment::encode_chunk`]). Rows are sorted
//! by metric name, then label set; row groups are cut only between metrics, so a query
//! for one metric fetches only the row groups whose `l___name__` statistics admit it,
//! with one ranged read per row group after the footer.
//!
//! Everything here uses the `parquet` crate's low-level column writers and readers (no
//! arrow), and the files are plain Parquet that pyarrow and DuckDB read as they are.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use ember_model::{Labels, METRIC_NAME, Matcher, Sample};
use ember_storage::segment;
use parquet::basic::{
    Compression, Encoding, LogicalType, Repetition, TimeUnit, Type as PhysicalType, ZstdLevel,
};
use parquet::column::page::PageReader;
use parquet::column::reader::{ColumnReader, get_column_reader};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    KeyValue, ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData, SortingColumn,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use crate::objstore::{ObjectStore, ObjectStoreError};

/// Version of the block layout, stored in the file's key-value metadata.
pub const BLOCK_FORMAT_VERSION: &str = "1";
/// Key-value metadata key holding [`BLOCK_FORMAT_VERSION`].
pub const META_FORMAT: &str = "ember.block.version";
/// Key-value metadata key naming the encoding of `s_chunk`.
pub const META_CHUNK_ENCODING: &str = "ember.chunk.encoding";
/// Prefix of label columns.
pub const LABEL_PREFIX: &str = "l_";
/// Name of the metric-name column.
pub const NAME_COLUMN: &str = "l___name__";

const COL_HASH: &str = "s_series_hash";
const COL_MIN_T: &str = "s_min_t";
const COL_MAX_T: &str = "s_max_t";
const COL_SAMPLES: &str = "s_samples";
const COL_CHUNK: &str = "s_chunk";

/// Why a block could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The Parquet library failed.
    #[error("parquet error while {context}: {source}")]
    Parquet {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: ParquetError,
    },
    /// The file is not a block this version understands.
    #[error("invalid block {key}: {message}")]
    Invalid {
        /// Object key of the block.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Reading the object failed.
    #[error(transparent)]
    Store(#[from] ObjectStoreError),
}

impl From<BlockError> for ember_storage::StorageError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Store(s) => s.into(),
            other => ember_storage::StorageError::internal("reading block", other),
        }
    }
}

fn pq(context: &str) -> impl FnOnce(ParquetError) -> BlockError + '_ {
    move |source| BlockError::Parquet {
        context: context.to_string(),
        source,
    }
}

/// One series as stored in (or read from) a block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSeries {
    /// The full label set, including `__name__`.
    pub labels: Labels,
    /// Samples sorted by time, no duplicate timestamps.
    pub samples: Vec<Sample>,
}

/// Knobs for [`write_block`].
#[derive(Debug, Clone)]
pub struct BlockWriteOptions {
    /// Start a new row group at the next metric boundary once this many chunk bytes
    /// (uncompressed) are in the current one.
    pub row_group_target_bytes: usize,
    /// zstd level for every column.
    pub zstd_level: i32,
}

impl Default for BlockWriteOptions {
    fn default() -> Self {
        Self {
            row_group_target_bytes: 1 << 20,
            zstd_level: 3,
        }
    }
}

/// Summary of a written block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockStats {
    /// Earliest sample timestamp (ms).
    pub min_t: i64,
    /// Latest sample timestamp (ms).
    pub max_t: i64,
    /// Number of series (rows).
    pub series: u64,
    /// Number of samples.
    pub samples: u64,
    /// Number of row groups.
    pub row_groups: u32,
    /// Size of the file in bytes.
    pub size: u64,
    /// Bytes at the end of the file holding the footer (metadata + 8): one ranged read.
    pub footer_len: u64,
}

/// A block file in memory, ready to upload.
#[derive(Debug, Clone)]
pub struct WrittenBlock {
    /// The Parquet file.
    pub bytes: Bytes,
    /// What is inside.
    pub stats: BlockStats,
}

fn sort_key(labels: &Labels) -> (&str, &Labels) {
    (labels.metric_name().unwrap_or(""), labels)
}

/// Writes series into a block file. Series are sorted here (metric name, then labels);
/// series without samples are dropped; label sets must be distinct.
pub fn write_block(
    mut series: Vec<BlockSeries>,
    opts: &BlockWriteOptions,
) -> Result<WrittenBlock, BlockError> {
    series.retain(|s| !s.samples.is_empty());
    series.sort_by(|a, b| sort_key(&a.labels).cmp(&sort_key(&b.labels)));

    let label_names: BTreeSet<&str> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|l| l.name.as_str()))
        .filter(|n| *n != METRIC_NAME)
        .collect();
    let mut label_cols: Vec<String> = vec![NAME_COLUMN.to_string()];
    label_cols.extend(label_names.iter().map(|n| format!("{LABEL_PREFIX}{n}")));
    let label_names: Vec<&str> = std::iter::once(METRIC_NAME)
        .chain(label_names.iter().copied())
        .collect();

    let schema = build_schema(&label_cols)?;
    let props = writer_properties(&label_cols, opts)?;
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, props)
        .map_err(pq("creating block writer"))?;

    let mut stats = BlockStats {
        min_t: i64::MAX,
        max_t: i64::MIN,
        ..Default::default()
    };
    let mut start = 0usize;
    while start < series.len() {
        // Grow the row group to the target size, then to the end of the current metric.
        let mut end = start;
        let mut bytes = 0usize;
        let mut chunks: Vec<ByteArray> = Vec::new();
        while end < series.len() {
            let same_metric = end > start
                && series[end].labels.metric_name() == series[end - 1].labels.metric_name();
            if end > start && bytes >= opts.row_group_target_bytes && !same_metric {
                break;
            }
            let mut buf = Vec::with_capacity(series[end].samples.len() * 3 + 8);
            segment::encode_chunk(&series[end].samples, 0, &mut buf);
            bytes += buf.len();
            chunks.push(ByteArray::from(buf));
            end += 1;
        }
        let group = &series[start..end];
        write_row_group(&mut writer, group, &label_names, chunks)?;
        for s in group {
            stats.series += 1;
            stats.samples += s.samples.len() as u64;
            if let (Some(f), Some(l)) = (s.samples.first(), s.samples.last()) {
                stats.min_t = stats.min_t.min(f.t);
                stats.max_t = stats.max_t.max(l.t);
            }
        }
        stats.row_groups += 1;
        start = end;
    }
    if stats.series == 0 {
        stats.min_t = 0;
        stats.max_t = 0;
    }
    writer.append_key_value_metadata(KeyValue::new(
        "ember.min_t".to_string(),
        stats.min_t.to_string(),
    ));
    writer.append_key_value_metadata(KeyValue::new(
        "ember.max_t".to_string(),
        stats.max_t.to_string(),
    ));
    let bytes = writer.into_inner().map_err(pq("finishing block"))?;
    let footer_len = footer_len(&bytes).ok_or_else(|| BlockError::Invalid {
        key: "(new block)".into(),
        message: "writer produced no footer".into(),
    })?;
    stats.size = bytes.len() as u64;
    stats.footer_len = footer_len;
    Ok(WrittenBlock {
        bytes: Bytes::from(bytes),
        stats,
    })
}

fn footer_len(file: &[u8]) -> Option<u64> {
    let tail = file.get(file.len().checked_sub(8)?..)?;
    if &tail[4..] != b"PAR1" {
        return None;
    }
    let meta_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    Some(u64::from(meta_len) + 8)
}

fn build_schema(label_cols: &[String]) -> Result<Arc<Type>, BlockError> {
    let ctx = "building block schema";
    let mut fields = Vec::with_capacity(label_cols.len() + 5);
    for name in label_cols {
        fields.push(Arc::new(
            Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::String))
                .build()
                .map_err(pq(ctx))?,
        ));
    }
    let int64 = |name: &str, logical: Option<LogicalType>| {
        Type::primitive_type_builder(name, PhysicalType::INT64)
            .with_repetition(Repetition::REQUIRED)
            .with_logical_type(logical)
            .build()
            .map(Arc::new)
            .map_err(pq(ctx))
    };
    fields.push(int64(COL_HASH, None)?);
    fields.push(int64(
        COL_MIN_T,
        Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
    )?);
    fields.push(int64(
        COL_MAX_T,
        Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
    )?);
    fields.push(int64(COL_SAMPLES, None)?);
    fields.push(Arc::new(
        Type::primitive_type_builder(COL_CHUNK, PhysicalType::BYTE_ARRAY)
            .with_repetition(Repetition::REQUIRED)
            .build()
            .map_err(pq(ctx))?,
    ));
    Ok(Arc::new(
        Type::group_type_builder("ember_block")
            .with_fields(fields)
            .build()
            .map_err(pq(ctx))?,
    ))
}

fn writer_properties(
    label_cols: &[String],
    opts: &BlockWriteOptions,
) -> Result<Arc<WriterProperties>, BlockError> {
    let level = ZstdLevel::try_new(opts.zstd_level).map_err(pq("choosing zstd level"))?;
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: true,
        }]))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_FORMAT.to_string(), BLOCK_FORMAT_VERSION.to_string()),
            KeyValue::new(
                META_CHUNK_ENCODING.to_string(),
                "ember-chunk-v1".to_string(),
            ),
        ]));
    for name in label_cols {
        b = b.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), true);
    }
    for name in [COL_MIN_T, COL_MAX_T, COL_SAMPLES] {
        b = b.set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    for name in [COL_HASH, COL_CHUNK] {
        b = b.set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None);
    }
    Ok(Arc::new(b.build()))
}

fn write_row_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    group: &[BlockSeries],
    label_names: &[&str],
    chunks: Vec<ByteArray>,
) -> Result<(), BlockError> {
    let ctx = "writing row group";
    let mut rg = writer.next_row_group().map_err(pq(ctx))?;
    let mut col = 0usize;
    while let Some(mut cw) = rg.next_column().map_err(pq(ctx))? {
        if col < label_names.len() {
            let name = label_names[col];
            let mut values = Vec::with_capacity(group.len());
            let mut defs = Vec::with_capacity(group.len());
            for s in group {
                match s.labels.get(name) {
                    Some(v) => {
                        values.push(ByteArray::from(v));
                        defs.push(1i16);
                    }
                    None => defs.push(0),
                }
            }
            cw.typed::<ByteArrayType>()
                .write_batch(&values, Some(&defs), None)
                .map_err(pq(ctx))?;
        } else {
            match col - label_names.len() {
                0 => {
                    let v: Vec<i64> = group
                        .iter()
                        .map(|s| s.labels.stable_hash() as i64)
                        .collect();
                    cw.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(pq(ctx))?;
                }
                1 => {
                    let v: Vec<i64> = group
                        .iter()
                        .map(|s| s.samples.first().map_or(0, |x| x.t))
                        .collect();
                    cw.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(pq(ctx))?;
                }
                2 => {
                    let v: Vec<i64> = group
                        .iter()
                        .map(|s| s.samples.last().map_or(0, |x| x.t))
                        .collect();
                    cw.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(pq(ctx))?;
                }
                3 => {
                    let v: Vec<i64> = group.iter().map(|s| s.samples.len() as i64).collect();
                    cw.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(pq(ctx))?;
                }
                _ => {
                    cw.typed::<ByteArrayType>()
                        .write_batch(&chunks, None, None)
                        .map_err(pq(ctx))?;
                }
            }
        }
        cw.close().map_err(pq(ctx))?;
        col += 1;
    }
    rg.close().map_err(pq(ctx))?;
    Ok(())
}

/// The parsed footer of a block plus where its columns are (cache it across queries).
#[derive(Debug, Clone)]
pub struct BlockFooter {
    metadata: Arc<ParquetMetaData>,
    /// Label name (without prefix) → column index; `__name__` first.
    label_columns: Vec<(String, usize)>,
    hash_col: usize,
    min_t_col: usize,
    max_t_col: usize,
    chunk_col: usize,
    size: u64,
}

impl BlockFooter {
    /// Parses a footer from the last `tail.len()` bytes of a file of `size` bytes.
    pub fn parse(key: &str, tail: &[u8], size: u64) -> Result<Self, BlockError> {
        let invalid = |m: &str| BlockError::Invalid {
            key: key.to_string(),
            message: m.to_string(),
        };
        let flen = footer_len(tail).ok_or_else(|| invalid("no Parquet footer"))?;
        if flen > tail.len() as u64 {
            return Err(invalid("footer longer than the bytes read"));
        }
        let meta_bytes = &tail[tail.len() - flen as usize..tail.len() - 8];
        let metadata = ParquetMetaDataReader::decode_metadata(meta_bytes)
            .map_err(pq("decoding block footer"))?;
        let version = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == META_FORMAT))
            .and_then(|k| k.value.clone());
        if version.as_deref() != Some(BLOCK_FORMAT_VERSION) {
            return Err(invalid(&format!(
                "unsupported block format version {version:?}"
            )));
        }
        let schema = metadata.file_metadata().schema_descr();
        let mut label_columns = Vec::new();
        let (mut hash_col, mut min_t_col, mut max_t_col, mut chunk_col) = (None, None, None, None);
        for (i, c) in schema.columns().iter().enumerate() {
            match c.name() {
                COL_HASH => hash_col = Some(i),
                COL_MIN_T => min_t_col = Some(i),
                COL_MAX_T => max_t_col = Some(i),
                COL_CHUNK => chunk_col = Some(i),
                COL_SAMPLES => {}
                n => {
                    if let Some(label) = n.strip_prefix(LABEL_PREFIX) {
                        label_columns.push((label.to_string(), i));
                    }
                }
            }
        }
        let missing = || invalid("missing series column");
        Ok(Self {
            metadata: Arc::new(metadata),
            label_columns,
            hash_col: hash_col.ok_or_else(missing)?,
            min_t_col: min_t_col.ok_or_else(missing)?,
            max_t_col: max_t_col.ok_or_else(missing)?,
            chunk_col: chunk_col.ok_or_else(missing)?,
            size,
        })
    }

    /// Number of row groups.
    pub fn row_groups(&self) -> usize {
        self.metadata.num_row_groups()
    }

    /// Whether every series of row group `rg` has all its samples in `[start, end]`, by
    /// the statistics of `s_min_t` and `s_max_t` (false when unknown).
    fn row_group_inside(&self, rg: &RowGroupMetaData, start: i64, end: i64) -> bool {
        let stat = |col: usize, min: bool| match rg.column(col).statistics() {
            Some(Statistics::Int64(s)) => {
                if min {
                    s.min_opt().copied()
                } else {
                    s.max_opt().copied()
                }
            }
            _ => None,
        };
        matches!((stat(self.min_t_col, true), stat(self.max_t_col, false)), (Some(lo), Some(hi)) if lo >= start && hi <= end)
    }

    /// Whether row group `rg` may hold series of a metric that `matchers` accept, judged
    /// from the `l___name__` min/max statistics and an equality matcher on the name.
    fn row_group_may_match(&self, rg: &RowGroupMetaData, matchers: &[Matcher]) -> bool {
        let Some(name) = matchers.iter().find_map(|m| match m.op {
            ember_model::MatchOp::Equal if m.name == METRIC_NAME => Some(m.value.as_str()),
            _ => None,
        }) else {
            return true;
        };
        let Some((_, idx)) = self.label_columns.first() else {
            return false;
        };
        match rg.column(*idx).statistics() {
            Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(min), Some(max)) if s.min_is_exact() && s.max_is_exact() => {
                    min.data() <= name.as_bytes() && name.as_bytes() <= max.data()
                }
                _ => true,
            },
            _ => true,
        }
    }
}

/// Reads the footer of block `key` (`size` bytes, footer `footer_len` bytes if known): one
/// ranged read when `footer_len` is known, two otherwise.
pub async fn read_footer(
    store: &dyn ObjectStore,
    key: &str,
    size: u64,
    footer_len: Option<u64>,
) -> Result<BlockFooter, BlockError> {
    let guess = footer_len.unwrap_or(64 * 1024).min(size);
    let tail = store.get_range(key, size - guess..size).await?;
    let need = crate::block::footer_len(&tail).ok_or_else(|| BlockError::Invalid {
        key: key.to_string(),
        message: "no Parquet footer".into(),
    })?;
    if need <= tail.len() as u64 {
        return BlockFooter::parse(key, &tail, size);
    }
    if need > size {
        return Err(BlockError::Invalid {
            key: key.to_string(),
            message: "footer longer than file".into(),
        });
    }
    let tail = store.get_range(key, size - need..size).await?;
    BlockFooter::parse(key, &tail, size)
}

/// What [`read_series`] should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Labels and samples in the time range.
    Samples,
    /// Only labels of series with a sample in the time range (chunks are read only for
    /// row groups not entirely inside the range).
    LabelsOnly,
}

/// Reads the series of a block that match all `matchers` and have samples in
/// `[start, end]`. Fetches one byte range per row group that may hold a match.
pub async fn read_series(
    store: &dyn ObjectStore,
    key: &str,
    footer: &BlockFooter,
    matchers: &[Matcher],
    start: i64,
    end: i64,
    mode: ReadMode,
) -> Result<Vec<BlockSeries>, BlockError> {
    let mut out = Vec::new();
    for rg_idx in 0..footer.row_groups() {
        let rg = footer.metadata.row_group(rg_idx);
        if !footer.row_group_may_match(rg, matchers) {
            continue;
        }
        let mut cols: Vec<usize> = footer.label_columns.iter().map(|(_, i)| *i).collect();
        cols.extend([footer.hash_col, footer.min_t_col, footer.max_t_col]);
        if mode == ReadMode::Samples || !footer.row_group_inside(rg, start, end) {
            cols.push(footer.chunk_col);
        }
        let ranges: Vec<Range<u64>> = cols
            .iter()
            .map(|c| {
                let (s, l) = rg.column(*c).byte_range();
                s..s + l
            })
            .collect();
        let lo = ranges.iter().map(|r| r.start).min().unwrap_or(0);
        let hi = ranges.iter().map(|r| r.end).max().unwrap_or(0);
        if hi > footer.size || lo > hi {
            return Err(BlockError::Invalid {
                key: key.to_string(),
                message: "column chunk outside file".into(),
            });
        }
        let data = store.get_range(key, lo..hi).await?;
        let reader = Arc::new(SparseFile {
            len: footer.size,
            offset: lo,
            data,
        });
        read_row_group(
            key, footer, rg, &reader, matchers, start, end, mode, &mut out,
        )?;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn read_row_group(
    key: &str,
    footer: &BlockFooter,
    rg: &RowGroupMetaData,
    reader: &Arc<SparseFile>,
    matchers: &[Matcher],
    start: i64,
    end: i64,
    mode: ReadMode,
    out: &mut Vec<BlockSeries>,
) -> Result<(), BlockError> {
    let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
    let mut labels: Vec<Vec<(String, String)>> = vec![Vec::new(); rows];
    for (name, col) in &footer.label_columns {
        let values = read_string_column(key, rg, *col, reader, rows)?;
        for (row, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                labels[row].push((name.clone(), v));
            }
        }
    }
    let min_t = read_i64_column(rg, footer.min_t_col, reader, rows)?;
    let max_t = read_i64_column(rg, footer.max_t_col, reader, rows)?;
    if min_t.len() != rows || max_t.len() != rows {
        return Err(BlockError::Invalid {
            key: key.to_string(),
            message: "column lengths differ".into(),
        });
    }
    let wanted: Vec<Option<Labels>> = labels
        .into_iter()
        .enumerate()
        .map(|(row, pairs)| {
            let labels = Labels::from_pairs(pairs);
            let keep = min_t[row] <= end
                && max_t[row] >= start
                && ember_model::matcher::matches_all(matchers, &labels);
            keep.then_some(labels)
        })
        .collect();
    // Labels only: rows whose whole time range lies inside [start, end] certainly have a
    // sample there; the others need their chunk checked (the chunk column is fetched).
    let contained = |row: usize| min_t[row] >= start && max_t[row] <= end;
    if mode == ReadMode::LabelsOnly
        && wanted
            .iter()
            .enumerate()
            .all(|(row, l)| l.is_none() || contained(row))
    {
        out.extend(wanted.into_iter().flatten().map(|labels| BlockSeries {
            labels,
            samples: Vec::new(),
        }));
        return Ok(());
    }
    if wanted.iter().all(Option::is_none) {
        return Ok(());
    }
    let chunks = read_bytes_column(rg, footer.chunk_col, reader, rows)?;
    if chunks.len() != rows {
        return Err(BlockError::Invalid {
            key: key.to_string(),
            message: "chunk column length differs".into(),
        });
    }
    for (row, (labels, chunk)) in wanted.into_iter().zip(chunks).enumerate() {
        let Some(labels) = labels else { continue };
        if mode == ReadMode::LabelsOnly && contained(row) {
            out.push(BlockSeries {
                labels,
                samples: Vec::new(),
            });
            continue;
        }
        let mut pos = 0;
        let samples =
            segment::decode_chunk(chunk.data(), &mut pos, 0).map_err(|e| BlockError::Invalid {
                key: key.to_string(),
                message: format!("chunk of {labels}: {e}"),
            })?;
        let samples: Vec<Sample> = samples
            .into_iter()
            .filter(|s| s.t >= start && s.t <= end)
            .collect();
        if !samples.is_empty() {
            let samples = if mode == ReadMode::LabelsOnly {
                Vec::new()
            } else {
                samples
            };
            out.push(BlockSeries { labels, samples });
        }
    }
    Ok(())
}

fn page_reader(
    rg: &RowGroupMetaData,
    col: usize,
    reader: &Arc<SparseFile>,
    rows: usize,
) -> Result<Box<dyn PageReader>, BlockError> {
    let pr = SerializedPageReader::new(Arc::clone(reader), rg.column(col), rows, None)
        .map_err(pq("opening column"))?;
    Ok(Box::new(pr))
}

fn read_string_column(
    key: &str,
    rg: &RowGroupMetaData,
    col: usize,
    reader: &Arc<SparseFile>,
    rows: usize,
) -> Result<Vec<Option<String>>, BlockError> {
    let descr = rg.column(col).column_descr_ptr();
    let ColumnReader::ByteArrayColumnReader(mut r) =
        get_column_reader(descr, page_reader(rg, col, reader, rows)?)
    else {
        return Err(BlockError::Invalid {
            key: key.to_string(),
            message: "label column is not BYTE_ARRAY".into(),
        });
    };
    let (mut defs, mut values) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let mut read = 0;
    while read < rows {
        let (n, _, _) = r
            .read_records(rows - read, Some(&mut defs), None, &mut values)
            .map_err(pq("reading labels"))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let mut it = values.into_iter();
    let mut out = Vec::with_capacity(rows);
    for d in defs {
        if d > 0 {
            let v = it.next().ok_or_else(|| BlockError::Invalid {
                key: key.to_string(),
                message: "missing label value".into(),
            })?;
            let s = String::from_utf8(v.data().to_vec()).map_err(|_| BlockError::Invalid {
                key: key.to_string(),
                message: "label value is not UTF-8".into(),
            })?;
            out.push(Some(s));
        } else {
            out.push(None);
        }
    }
    Ok(out)
}

fn read_i64_column(
    rg: &RowGroupMetaData,
    col: usize,
    reader: &Arc<SparseFile>,
    rows: usize,
) -> Result<Vec<i64>, BlockError> {
    let descr = rg.column(col).column_descr_ptr();
    let ColumnReader::Int64ColumnReader(mut r) =
        get_column_reader(descr, page_reader(rg, col, reader, rows)?)
    else {
        return Err(BlockError::Invalid {
            key: String::new(),
            message: "series column is not INT64".into(),
        });
    };
    let mut values = Vec::with_capacity(rows);
    while values.len() < rows {
        let (n, _, _) = r
            .read_records(rows - values.len(), None, None, &mut values)
            .map_err(pq("reading series column"))?;
        if n == 0 {
            break;
        }
    }
    Ok(values)
}

fn read_bytes_column(
    rg: &RowGroupMetaData,
    col: usize,
    reader: &Arc<SparseFile>,
    rows: usize,
) -> Result<Vec<ByteArray>, BlockError> {
    let descr = rg.column(col).column_descr_ptr();
    let ColumnReader::ByteArrayColumnReader(mut r) =
        get_column_reader(descr, page_reader(rg, col, reader, rows)?)
    else {
        return Err(BlockError::Invalid {
            key: String::new(),
            message: "chunk column is not BYTE_ARRAY".into(),
        });
    };
    let mut values = Vec::with_capacity(rows);
    while values.len() < rows {
        let (n, _, _) = r
            .read_records(rows - values.len(), None, None, &mut values)
            .map_err(pq("reading chunks"))?;
        if n == 0 {
            break;
        }
    }
    Ok(values)
}

/// A window `[offset, offset + data.len())` of a file of `len` bytes, served to the
/// Parquet page readers; reads outside the window are errors (they would mean the
/// planner fetched the wrong range).
struct SparseFile {
    len: u64,
    offset: u64,
    data: Bytes,
}

impl SparseFile {
    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let end_of_data = self.offset + self.data.len() as u64;
        let end = length.map_or(end_of_data, |l| start + l as u64);
        if start < self.offset || end > end_of_data || start > end {
            return Err(ParquetError::General(format!(
                "read {start}..{end} outside fetched range {}..{end_of_data}",
                self.offset
            )));
        }
        Ok(self
            .data
            .slice((start - self.offset) as usize..(end - self.offset) as usize))
    }
}

impl Length for SparseFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparseFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
