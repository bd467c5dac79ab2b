//! Runs the PromQL test scripts: the crate's own `testdata/*.test` (all must pass) and, when
//! present, the upstream corpus in `../shared/promql-testdata` (read in place, never copied).
//! `cargo test -p ember-promql --test promqltest -- --nocapture` prints the per-file table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_promql::promqltest::{CaseGroup, CaseOutcome, FileReport, run_script};

/// Upstream files with stable PromQL over floats: their float cases must pass.
const STABLE_FILES: &[&str] = &[
    "aggregators",
    "at_modifier",
    "collision",
    "functions",
    "histograms",
    "literals",
    "operators",
    "range_queries",
    "selectors",
    "staleness",
    "subquery",
    "trig_functions",
];

/// Stable float cases known to fail, as (file, line), each with the reason. Keep it small.
const KNOWN_FAILURES: &[(&str, usize)] = &[];

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "test"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn run_file(p: &Path) -> FileReport {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    run_script(&text)
}

#[derive(Default, Clone, Copy)]
struct Tally {
    pass: usize,
    fail: usize,
    skip: usize,
}

fn print_table(title: &str, rows: &[(String, &'static str, BTreeMap<CaseGroup, Tally>)]) {
    println!("\n== {title} ==");
    println!(
        "{:<28} {:<13} {:>14} {:>18} {:>17}",
        "file", "kind", "float p/f/s", "native-hist p/f/s", "experim-fn p/f/s"
    );
    let mut totals: BTreeMap<(&str, CaseGroup), Tally> = BTreeMap::new();
    for (name, kind, t) in rows {
        let cell = |g: CaseGroup| {
            let x = t.get(&g).copied().unwrap_or_default();
            format!("{}/{}/{}", x.pass, x.fail, x.skip)
        };
        println!(
            "{:<28} {:<13} {:>14} {:>18} {:>17}",
            name,
            kind,
            cell(CaseGroup::Float),
            cell(CaseGroup::NativeHistogram),
            cell(CaseGroup::ExperimentalFunction)
        );
        for (g, x) in t {
            let e = totals.entry((kind, *g)).or_default();
            e.pass += x.pass;
            e.fail += x.fail;
            e.skip += x.skip;
        }
    }
    println!("-- totals --");
    for ((kind, g), x) in &totals {
        println!(
            "{kind:<13} {:<18} pass {:>5}  fail {:>5}  skip {:>5}",
            g.name(),
            x.pass,
            x.fail,
            x.skip
        );
    }
}

fn tally(r: &FileReport) -> BTreeMap<CaseGroup, Tally> {
    let mut t: BTreeMap<CaseGroup, Tally> = BTreeMap::new();
    for c in &r.cases {
        let e = t.entry(c.group).or_default();
        match c.outcome {
            CaseOutcome::Pass => e.pass += 1,
            CaseOutcome::Fail(_) => e.fail += 1,
            CaseOutcome::Skip(_) => e.skip += 1,
        }
    }
    t
}

#[test]
fn own_testdata_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for p in list(&dir) {
        let r = run_file(&p);
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Some(e) = &r.script_error {
            failures.push(format!("{name}: script error: {e}"));
        }
        for c in &r.cases {
            if let CaseOutcome::Fail(msg) = &c.outcome {
                failures.push(format!("{name}:{} {}: {msg}", c.line, c.query));
            }
        }
        rows.push((name, "own", tally(&r)));
    }
    print_table("own testdata", &rows);
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn upstream_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/promql-testdata");
    if !dir.is_dir() {
        println!("upstream corpus not found at {}; skipped", dir.display());
        return;
    }
    let verbose = std::env::var("PROMQLTEST_VERBOSE").is_ok();
    let mut gate = Vec::new();
    let mut rows = Vec::new();
    for p in list(&dir) {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let stable = STABLE_FILES.contains(&name.as_str());
        let kind = if stable {
            "stable"
        } else if name == "native_histograms" {
            "native"
        } else {
            "experimental"
        };
        let r = run_file(&p);
        if let Some(e) = &r.script_error {
            println!("{name}: script error: {e}");
            if stable {
                gate.push(format!("{name}: script error: {e}"));
            }
        }
        for c in &r.cases {
            if let CaseOutcome::Fail(msg) = &c.outcome {
                if verbose {
                    println!(
                        "FAIL {name}:{} [{}] {}: {msg}",
                        c.line,
                        c.group.name(),
                        c.query
                    );
                }
                if stable
                    && c.group == CaseGroup::Float
                    && !KNOWN_FAILURES.contains(&(name.as_str(), c.line))
                {
                    gate.push(format!("{name}:{} {}: {msg}", c.line, c.query));
                }
            }
        }
        rows.push((name, kind, tally(&r)));
    }
    print_table("upstream corpus (../shared/promql-testdata)", &rows);
    assert!(
        gate.is_empty(),
        "{} stable float failures:\n{}",
        gate.len(),
        gate.join("\n")
    );
}
