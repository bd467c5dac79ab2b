//! Compares the two Parquet layouts for Prometheus data on the same generated samples:
//! one row per sample (prom2parquet style: label columns, `t` INT64 with
//! DELTA_BINARY_PACKED, `v` DOUBLE with BYTE_STREAM_SPLIT) and one row per series with a
//! chunk column (Ember's block format, parquet-common style). Both zstd level 3,
//! dictionary-encoded labels, rows sorted by metric then labels.
//!
//! `cargo run --release -p ember-blocks --example layout_compare [SERIES] [SAMPLES_PER_SERIES]`

use std::sync::Arc;

use ember_blocks::block::write_block;
use ember_blocks::{BlockSeries, BlockWriteOptions};
use ember_model::{Labels, Sample};
use parquet::basic::{
    Compression, Encoding, LogicalType, Repetition, Type as PhysicalType, ZstdLevel,
};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_000) as f64 / 1_000_000.0
    }
}

/// node_exporter-like mix: 1/3 constants, 1/3 counters (2 decimals), 1/3 gauges.
fn generate(series: usize, per: usize) -> Vec<BlockSeries> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..series)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__".to_string(), format!("node_metric_{}", i % 40)),
                ("instance".to_string(), format!("10.0.0.{}:9100", i / 40)),
                ("job".to_string(), "node".to_string()),
                ("cpu".to_string(), (i % 8).to_string()),
            ]);
            let mut v = (rng.unit() * 1e5).round();
            let offset = (rng.unit() * 15_000.0) as i64;
            let samples = (0..per)
                .map(|k| {
                    match i % 3 {
                        0 => {}
                        1 => v = ((v + rng.unit() * 15.0) * 100.0).round() / 100.0,
                        _ => v = (v + 4096.0 * ((rng.unit() - 0.5) * 100.0).round()).max(0.0),
                    }
                    let t =
                        1_700_006_400_000 + k as i64 * 15_000 + offset + (rng.unit() * 3.0) as i64;
                    Sample::new(t, v)
                })
                .collect();
            BlockSeries { labels, samples }
        })
        .collect()
}

fn row_per_sample(series: &[BlockSeries]) -> Result<usize, parquet::errors::ParquetError> {
    let label_names = ["__name__", "cpu", "instance", "job"];
    let mut fields = Vec::new();
    for n in label_names {
        fields.push(Arc::new(
            Type::primitive_type_builder(n, PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::String))
                .build()?,
        ));
    }
    fields.push(Arc::new(
        Type::primitive_type_builder("t", PhysicalType::INT64)
            .with_repetition(Repetition::REQUIRED)
            .build()?,
    ));
    fields.push(Arc::new(
        Type::primitive_type_builder("v", PhysicalType::DOUBLE)
            .with_repetition(Repetition::REQUIRED)
            .build()?,
    ));
    let schema = Arc::new(
        Type::group_type_builder("samples")
            .with_fields(fields)
            .build()?,
    );
    let props = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_column_dictionary_enabled(ColumnPath::from("t"), false)
        .set_column_dictionary_enabled(ColumnPath::from("v"), false)
        .set_column_encoding(ColumnPath::from("t"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(ColumnPath::from("v"), Encoding::BYTE_STREAM_SPLIT)
        .build();
    let mut w = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props))?;
    let mut sorted: Vec<&BlockSeries> = series.iter().collect();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    for group in sorted.chunks(2000) {
        let mut rg = w.next_row_group()?;
        let mut col = 0;
        while let Some(mut c) = rg.next_column()? {
            if col < label_names.len() {
                let mut vals = Vec::new();
                let mut defs = Vec::new();
                for s in group {
                    for _ in &s.samples {
                        match s.labels.get(label_names[col]) {
                            Some(v) => {
                                vals.push(ByteArray::from(v));
                                defs.push(1);
                            }
                            None => defs.push(0),
                        }
                    }
                }
                c.typed::<ByteArrayType>()
                    .write_batch(&vals, Some(&defs), None)?;
            } else if col == label_names.len() {
                let t: Vec<i64> = group
                    .iter()
                    .flat_map(|s| s.samples.iter().map(|x| x.t))
                    .collect();
                c.typed::<Int64Type>().write_batch(&t, None, None)?;
            } else {
                let v: Vec<f64> = group
                    .iter()
                    .flat_map(|s| s.samples.iter().map(|x| x.v))
                    .collect();
                c.typed::<DoubleType>().write_batch(&v, None, None)?;
            }
            c.close()?;
            col += 1;
        }
        rg.close()?;
    }
    Ok(w.into_inner()?.len())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n_series: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let per: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(240);
    let data = generate(n_series, per);
    let samples = (n_series * per) as f64;
    let per_sample = row_per_sample(&data)?;
    let per_series = write_block(data, &BlockWriteOptions::default())?;
    println!("{n_series} series × {per} samples ({samples} samples, node_exporter-like mix)");
    println!("| layout | bytes | B/sample |");
    println!("|---|---|---|");
    println!(
        "| one row per sample (t DELTA_BINARY_PACKED, v BYTE_STREAM_SPLIT, zstd) | {per_sample} | {:.3} |",
        per_sample as f64 / samples
    );
    println!(
        "| one row per series, Ember chunk column (zstd) | {} | {:.3} |",
        per_series.stats.size,
        per_series.stats.size as f64 / samples
    );
    Ok(())
}
