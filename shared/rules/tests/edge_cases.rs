//! keep_firing_for, limits, scalar recording rules, template queries, config loading.

use std::path::Path;
use std::sync::Arc;

use ember_model::{Labels, Matcher, Sample, Series};
use ember_promql::{Engine, EngineOptions};
use ember_rules::api::alerts_data;
use ember_rules::{GroupDefaults, ManagerOptions, MemStateStore, RuleManager, parse_rule_file};
use ember_storage::{AppendBatch, MemStorage};

const M: i64 = 60_000;

fn setup(rules: &str, series: Vec<Series>) -> (Arc<MemStorage>, RuleManager, String) {
    let storage = Arc::new(MemStorage::new());
    storage
        .append_sync(
            "default",
            AppendBatch {
                series,
                metadata: Vec::new(),
            },
        )
        .expect("append");
    let groups = parse_rule_file(rules, "r.yml", GroupDefaults::default()).expect("rules");
    let key = groups.first().map(|g| g.key()).unwrap_or_default();
    let mgr = RuleManager::new(
        storage.clone(),
        Arc::new(Engine::new(EngineOptions::default())),
        Arc::new(MemStateStore::new()),
        ManagerOptions::default(),
    );
    mgr.set_groups(groups);
    (storage, mgr, key)
}

fn x_series(vals: &[(i64, f64)]) -> Series {
    Series::new(
        Labels::from_pairs([("__name__", "x"), ("job", "j")]),
        vals.iter().map(|(t, v)| Sample::new(*t, *v)).collect(),
    )
}

#[tokio::test]
async fn keep_firing_for_holds_then_resolves() {
    let rules =
        "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: x > 0\n    keep_firing_for: 2m\n";
    let vals: Vec<(i64, f64)> = (0..=10)
        .map(|i| (i * M, if i <= 2 { 1.0 } else { 0.0 }))
        .collect();
    let (_s, mgr, key) = setup(rules, vec![x_series(&vals)]);
    let mut states = Vec::new();
    for i in 0..=6 {
        let r = mgr.evaluate_group_at(&key, i * M).await.expect("eval");
        assert!(r.rule_errors.is_empty(), "{:?}", r.rule_errors);
        let a = alerts_data(&mgr);
        let st = a["alerts"]
            .get(0)
            .map(|a| a["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        if i == 4 {
            assert_eq!(
                a["alerts"][0]["keepFiringSince"],
                ember_rules::manager::rfc3339(3 * M)
            );
        }
        states.push(st);
        if i == 5 {
            let resolved = r
                .alerts_sent
                .iter()
                .find(|a| a.labels["alertname"] == "X")
                .expect("resolved sent");
            assert_eq!(resolved.ends_at, ember_rules::manager::rfc3339(5 * M));
        }
    }
    assert_eq!(
        states,
        vec!["firing", "firing", "firing", "firing", "firing", "", ""]
    );
}

#[tokio::test]
async fn limits_scalars_and_template_queries() {
    let rules = r#"groups:
- name: g
  limit: 1
  rules:
  - record: two
    expr: x or vector(1)
  - record: one_scalar
    expr: scalar(x) * 2
  - alert: Q
    expr: x > 0
    annotations:
      total: '{{ query "sum(x)" | first | value | printf "%.1f" }}'
      dyn: '{{ with query (printf "x{job=%q}" $labels.job) }}{{ . | first | value }}{{ end }}'
"#;
    let (storage, mgr, key) = setup(rules, vec![x_series(&[(0, 3.0)])]);
    let r = mgr.evaluate_group_at(&key, 0).await.expect("eval");
    let errs: Vec<&str> = r.rule_errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(errs, vec!["two"], "{:?}", r.rule_errors);
    assert!(r.rule_errors[0].1.contains("exceeded limit"));
    // Prometheus' counters: one iteration of three rules, one of them failed.
    assert_eq!(
        mgr.evaluation_counts().get(&key),
        Some(&ember_rules::EvaluationCounts {
            iterations: 1,
            rule_evaluations: 3,
            rule_failures: 1
        })
    );
    let s = storage
        .select_sync("default", &[Matcher::equal("__name__", "one_scalar")], 0, 0)
        .expect("select");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].samples[0].v, 6.0);
    assert_eq!(s[0].labels.len(), 1);
    let a = alerts_data(&mgr);
    assert_eq!(a["alerts"][0]["annotations"]["total"], "3.0");
    let dyn_text = a["alerts"][0]["annotations"]["dyn"].as_str().unwrap_or("");
    assert!(
        dyn_text.contains("error"),
        "non-literal queries are reported, not run: {dyn_text}"
    );
}

#[tokio::test]
async fn load_config_keeps_running_rules_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("good.yml"),
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: x\n",
    )
    .expect("write");
    let cfg_text = "global:\n  evaluation_interval: 15s\nrule_files: ['*.yml']\nalerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:9093']\n";
    let cfg =
        ember_config::Config::from_yaml(cfg_text, Path::new("prometheus.yml")).expect("config");
    let (_s, mgr, _) = setup("groups: []\n", Vec::new());
    mgr.load_config(&cfg, dir.path()).expect("load");
    assert_eq!(mgr.groups().len(), 1);
    assert_eq!(mgr.groups()[0].interval_ms, 15_000);
    std::fs::write(
        dir.path().join("bad.yml"),
        "groups:\n- name: b\n  rules:\n  - record: r\n    expr: x +\n",
    )
    .expect("write");
    let e = mgr.load_config(&cfg, dir.path()).expect_err("bad file");
    assert!(e.to_string().contains("bad.yml:5"), "{e}");
    assert_eq!(mgr.groups().len(), 1, "running rules kept");
    assert_eq!(mgr.groups()[0].name, "g");
}

#[tokio::test]
async fn removed_rules_and_groups_get_staleness_markers() {
    let rules = "groups:\n- name: g\n  rules:\n  - record: a\n    expr: x\n  - record: b\n    expr: x * 2\n";
    let (storage, mgr, key) = setup(rules, vec![x_series(&[(0, 1.0), (M, 1.0), (2 * M, 1.0)])]);
    mgr.evaluate_group_at(&key, 0).await.expect("eval");
    // Rule b removed: its series goes stale at the group's next evaluation.
    let g2 = parse_rule_file(
        "groups:\n- name: g\n  rules:\n  - record: a\n    expr: x\n",
        "r.yml",
        GroupDefaults::default(),
    )
    .expect("rules");
    mgr.set_groups(g2);
    mgr.evaluate_group_at(&key, M).await.expect("eval");
    let b = storage
        .select_sync("default", &[Matcher::equal("__name__", "b")], 0, 2 * M)
        .expect("select");
    assert!(ember_model::is_stale_nan(
        b[0].samples.last().expect("sample").v
    ));
    // Whole group removed: its series go stale at the next pass.
    mgr.set_groups(Vec::new());
    mgr.evaluate_due(2 * M).await;
    let a = storage
        .select_sync("default", &[Matcher::equal("__name__", "a")], 0, 2 * M)
        .expect("select");
    let last = a[0].samples.last().expect("sample");
    assert_eq!(last.t, 2 * M);
    assert!(ember_model::is_stale_nan(last.v));
}

#[tokio::test]
async fn rules_api_match_and_pagination() {
    use ember_rules::api::{RulesFilter, rules_data};
    let rules = "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: x > 0\n    labels:\n      severity: critical\n  - record: r\n    expr: x\n- name: b\n  rules:\n  - alert: B\n    expr: x > 0\n    labels:\n      severity: warning\n- name: c\n  rules:\n  - record: c\n    expr: x\n";
    let (_s, mgr, _) = setup(rules, vec![x_series(&[(0, 1.0)])]);
    let f = RulesFilter::from_pairs([("match[]", "{severity=~\"crit.*\"}")]).expect("filter");
    let d = rules_data(&mgr, &f).expect("data");
    let groups = d["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["rules"].as_array().map(Vec::len), Some(1));
    assert_eq!(groups[0]["rules"][0]["name"], "A");

    let f = RulesFilter::from_pairs([("group_limit", "2")]).expect("filter");
    let p1 = rules_data(&mgr, &f).expect("page 1");
    assert_eq!(p1["groups"].as_array().map(Vec::len), Some(2));
    let tok = p1["groupNextToken"].as_str().expect("token").to_string();
    let f = RulesFilter::from_pairs([("group_limit", "2"), ("group_next_token", tok.as_str())])
        .expect("filter");
    let p2 = rules_data(&mgr, &f).expect("page 2");
    assert_eq!(p2["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(p2["groups"][0]["name"], "c");
    assert!(p2.get("groupNextToken").is_none());
    let f = RulesFilter::from_pairs([("group_next_token", "nope")]).expect("filter");
    assert!(rules_data(&mgr, &f).is_err());
}
