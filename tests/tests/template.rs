//! Checks of `infra/template.yaml` (the SAM template):
//! - `cfn-lint` and `sam validate --lint` pass (both offline, from the project venv);
//! - the template agrees with the code: every `functions/*` crate has exactly one function
//!   resource whose `Binary` is its binary and vice versa; the `EMBER_*` variables set on a
//!   function are ones its crates read, and the ones it needs are set; the IAM actions its
//!   crates call (found by scanning their sources for SDK operation calls) are granted and
//!   nothing else is; no wildcard actions, no `*` resources except for the calls AWS offers
//!   no resource-level permissions for; the table's keys and TTL attribute are the code's;
//! - the agreement check itself catches drift (a removed grant, an extra one, an unknown
//!   variable, a renamed binary, a wildcard) on modified copies of the template.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ember_e2e::workspace_root;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------- tools

/// A tool from the project venv (`tests/run` installs cfn-lint and aws-sam-cli there).
fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("EMBER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.is_file(),
        "{} not found: run tests/run (it installs cfn-lint and aws-sam-cli into .venv) or set EMBER_VENV",
        path.display()
    );
    path
}

fn template_path() -> PathBuf {
    workspace_root().join("infra/template.yaml")
}

fn run_tool(mut cmd: Command, what: &str) {
    let out = cmd
        .current_dir(workspace_root())
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cfn_lint_passes() {
    let mut cmd = Command::new(venv_tool("cfn-lint"));
    cmd.arg(template_path());
    run_tool(cmd, "cfn-lint infra/template.yaml");
}

#[test]
fn sam_validate_lint_passes() {
    let mut cmd = Command::new(venv_tool("sam"));
    cmd.args(["validate", "--lint", "--region", "us-east-1", "-t"])
        .arg(template_path());
    run_tool(cmd, "sam validate --lint");
    // Without --lint, the SAM translator runs too (it catches other mistakes).
    let mut cmd = Command::new(venv_tool("sam"));
    cmd.args(["validate", "--region", "us-east-1", "-t"])
        .arg(template_path());
    run_tool(cmd, "sam validate");
}

#[test]
fn samconfig_points_at_the_template() {
    let text = std::fs::read_to_string(workspace_root().join("samconfig.toml"))
        .expect("samconfig.toml at the repository root");
    for needle in [
        "template_file = \"infra/template.yaml\"",
        "capabilities = \"CAPABILITY_IAM\"",
        "resolve_s3 = true",
        "confirm_changeset = true",
    ] {
        assert!(text.contains(needle), "samconfig.toml lacks {needle}");
    }
}

// ---------------------------------------------------------------------------- the code

/// What one function's crates do, found in their sources.
#[derive(Debug, Default)]
struct FunctionCode {
    /// Directories of the crates it links (itself and its workspace dependencies).
    crates: Vec<PathBuf>,
    /// `EMBER_*` string literals in those sources: the variables it can read.
    env: BTreeSet<String>,
    /// IAM actions of the AWS calls in those sources.
    actions: BTreeSet<String>,
}

/// SDK operation (a no-argument builder call `.op()`) → IAM actions. A `Some(marker)`
/// means the method name is generic (`.query()`), so it counts only in files that use
/// that SDK crate.
const SDK_CALLS: &[(&str, Option<&str>, &[&str])] = &[
    ("put_item", None, &["dynamodb:PutItem"]),
    ("get_item", None, &["dynamodb:GetItem"]),
    ("batch_write_item", None, &["dynamodb:BatchWriteItem"]),
    ("batch_get_item", None, &["dynamodb:BatchGetItem"]),
    ("update_item", None, &["dynamodb:UpdateItem"]),
    ("delete_item", None, &["dynamodb:DeleteItem"]),
    (
        "transact_write_items",
        None,
        &["dynamodb:TransactWriteItems"],
    ),
    ("query", Some("aws_sdk_dynamodb"), &["dynamodb:Query"]),
    ("scan", Some("aws_sdk_dynamodb"), &["dynamodb:Scan"]),
    ("create_table", None, &["dynamodb:CreateTable"]),
    ("describe_table", None, &["dynamodb:DescribeTable"]),
    (
        "describe_time_to_live",
        None,
        &["dynamodb:DescribeTimeToLive"],
    ),
    ("update_time_to_live", None, &["dynamodb:UpdateTimeToLive"]),
    ("put_object", None, &["s3:PutObject"]),
    ("get_object", None, &["s3:GetObject"]),
    ("head_object", None, &["s3:GetObject"]),
    ("copy_object", None, &["s3:GetObject", "s3:PutObject"]),
    ("create_multipart_upload", None, &["s3:PutObject"]),
    ("upload_part", None, &["s3:PutObject"]),
    ("complete_multipart_upload", None, &["s3:PutObject"]),
    ("abort_multipart_upload", None, &["s3:AbortMultipartUpload"]),
    ("delete_object", None, &["s3:DeleteObject"]),
    ("delete_objects", None, &["s3:DeleteObject"]),
    ("list_objects_v2", None, &["s3:ListBucket"]),
    ("head_bucket", None, &["s3:ListBucket"]),
    ("create_bucket", None, &["s3:CreateBucket"]),
    ("get_parameter", None, &["ssm:GetParameter"]),
    ("get_parameters", None, &["ssm:GetParameters"]),
    ("get_parameters_by_path", None, &["ssm:GetParametersByPath"]),
    ("get_secret_value", None, &["secretsmanager:GetSecretValue"]),
    ("get_metric_data", None, &["cloudwatch:GetMetricData"]),
    ("list_metrics", None, &["cloudwatch:ListMetrics"]),
    (
        "get_metric_statistics",
        None,
        &["cloudwatch:GetMetricStatistics"],
    ),
    // sts:GetCallerIdentity needs no permission.
    ("get_caller_identity", Some("aws_sdk_sts"), &[]),
];

/// Calls the code makes only with `EMBER_CREATE_RESOURCES=true` / `--create-resources`
/// (development against moto); in AWS the template creates the resources.
const DEV_ONLY_ACTIONS: &[&str] = &[
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:UpdateTimeToLive",
    "s3:CreateBucket",
];

/// Calls in a function's crates that this function never makes, so its role does not get
/// them (least privilege goes below crate granularity here). Each entry must name an
/// action the crates really call (a stale entry fails the test).
const NOT_GRANTED: &[(&str, &str, &str)] = &[
    (
        "ember-query",
        "sns:Publish",
        "links ember-alertmanager for the silences API only, without its `sns` feature",
    ),
    (
        "ember-ingest",
        "s3:PutObject",
        "only compaction writes blocks",
    ),
    (
        "ember-ingest",
        "s3:DeleteObject",
        "only compaction deletes blocks",
    ),
    (
        "ember-query",
        "s3:PutObject",
        "only compaction writes blocks",
    ),
    (
        "ember-query",
        "s3:DeleteObject",
        "only compaction deletes blocks",
    ),
    (
        "ember-scrape-fn",
        "s3:PutObject",
        "only compaction writes blocks",
    ),
    (
        "ember-scrape-fn",
        "s3:DeleteObject",
        "only compaction deletes blocks",
    ),
    (
        "ember-rules-fn",
        "s3:PutObject",
        "only compaction writes blocks",
    ),
    (
        "ember-rules-fn",
        "s3:DeleteObject",
        "only compaction deletes blocks",
    ),
    (
        "ember-cloudwatch-fn",
        "s3:PutObject",
        "only compaction writes blocks",
    ),
    (
        "ember-cloudwatch-fn",
        "s3:DeleteObject",
        "only compaction deletes blocks",
    ),
    // EMBER_CONFIG is s3://<bucket>/config/prometheus.yml in this template, so the
    // `ssm:` configuration source is never used; the token is read only by HTTP functions.
    (
        "ember-scrape-fn",
        "ssm:GetParameter",
        "config from S3; no token",
    ),
    (
        "ember-compact",
        "ssm:GetParameter",
        "config from S3; no token",
    ),
    (
        "ember-cloudwatch-fn",
        "ssm:GetParameter",
        "config from S3; no token",
    ),
    (
        "ember-scrape-fn",
        "secretsmanager:GetSecretValue",
        "no token",
    ),
    ("ember-compact", "secretsmanager:GetSecretValue", "no token"),
    (
        "ember-cloudwatch-fn",
        "secretsmanager:GetSecretValue",
        "no token",
    ),
];

/// Granted without a matching SDK call: the Lambda runtime writes the function's logs.
const RUNTIME_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];

/// Actions implied by calls (decrypting a SecureString / secret under a customer key).
const IMPLIED: &[(&str, &str)] = &[
    ("kms:Decrypt", "ssm:GetParameter"),
    ("kms:Decrypt", "secretsmanager:GetSecretValue"),
];

/// Actions AWS offers no resource-level permissions for (`Resource: "*"` is required).
const NO_RESOURCE_LEVEL: &[&str] = &[
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    "cloudwatch:GetMetricStatistics",
    "ec2:DescribeInstances",
    "ec2:DescribeAvailabilityZones",
];

/// `EMBER_*` variables a function may leave unset in AWS, with the reason.
const MAY_BE_UNSET: &[(Option<&str>, &str, &str)] = &[
    (None, "EMBER_DATA_DIR", "local backend only"),
    (None, "EMBER_CREATE_RESOURCES", "moto development only"),
    (None, "EMBER_CONFIG_TTL", "default 60 s"),
    (None, "EMBER_MOTO_SERVER", "tests only"),
    (
        None,
        "EMBER_LOG",
        "the ember CLI's log filter; Lambda uses RUST_LOG",
    ),
    (
        Some("ember-scrape-fn"),
        "EMBER_AUTH_TOKEN",
        "serves no HTTP",
    ),
    (Some("ember-compact"), "EMBER_AUTH_TOKEN", "serves no HTTP"),
    (
        Some("ember-cloudwatch-fn"),
        "EMBER_AUTH_TOKEN",
        "serves no HTTP",
    ),
    (Some("ember-rules-fn"), "EMBER_AUTH_TOKEN", "serves no HTTP"),
    (
        Some("ember-ingest"),
        "EMBER_ALERTMANAGER_CONFIG",
        "only the rules function notifies",
    ),
    (
        Some("ember-ingest"),
        "EMBER_EXTERNAL_URL",
        "only alerts link back",
    ),
    (
        Some("ember-query"),
        "EMBER_ALERTMANAGER_CONFIG",
        "only the rules function notifies",
    ),
    (
        Some("ember-query"),
        "EMBER_EXTERNAL_URL",
        "only alerts link back",
    ),
    (
        Some("ember-scrape-fn"),
        "EMBER_ALERTMANAGER_CONFIG",
        "only the rules function notifies",
    ),
    (
        Some("ember-scrape-fn"),
        "EMBER_EXTERNAL_URL",
        "only alerts link back",
    ),
    (
        Some("ember-compact"),
        "EMBER_ALERTMANAGER_CONFIG",
        "only the rules function notifies",
    ),
    (
        Some("ember-compact"),
        "EMBER_EXTERNAL_URL",
        "only alerts link back",
    ),
    (
        Some("ember-cloudwatch-fn"),
        "EMBER_ALERTMANAGER_CONFIG",
        "only the rules function notifies",
    ),
    (
        Some("ember-cloudwatch-fn"),
        "EMBER_EXTERNAL_URL",
        "only alerts link back",
    ),
];

/// Extra variables the functions engineer's runtime does not read but the template may set.
const STANDARD_ENV: &[&str] = &["RUST_LOG"];

fn cargo_metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Scans one source text for env-var literals and SDK calls.
fn scan_source(text: &str, env: &mut BTreeSet<String>, actions: &mut BTreeSet<String>) {
    let env_re = regex::Regex::new(r#""(EMBER_[A-Z0-9_]+)""#).expect("regex");
    for c in env_re.captures_iter(text) {
        env.insert(c[1].to_string());
    }
    let call_re = regex::Regex::new(r"\.([a-z_0-9]+)\(\)").expect("regex");
    let called: BTreeSet<&str> = call_re
        .captures_iter(text)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    for (method, marker, acts) in SDK_CALLS {
        if called.contains(method) && marker.is_none_or(|m| text.contains(m)) {
            actions.extend(acts.iter().map(|a| a.to_string()));
        }
    }
    // Assumed roles (aws-config's STS provider, e.g. CloudWatch jobs' role_arn).
    if text.contains("AssumeRoleProvider::builder") {
        actions.insert("sts:AssumeRole".to_string());
    }
    // Query API calls through ember-aws-query: `QueryService::from_env("sns", …)` and
    // `.call(client, credentials, "Publish", …)`.
    let service_re =
        regex::Regex::new(r#"QueryService::from_env\(\s*"([a-z0-9]+)""#).expect("regex");
    let query_call_re =
        regex::Regex::new(r#"\.call\(\s*[^,()]+,\s*[^,()]+,\s*"([A-Za-z]+)""#).expect("regex");
    for svc in service_re.captures_iter(text) {
        for c in query_call_re.captures_iter(text) {
            actions.insert(format!("{}:{}", &svc[1], &c[1]));
        }
    }
    // EC2 Query API calls are signed by hand: ("Action", "DescribeInstances").
    if text.contains("ec2") {
        let action_re = regex::Regex::new(r#"\("Action",\s*"([A-Za-z]+)""#).expect("regex");
        for c in action_re.captures_iter(text) {
            actions.insert(format!("ec2:{}", &c[1]));
        }
    }
}

/// Every function crate (binary name → what its crates do).
fn function_code() -> BTreeMap<String, FunctionCode> {
    let meta = cargo_metadata();
    let root = workspace_root();
    let packages = meta["packages"].as_array().expect("packages");
    let by_name: BTreeMap<&str, &Value> = packages
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?, p)))
        .collect();
    let dir_of = |p: &Value| -> PathBuf {
        PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"))
            .parent()
            .expect("crate dir")
            .to_path_buf()
    };
    let mut functions = BTreeMap::new();
    for p in packages {
        let dir = dir_of(p);
        if dir.parent() != Some(&root.join("functions")) {
            continue;
        }
        let bins: Vec<&str> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str())
            .collect();
        let name = p["name"].as_str().expect("name");
        assert_eq!(
            bins,
            [name],
            "{name}: a function crate has one binary named like the package (the contract)"
        );
        // Transitive workspace (path) dependencies, not dev-dependencies.
        let mut seen = BTreeSet::from([name.to_string()]);
        let mut todo = vec![name.to_string()];
        let mut code = FunctionCode::default();
        while let Some(n) = todo.pop() {
            let Some(pkg) = by_name.get(n.as_str()) else {
                continue;
            };
            code.crates.push(dir_of(pkg));
            for d in pkg["dependencies"].as_array().into_iter().flatten() {
                if d["kind"].as_str() == Some("dev") || d["path"].is_null() {
                    continue;
                }
                let dn = d["name"].as_str().expect("dependency name").to_string();
                if seen.insert(dn.clone()) {
                    todo.push(dn);
                }
            }
        }
        for dir in &code.crates {
            let mut files = Vec::new();
            rust_files(&dir.join("src"), &mut files);
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
                scan_source(&text, &mut code.env, &mut code.actions);
            }
        }
        functions.insert(name.to_string(), code);
    }
    assert!(!functions.is_empty(), "no crates under functions/");
    functions
}

// ---------------------------------------------------------------------------- the template

fn load_template() -> Value {
    let text = std::fs::read_to_string(template_path()).expect("infra/template.yaml");
    serde_saphyr::from_str(&text).expect("template parses as plain YAML (long-form intrinsics)")
}

/// The values an intrinsic-bearing node can take: both branches of `Fn::If`, without
/// `AWS::NoValue`; lists flattened.
fn alternatives(v: &Value) -> Vec<Value> {
    if let Some(args) = v.get("Fn::If").and_then(Value::as_array)
        && args.len() == 3
    {
        let mut out = alternatives(&args[1]);
        out.extend(alternatives(&args[2]));
        return out;
    }
    if v.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
        return vec![];
    }
    match v {
        Value::Null => vec![],
        Value::Array(items) => items.iter().flat_map(alternatives).collect(),
        other => vec![other.clone()],
    }
}

fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().expect("Resources")
}

/// `Fn::GetAtt: [X, Arn]` or `Ref: X` → `X`.
fn referenced(v: &Value) -> Option<String> {
    if let Some(a) = v.get("Fn::GetAtt").and_then(Value::as_array) {
        return a.first().and_then(Value::as_str).map(String::from);
    }
    v.get("Ref").and_then(Value::as_str).map(String::from)
}

/// Checks the template against the code; returns every disagreement.
fn check(t: &Value, code: &BTreeMap<String, FunctionCode>) -> Vec<String> {
    let mut problems = Vec::new();
    let res = resources(t);
    let globals = &t["Globals"]["Function"];
    let global_env: BTreeSet<String> = globals["Environment"]["Variables"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();

    for (key, want) in [
        ("Runtime", json!("provided.al2023")),
        ("Architectures", json!(["arm64"])),
        ("Handler", json!("bootstrap")),
        ("CodeUri", json!("..")),
    ] {
        if globals[key] != want {
            problems.push(format!(
                "Globals.Function.{key} is {}, want {want}",
                globals[key]
            ));
        }
    }

    let mut seen_binaries = BTreeSet::new();
    for (id, r) in res {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let props = &r["Properties"];
        for key in ["Runtime", "Architectures", "Handler", "CodeUri"] {
            if !props[key].is_null() {
                problems.push(format!("{id}: {key} overrides the Globals"));
            }
        }
        if r["Metadata"]["BuildMethod"] != "rust-cargolambda" {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is not rust-cargolambda"
            ));
        }
        let Some(binary) = r["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            problems.push(format!("{id}: no Metadata.BuildProperties.Binary"));
            continue;
        };
        if !seen_binaries.insert(binary.to_string()) {
            problems.push(format!("{id}: binary {binary} has two function resources"));
        }
        let Some(fc) = code.get(binary) else {
            problems.push(format!(
                "{id}: Binary {binary} is not a functions/* crate (have: {:?})",
                code.keys().collect::<Vec<_>>()
            ));
            continue;
        };

        // Environment.
        let mut env = global_env.clone();
        if let Some(m) = props["Environment"]["Variables"].as_object() {
            env.extend(m.keys().cloned());
        }
        for var in &env {
            if !fc.env.contains(var) && !STANDARD_ENV.contains(&var.as_str()) {
                problems.push(format!(
                    "{id} ({binary}): sets {var}, which its code never reads"
                ));
            }
        }
        for var in &fc.env {
            if !env.contains(var) && !excused_for(binary, var) {
                problems.push(format!(
                    "{id} ({binary}): its code reads {var} but the template does not set it"
                ));
            }
        }

        // IAM.
        let role_id = referenced(&props["Role"]);
        let Some(role) = role_id.as_ref().and_then(|r| res.get(r)) else {
            problems.push(format!(
                "{id}: no Role of its own (Role: Fn::GetAtt [XRole, Arn])"
            ));
            continue;
        };
        let role_id = role_id.unwrap_or_default();
        let users = res
            .values()
            .filter(|o| o["Type"] == "AWS::Serverless::Function")
            .filter(|o| referenced(&o["Properties"]["Role"]).as_deref() == Some(role_id.as_str()))
            .count();
        if users != 1 {
            problems.push(format!(
                "{id}: role {role_id} is shared by {users} functions"
            ));
        }
        if !props["Policies"].is_null() {
            problems.push(format!("{id}: SAM Policies next to an explicit Role"));
        }
        let granted = role_grants(&role_id, role, binary, &mut problems);
        let mut expected: BTreeSet<String> = fc
            .actions
            .iter()
            .filter(|a| !DEV_ONLY_ACTIONS.contains(&a.as_str()))
            .cloned()
            .collect();
        for (f, action, _) in NOT_GRANTED {
            if *f == binary {
                if !fc.actions.contains(*action) {
                    problems.push(format!(
                        "stale NOT_GRANTED entry: {binary} never calls {action}"
                    ));
                }
                expected.remove(*action);
            }
        }
        for a in &expected {
            if !granted.contains(a) {
                problems.push(format!(
                    "{id} ({binary}): its code calls {a} but role {role_id} does not grant it"
                ));
            }
        }
        for a in &granted {
            let implied = IMPLIED
                .iter()
                .any(|(i, by)| i == a && expected.contains(*by));
            if !expected.contains(a) && !RUNTIME_ACTIONS.contains(&a.as_str()) && !implied {
                problems.push(format!(
                    "{id} ({binary}): role {role_id} grants {a}, which its code does not call"
                ));
            }
        }
        for a in RUNTIME_ACTIONS {
            if !granted.contains(*a) {
                problems.push(format!("{id}: role {role_id} cannot write logs ({a})"));
            }
        }
    }
    for binary in code.keys() {
        if !seen_binaries.contains(binary) {
            problems.push(format!(
                "functions crate {binary} has no function resource in the template"
            ));
        }
    }
    problems
}

/// Whether `var` may be unset on `binary` per [`MAY_BE_UNSET`].
fn excused_for(binary: &str, var: &str) -> bool {
    MAY_BE_UNSET
        .iter()
        .any(|(f, v, _)| *v == var && f.is_none_or(|f| f == binary))
}

/// The actions a role grants (over every `Fn::If` branch), checking statement shapes.
fn role_grants(
    role_id: &str,
    role: &Value,
    binary: &str,
    problems: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut granted = BTreeSet::new();
    let props = &role["Properties"];
    for arn in alternatives(&props["ManagedPolicyArns"]) {
        let text = arn.to_string();
        let vpc = text.contains("service-role/AWSLambdaVPCAccessExecutionRole");
        if !(vpc && binary == "ember-scrape-fn") {
            problems.push(format!("{role_id}: managed policy {text} (only the scrape role may have the VPC access policy)"));
        }
    }
    let principal = &props["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"];
    if principal != "lambda.amazonaws.com" {
        problems.push(format!(
            "{role_id}: not assumable by lambda.amazonaws.com only"
        ));
    }
    for policy in props["Policies"].as_array().into_iter().flatten() {
        for stmt in alternatives(&policy["PolicyDocument"]["Statement"]) {
            if stmt["Effect"] != "Allow" {
                problems.push(format!("{role_id}: a statement that is not Effect: Allow"));
            }
            if !stmt["NotAction"].is_null() || !stmt["NotResource"].is_null() {
                problems.push(format!("{role_id}: NotAction/NotResource"));
            }
            let actions: Vec<String> = match &stmt["Action"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                other => {
                    problems.push(format!("{role_id}: Action {other} is not literal"));
                    vec![]
                }
            };
            let resources = alternatives(&stmt["Resource"]);
            if resources.is_empty() {
                problems.push(format!("{role_id}: statement without Resource"));
            }
            for a in &actions {
                if a.contains('*') || a.contains('?') {
                    problems.push(format!("{role_id}: wildcard action {a}"));
                }
                for r in &resources {
                    let star = r.as_str().is_some_and(|s| s.contains('*'));
                    let is_bucket_objects = r.to_string().contains("Arn}/*");
                    if star && !NO_RESOURCE_LEVEL.contains(&a.as_str()) {
                        problems.push(format!("{role_id}: {a} on resource {r}"));
                    }
                    if is_bucket_objects && !a.starts_with("s3:") {
                        problems.push(format!("{role_id}: {a} on bucket objects"));
                    }
                }
                granted.insert(a.clone());
            }
        }
    }
    granted
}

// ---------------------------------------------------------------------------- tests

#[test]
fn template_agrees_with_the_code() {
    let code = function_code();
    let problems = check(&load_template(), &code);
    assert!(
        problems.is_empty(),
        "template/code disagreements:\n  {}",
        problems.join("\n  ")
    );
    // Non-vacuous: every function's crates were found and read.
    for (name, fc) in &code {
        assert!(
            fc.env.contains("EMBER_TABLE"),
            "{name}: scan found no EMBER_TABLE"
        );
        assert!(
            fc.actions.contains("dynamodb:PutItem"),
            "{name}: scan found no DynamoDB calls"
        );
    }
    assert!(
        code.get("ember-cloudwatch-fn")
            .is_some_and(|c| c.actions.contains("cloudwatch:GetMetricData")),
        "the CloudWatch function's crates call GetMetricData"
    );
}

#[test]
fn table_matches_the_code() {
    let t = load_template();
    let table = &resources(&t)["Table"]["Properties"];
    let src = std::fs::read_to_string(workspace_root().join("shared/storage-aws/src/resources.rs"))
        .expect("resources.rs");
    let ttl = regex::Regex::new(r#"TTL_ATTRIBUTE: &str = "([a-z_]+)""#)
        .expect("regex")
        .captures(&src)
        .map(|c| c[1].to_string())
        .expect("TTL_ATTRIBUTE in resources.rs");
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": ttl, "Enabled": true})
    );
    let key_re = regex::Regex::new(r#"key\("([a-z]+)", KeyType::(Hash|Range)\)"#).expect("regex");
    let mut keys: Vec<Value> = key_re
        .captures_iter(&src)
        .map(|c| json!({"AttributeName": &c[1], "KeyType": c[2].to_uppercase()}))
        .collect();
    keys.sort_by_key(|k| k["KeyType"].to_string());
    assert_eq!(keys.len(), 2, "create_table's key schema in resources.rs");
    assert_eq!(table["KeySchema"], Value::Array(keys));
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
    let bucket = &resources(&t)["Blocks"]["Properties"];
    let block = &bucket["PublicAccessBlockConfiguration"];
    for k in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[k], true, "{k}");
    }
    let expire = &bucket["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(expire["Prefix"], "blocks/");
    assert_eq!(expire["ExpirationInDays"], json!({"Ref": "RetentionDays"}));
    let blocks_src = std::fs::read_to_string(workspace_root().join("shared/blocks/src/compact.rs"))
        .expect("compact.rs");
    assert!(
        blocks_src.contains("format!(\"blocks/"),
        "block keys live under blocks/"
    );
}

#[test]
fn scheduled_functions_are_scheduled_and_never_overlap() {
    let t = load_template();
    let res = resources(&t);
    let scheduled: BTreeSet<String> = res
        .values()
        .filter(|r| r["Type"] == "AWS::Scheduler::Schedule")
        .filter_map(|r| referenced(&r["Properties"]["Target"]["Arn"]))
        .collect();
    for id in [
        "ScrapeFunction",
        "RulesFunction",
        "CompactFunction",
        "CloudWatchFunction",
    ] {
        assert!(scheduled.contains(id), "{id} has no schedule");
        assert_eq!(
            res[id]["Properties"]["ReservedConcurrentExecutions"], 1,
            "{id}: reserved concurrency 1 so runs never overlap"
        );
    }
    // HTTP API: $default goes to the query function, write paths to ingest.
    let routes: BTreeMap<String, String> = res
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Route")
        .filter_map(|r| {
            let key = r["Properties"]["RouteKey"].as_str()?.to_string();
            let target = r["Properties"]["Target"]["Fn::Sub"].as_str()?.to_string();
            Some((key, target))
        })
        .collect();
    assert_eq!(routes["$default"], "integrations/${QueryIntegration}");
    for k in [
        "POST /api/v1/write",
        "POST /workspaces/{workspace}/api/v1/remote_write",
        "POST /api/v1/otlp/v1/metrics",
        "POST /workspaces/{workspace}/api/v1/otlp/v1/metrics",
        "ANY /metrics/{proxy+}",
    ] {
        assert_eq!(routes[k], "integrations/${IngestIntegration}", "{k}");
    }
}

/// Applies `edit` to a copy of the template and returns the problems found.
fn problems_after(
    code: &BTreeMap<String, FunctionCode>,
    edit: impl FnOnce(&mut Value),
) -> Vec<String> {
    let mut t = load_template();
    edit(&mut t);
    check(&t, code)
}

fn statements<'a>(t: &'a mut Value, role: &str) -> &'a mut Vec<Value> {
    t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .expect("statements")
}

#[test]
fn agreement_check_catches_drift() {
    let code = function_code();
    let expect = |problems: Vec<String>, needle: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "expected a problem mentioning {needle:?}, got {problems:?}"
        );
    };
    // A removed grant.
    expect(
        problems_after(&code, |t| {
            let s = statements(t, "ScrapeRole");
            let table = s
                .iter_mut()
                .find(|s| s["Sid"] == "Table")
                .expect("Table statement");
            let acts = table["Action"].as_array_mut().expect("actions");
            acts.retain(|a| a != "dynamodb:PutItem");
        }),
        "calls dynamodb:PutItem but role ScrapeRole does not grant it",
    );
    // A grant the code does not need.
    expect(
        problems_after(&code, |t| {
            statements(t, "QueryRole").push(json!({
                "Effect": "Allow", "Action": ["dynamodb:DeleteTable"],
                "Resource": {"Fn::GetAtt": ["Table", "Arn"]}}));
        }),
        "grants dynamodb:DeleteTable",
    );
    // Wildcards.
    expect(
        problems_after(&code, |t| {
            statements(t, "IngestRole").push(json!({
                "Effect": "Allow", "Action": ["s3:*"], "Resource": {"Fn::GetAtt": ["Blocks", "Arn"]}}));
        }),
        "wildcard action s3:*",
    );
    expect(
        problems_after(&code, |t| {
            let s = statements(t, "RulesRole");
            let table = s
                .iter_mut()
                .find(|s| s["Sid"] == "Table")
                .expect("Table statement");
            table["Resource"] = json!("*");
        }),
        "on resource \"*\"",
    );
    // An unknown variable, and a missing one.
    expect(
        problems_after(&code, |t| {
            t["Resources"]["CompactFunction"]["Properties"]["Environment"] =
                json!({"Variables": {"EMBER_TABEL": "x"}});
        }),
        "sets EMBER_TABEL",
    );
    expect(
        problems_after(&code, |t| {
            let v = t["Globals"]["Function"]["Environment"]["Variables"]
                .as_object_mut()
                .expect("globals");
            v.remove("EMBER_BUCKET");
        }),
        "reads EMBER_BUCKET but the template does not set it",
    );
    expect(
        problems_after(&code, |t| {
            let v = t["Resources"]["QueryFunction"]["Properties"]["Environment"]["Variables"]
                .as_object_mut()
                .expect("query env");
            v.remove("EMBER_AUTH_TOKEN");
        }),
        "reads EMBER_AUTH_TOKEN",
    );
    // A renamed binary / a missing function.
    expect(
        problems_after(&code, |t| {
            t["Resources"]["QueryFunction"]["Metadata"]["BuildProperties"]["Binary"] =
                json!("ember-querry");
        }),
        "ember-querry is not a functions/* crate",
    );
    expect(
        problems_after(&code, |t| {
            t["Resources"]
                .as_object_mut()
                .expect("resources")
                .remove("CompactFunction");
        }),
        "ember-compact has no function resource",
    );
    // A shared role.
    expect(
        problems_after(&code, |t| {
            t["Resources"]["CompactFunction"]["Properties"]["Role"] =
                json!({"Fn::GetAtt": ["QueryRole", "Arn"]});
        }),
        "shared by 2 functions",
    );
}
