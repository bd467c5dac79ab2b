//! `ember backfill`: an OpenMetrics file with timestamps lands in the embedded storage
//! and `ember serve` then answers queries over it; a bad file is refused with its line
//! number and stores nothing.

use std::process::Command;

use ember_e2e::binaries::{Profile, ember_bin};
use ember_e2e::servers::EmberServer;
use ember_e2e::{now_millis, test_dir};

/// 2 series × 100 samples at 15 s, the newest ten minutes ago, OpenMetrics (seconds).
fn openmetrics_file(end_ms: i64) -> String {
    let mut out = String::from("# TYPE backfill_jobs counter\n# HELP backfill_jobs Jobs run.\n");
    for queue in ["a", "b"] {
        for i in 0..100i64 {
            let t = end_ms - (99 - i) * 15_000;
            let v = if queue == "a" { i } else { 2 * i };
            out.push_str(&format!(
                "backfill_jobs_total{{queue=\"{queue}\"}} {v} {}.{:03}\n",
                t / 1000,
                t % 1000
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

#[test]
fn backfilled_samples_are_queryable_and_bad_files_name_the_line() {
    let dir = test_dir("backfill").expect("temp dir");
    let data = dir.path().join("data");
    let end_ms = (now_millis() - 600_000) / 1000 * 1000;
    let good = dir.path().join("jobs.om");
    std::fs::write(&good, openmetrics_file(end_ms)).expect("write file");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "ok_metric 1 1700000000000\nbroken{ 2 1700000000000\n").expect("write");
    let ember = ember_bin(Profile::Debug).expect("ember binary");

    let out = Command::new(&ember)
        .arg("backfill")
        .arg("--data-dir")
        .arg(&data)
        .arg(&bad)
        .output()
        .expect("run ember backfill");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad file fails");
    assert!(
        stderr.contains("bad.txt: line 2:"),
        "names file and line: {stderr}"
    );

    let out = Command::new(&ember)
        .arg("backfill")
        .arg("--data-dir")
        .arg(&data)
        .arg(&good)
        .output()
        .expect("run ember backfill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "backfill: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("backfilled 200 samples of 2 series from 1 file(s)"),
        "{stdout}"
    );

    let mut server =
        EmberServer::start("ember", &data, &dir.path().join("logs")).expect("start ember serve");
    let api = server.api().expect("api");
    let at = end_ms as f64 / 1000.0;
    let counts = api
        .query("count_over_time(backfill_jobs_total[30m])", Some(at))
        .expect("query");
    let result = counts["result"].as_array().expect("vector");
    assert_eq!(result.len(), 2, "{counts}");
    for s in result {
        assert_eq!(s["value"][1], "100", "{s}");
    }
    let last = api
        .query("backfill_jobs_total{queue=\"b\"}", Some(at))
        .expect("query");
    assert_eq!(last["result"][0]["value"][1], "198", "{last}");
    // Nothing of the bad file was stored.
    let ok = api
        .query("ok_metric", Some(1_700_000_000.0))
        .expect("query");
    assert_eq!(ok["result"].as_array().map(Vec::len), Some(0), "{ok}");
    let md = api
        .get_data("/api/v1/metadata", &[("metric", "backfill_jobs")])
        .expect("metadata");
    assert_eq!(md["backfill_jobs"][0]["type"], "counter", "{md}");
    server
        .process
        .stop_cleanly(std::time::Duration::from_secs(15))
        .expect("stop");
}
