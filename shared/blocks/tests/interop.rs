//! A block file read by real pyarrow and DuckDB (Python from `$EMBER_PYTHON`, or
//! `$EMBER_VENV/bin/python` as set by `tests/run`).

use std::path::PathBuf;
use std::process::Command;

use ember_blocks::block::write_block;
use ember_blocks::{BlockSeries, BlockWriteOptions};
use ember_model::{Labels, Sample, stale_nan};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("EMBER_PYTHON") {
        return PathBuf::from(p);
    }
    if let Ok(v) = std::env::var("EMBER_VENV") {
        return PathBuf::from(v).join("bin/python");
    }
    panic!(
        "no Python with pyarrow and duckdb: set EMBER_PYTHON (e.g. after \
         `python3 -m venv /tmp/moto-venv && /tmp/moto-venv/bin/pip install pyarrow duckdb`, \
         EMBER_PYTHON=/tmp/moto-venv/bin/python) or run through tests/run"
    );
}

#[test]
fn pyarrow_and_duckdb_read_blocks_as_they_are() {
    let mut series = Vec::new();
    for m in 0..6 {
        for i in 0..4 {
            let mut pairs = vec![
                ("__name__".to_string(), format!("m_{m}")),
                ("instance".to_string(), format!("h{i}")),
            ];
            if i % 2 == 1 {
                pairs.push(("zone".to_string(), "eu-1".to_string()));
            }
            let samples: Vec<Sample> = (0..300)
                .map(|k| {
                    let t = 1_700_000_000_000 + k * 15_000 + (k % 4);
                    let v = match m {
                        0 => (k * 3) as f64,
                        1 => k as f64 * 0.125,
                        2 => ((k as f64) * 0.37).sin(),
                        3 => 1.0,
                        4 if k == 299 => stale_nan(),
                        _ => 1e9 + k as f64,
                    };
                    Sample::new(t, v)
                })
                .collect();
            series.push(BlockSeries {
                labels: Labels::from_pairs(pairs),
                samples,
            });
        }
    }
    let opts = BlockWriteOptions {
        row_group_target_bytes: 3000,
        ..Default::default()
    };
    let block = write_block(series.clone(), &opts).unwrap();
    assert!(block.stats.row_groups > 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("block.parquet");
    std::fs::write(&file, &block.bytes).unwrap();
    let expected = serde_json::json!({
        "series": series.iter().map(|s| serde_json::json!({
            "labels": s.labels.iter().map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone()))).collect::<serde_json::Map<_, _>>(),
            "samples": s.samples.iter().map(|x| serde_json::json!([x.t, format!("{:x}", x.v.to_bits())])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    });
    let exp = dir.path().join("expected.json");
    std::fs::write(&exp, serde_json::to_vec(&expected).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/read_block.py");
    let py = python();
    let out = Command::new(&py)
        .arg(&script)
        .arg(&file)
        .arg(&exp)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok: 24 series, 7200 samples"), "{stdout}");
}
