//! Template expansion cases (expected strings are what Prometheus 2.42 renders).

use std::collections::BTreeMap;

use ember_rules::template::{
    self, Context, QueryFn, fmt_g, humanize, humanize_duration, humanize1024, sprintf,
};

fn ctx(labels: &[(&str, &str)], value: f64) -> Context<'static> {
    Context {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        external_labels: BTreeMap::from([("cluster".to_string(), "eu-1".to_string())]),
        external_url: "http://ember.example:9090/prefix".into(),
        value,
        query: None,
    }
}

fn ex(src: &str, c: &Context<'_>) -> String {
    match template::expand(src, c) {
        Ok(s) => s,
        Err(e) => panic!("expanding {src:?}: {e}"),
    }
}

#[test]
fn variables_and_fields() {
    let c = ctx(&[("instance", "node1:9100"), ("job", "node")], 0.8523);
    assert_eq!(ex("{{ $labels.instance }}", &c), "node1:9100");
    assert_eq!(
        ex("{{$labels.instance}} of {{ .Labels.job }}", &c),
        "node1:9100 of node"
    );
    assert_eq!(ex("{{ $value }}", &c), "0.8523");
    assert_eq!(ex("{{ .Value }}", &c), "0.8523");
    assert_eq!(ex("{{ $externalLabels.cluster }}", &c), "eu-1");
    assert_eq!(ex("{{ $labels.missing }}", &c), "<no value>");
    assert_eq!(ex("plain text", &c), "plain text");
    assert_eq!(ex("{{ $x := 3 }}{{ $x }}", &c), "3");
    assert_eq!(ex("{{ $x := 3 }}{{ $x = 4 }}{{ $x }}", &c), "4");
    assert_eq!(ex("a {{- \" b \" -}} c", &c), "a b c");
    assert_eq!(ex("{{/* comment */}}x", &c), "x");
    assert_eq!(ex("{{ $labels }}", &c), "map[instance:node1:9100 job:node]");
}

#[test]
fn humanize_family() {
    let c = ctx(&[], 0.0);
    assert_eq!(ex("{{ 0.8523 | humanizePercentage }}", &c), "85.23%");
    assert_eq!(ex("{{ humanizePercentage 0.9 }}", &c), "90%");
    assert_eq!(humanize(1234567.0), "1.235M");
    assert_eq!(humanize(0.001), "1m");
    assert_eq!(humanize(0.0), "0");
    assert_eq!(humanize(1000.0), "1k");
    assert_eq!(humanize(12.0), "12");
    assert_eq!(humanize1024(1048576.0), "1Mi");
    assert_eq!(humanize1024(1.0), "1");
    assert_eq!(humanize1024(1536.0), "1.5ki");
    assert_eq!(humanize_duration(0.0), "0s");
    assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
    assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
    assert_eq!(humanize_duration(61.0), "1m 1s");
    assert_eq!(humanize_duration(1.5), "1.5s");
    assert_eq!(humanize_duration(0.25), "250ms");
    assert_eq!(
        ex("{{ humanizeTimestamp 1435065584.128 }}", &c),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(ex("{{ \"1h\" | parseDuration }}", &c), "3600");
}

#[test]
fn go_number_formatting() {
    assert_eq!(fmt_g(100000.0, Some(4)), "1e+05");
    assert_eq!(fmt_g(1234.5678, Some(4)), "1235");
    assert_eq!(fmt_g(85.0, Some(4)), "85");
    assert_eq!(fmt_g(0.00001234, Some(4)), "1.234e-05");
    assert_eq!(fmt_g(1e6, None), "1e+06");
    assert_eq!(fmt_g(123456.0, None), "123456");
    assert_eq!(fmt_g(-2.5, None), "-2.5");
    assert_eq!(fmt_g(f64::NAN, None), "NaN");
    assert_eq!(fmt_g(f64::INFINITY, None), "+Inf");
    let v = |f: f64| template::Value::Float(f);
    assert_eq!(sprintf("%.2f", &[v(0.8523)]), "0.85");
    assert_eq!(sprintf("%d%%", &[template::Value::Int(5)]), "5%");
    assert_eq!(
        sprintf("%s=%v", &[template::Value::Str("a".into()), v(1.5)]),
        "a=1.5"
    );
    assert_eq!(
        sprintf("%5.1f|%-4s|", &[v(3.25), template::Value::Str("x".into())]),
        "  3.2|x   |"
    );
    assert_eq!(
        sprintf("%q", &[template::Value::Str("hi".into())]),
        "\"hi\""
    );
    assert_eq!(sprintf("%.3e", &[v(12345.0)]), "1.234e+04");
}

#[test]
fn control_flow() {
    let c = ctx(&[("severity", "critical"), ("instance", "h:1")], 95.0);
    assert_eq!(
        ex("{{ if gt $value 90.0 }}high{{ else }}low{{ end }}", &c),
        "high"
    );
    assert_eq!(
        ex(
            "{{ if lt $value 50.0 }}low{{ else if lt $value 99.0 }}mid{{ else }}high{{ end }}",
            &c
        ),
        "mid"
    );
    assert_eq!(
        ex(
            "{{ if eq $labels.severity \"critical\" \"page\" }}P{{ end }}",
            &c
        ),
        "P"
    );
    assert_eq!(
        ex(
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            &c
        ),
        "instance=h:1;severity=critical;"
    );
    assert_eq!(
        ex("{{ range $labels }}[{{ . }}]{{ end }}", &c),
        "[h:1][critical]"
    );
    assert_eq!(
        ex("{{ with $labels.instance }}on {{ . }}{{ end }}", &c),
        "on h:1"
    );
    assert_eq!(
        ex("{{ with $labels.nope }}x{{ else }}none{{ end }}", &c),
        "none"
    );
    assert_eq!(
        ex("{{ if and (gt $value 1.0) (not false) }}y{{ end }}", &c),
        "y"
    );
    assert_eq!(ex("{{ len $labels }}", &c), "2");
    assert_eq!(ex("{{ index $labels \"severity\" }}", &c), "critical");
}

#[test]
fn string_functions() {
    let c = ctx(&[("instance", "web-1.example.com:9100")], 1.0);
    assert_eq!(
        ex("{{ $labels.instance | stripPort }}", &c),
        "web-1.example.com"
    );
    assert_eq!(ex("{{ stripPort \"[::1]:80\" }}", &c), "::1");
    assert_eq!(ex("{{ $labels.instance | stripDomain }}", &c), "web-1:9100");
    assert_eq!(
        ex("{{ toUpper \"abc\" }}{{ toLower \"DeF\" }}", &c),
        "ABCdef"
    );
    assert_eq!(ex("{{ title \"hello world\" }}", &c), "Hello World");
    assert_eq!(
        ex("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}", &c),
        "web-1.example.com"
    );
    assert_eq!(
        ex("{{ if match \"^web-\" $labels.instance }}web{{ end }}", &c),
        "web"
    );
    assert_eq!(
        ex("{{ with args 1 \"b\" }}{{ .arg0 }}{{ .arg1 }}{{ end }}", &c),
        "1b"
    );
    assert_eq!(ex("{{ \"<b>\" | safeHtml }}", &c), "<b>");
    assert_eq!(
        ex("{{ externalURL }}", &c),
        "http://ember.example:9090/prefix"
    );
    assert_eq!(ex("{{ pathPrefix }}", &c), "/prefix");
    assert_eq!(
        ex("{{ printf \"%s has %.1f\" $labels.instance $value }}", &c),
        "web-1.example.com:9100 has 1.0"
    );
    assert_eq!(ex("{{ \"a b&\" | urlquery }}", &c), "a+b%26");
    assert_eq!(ex("{{ html \"<a>\" }}", &c), "&lt;a&gt;");
}

#[test]
fn query_functions() {
    let q: &QueryFn<'_> = &|q: &str| {
        if q == "up" {
            Ok(vec![
                (
                    BTreeMap::from([
                        ("__name__".to_string(), "up".to_string()),
                        ("instance".to_string(), "b".to_string()),
                    ]),
                    0.0,
                ),
                (
                    BTreeMap::from([
                        ("__name__".to_string(), "up".to_string()),
                        ("instance".to_string(), "a".to_string()),
                    ]),
                    1.0,
                ),
            ])
        } else {
            Ok(Vec::new())
        }
    };
    let mut c = ctx(&[], 0.0);
    c.query = Some(q);
    assert_eq!(ex("{{ query \"up\" | first | value }}", &c), "0");
    assert_eq!(
        ex("{{ query \"up\" | first | label \"instance\" }}", &c),
        "b"
    );
    assert_eq!(
        ex(
            "{{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }}",
            &c
        ),
        "0"
    );
    assert_eq!(
        ex(
            "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}",
            &c
        ),
        "a=1 b=0 "
    );
    assert_eq!(
        ex("{{ with query \"none\" }}x{{ else }}empty{{ end }}", &c),
        "empty"
    );
    assert_eq!(
        template::query_literals("{{ query \"up\" | first }}{{ (query \"x\") }}"),
        vec!["up", "x"]
    );
}

#[test]
fn errors_are_reported_not_panics() {
    let c = ctx(&[], 0.0);
    for bad in [
        "{{ if }}",
        "{{ end }}",
        "{{ nosuchfn 1 }}",
        "{{ \"unterminated }}",
        "{{ if true }}",
        "{{",
        "{{ ( }}",
    ] {
        assert!(template::expand(bad, &c).is_err(), "{bad:?} should fail");
    }
    assert!(template::expand("{{ query \"up\" }}", &c).is_err());
    assert!(template::expand("{{ first 1 }}", &c).is_err());
}
