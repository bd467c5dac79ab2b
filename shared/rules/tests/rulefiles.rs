//! Rule files: valid files load, invalid ones are rejected whole with file, line and reason.

mod common;

use common::data_file;
use ember_rules::{GroupDefaults, RuleKind, RulesError, load_rule_files, parse_rule_file};

fn err(text: &str) -> (u64, String) {
    match parse_rule_file(text, "bad.yml", GroupDefaults::default()) {
        Err(RulesError::Invalid { file, line, reason }) => {
            assert_eq!(file, "bad.yml");
            (line, reason)
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(g) => panic!("accepted invalid file: {g:?}"),
    }
}

#[test]
fn memory_rules_load() {
    let dir = data_file("");
    let groups = load_rule_files(
        &["memory-rule?.yml".to_string()],
        &dir,
        GroupDefaults::default(),
    )
    .expect("load");
    let g = groups
        .iter()
        .find(|g| g.name == "node-memory")
        .expect("group");
    assert_eq!(g.interval_ms, 30_000);
    assert_eq!(groups.len(), 1);
    assert_eq!(
        g.rules[0].labels.get("team").map(String::as_str),
        Some("infra")
    );
    assert_eq!(g.rules.len(), 3);
    match &g.rules[1].kind {
        RuleKind::Alerting {
            for_ms,
            keep_firing_for_ms,
            annotations,
        } => {
            assert_eq!(*for_ms, 120_000);
            assert_eq!(*keep_firing_for_ms, 0);
            assert!(annotations.contains_key("description"));
        }
        RuleKind::Recording => panic!("expected alerting rule"),
    }
}

#[test]
fn group_options_and_defaults() {
    let text = "groups:\n- name: a\n  labels:\n    team: t\n  query_offset: 1m\n  limit: 10\n  rules:\n  - alert: X\n    expr: up == 0\n    keep_firing_for: 5m\n";
    let g = parse_rule_file(
        text,
        "f.yml",
        GroupDefaults {
            interval_ms: 15_000,
            query_offset_ms: 0,
        },
    )
    .expect("parse");
    assert_eq!(g[0].interval_ms, 15_000);
    assert_eq!(g[0].query_offset_ms, 60_000);
    assert_eq!(g[0].limit, 10);
    assert_eq!(g[0].labels.get("team").map(String::as_str), Some("t"));
    assert_eq!(g[0].key(), "f.yml;a");
    assert!(matches!(
        g[0].rules[0].kind,
        RuleKind::Alerting {
            keep_firing_for_ms: 300_000,
            ..
        }
    ));
}

#[test]
fn invalid_files_are_rejected_with_line_and_reason() {
    let (line, reason) =
        err("groups:\n- name: a\n  rules:\n  - record: x\n    expr: sum(rate(foo[5m])\n");
    assert_eq!(line, 5);
    assert!(reason.contains("could not parse expression"), "{reason}");

    let (line, reason) = err(
        "groups:\n- name: a\n  rules:\n  - record: ok\n    expr: up\n  - alert: A\n    record: B\n    expr: up\n",
    );
    assert_eq!(line, 6);
    assert!(reason.contains("only one of"), "{reason}");

    let (_, reason) = err("groups:\n- name: a\n  rules: []\n- name: a\n  rules: []\n");
    assert!(reason.contains("repeated"), "{reason}");

    let (line, reason) = err(
        "groups:\n- name: a\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: \"{{ if }}\"\n",
    );
    assert_eq!(line, 4);
    assert!(reason.contains("template"), "{reason}");

    let (line, reason) =
        err("groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n    bogus: 1\n");
    assert!(line >= 4, "line {line}: {reason}");
    assert!(reason.contains("bogus"), "{reason}");

    let (_, reason) = err("groups:\n- name: a\n  rules:\n  - record: \"bad name\"\n    expr: up\n");
    assert!(reason.contains("invalid recording rule name"), "{reason}");

    let (_, reason) =
        err("groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n    for: 1m\n");
    assert!(reason.contains("for"), "{reason}");

    let (_, reason) = err("groups:\n- name: a\n  rules:\n  - expr: up\n");
    assert!(reason.contains("must be set"), "{reason}");
}

#[test]
fn one_bad_file_fails_the_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.yml"),
        "groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("b.yml"),
        "groups:\n- name: b\n  rules:\n  - record: y\n    expr: up +\n",
    )
    .expect("write");
    let e = load_rule_files(&["*.yml".into()], dir.path(), GroupDefaults::default())
        .expect_err("must fail");
    let msg = e.to_string();
    assert!(msg.contains("b.yml:5:"), "{msg}");
}
