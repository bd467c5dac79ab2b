//! The configuration loader against a real moto S3: `s3://` config with its rule-file
//! globs, change detection by ETag, and a missing object meaning built-in defaults until
//! it is uploaded.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use ember_runtime::aws::AwsContext;
use ember_runtime::{ConfigLoader, ConfigLocation};
use ember_storage_aws::testing::Moto;

const CONFIG: &str = "global:\n  scrape_interval: 15s\nrule_files:\n  - rules/*.yml\n";
const RULES_A: &str = "groups:\n  - name: a\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n";
const RULES_B: &str = "groups:\n  - name: b\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 2m\n";

async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    moto.sdk_config().await
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: &str) {
    s3.put_object()
        .bucket("cfg")
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
}

fn loader(ctx: &Arc<AwsContext>, url: &str, cache: &std::path::Path) -> ConfigLoader {
    ConfigLoader::new(
        Some(ConfigLocation::parse(url).unwrap()),
        Duration::ZERO,
        ctx.clone(),
        cache,
    )
}

#[tokio::test]
async fn s3_config_with_rule_files_is_loaded_and_reloaded_on_change() {
    let moto = Moto::start();
    let sdk = sdk(&moto).await;
    let s3 = ember_storage_aws::AwsClients::from_sdk_config(&sdk).s3;
    s3.create_bucket().bucket("cfg").send().await.unwrap();
    put(&s3, "config/prometheus.yml", CONFIG).await;
    put(&s3, "config/rules/a.yml", RULES_A).await;
    put(&s3, "config/rules/b.yml", RULES_B).await;
    put(&s3, "config/other/c.yml", "not: rules\n").await;
    let ctx = Arc::new(AwsContext::with_config(sdk));
    let cache = tempfile::tempdir().unwrap();
    let mut l = loader(&ctx, "s3://cfg/config/prometheus.yml", cache.path());

    let first = l.poll().await.unwrap().expect("first load");
    assert_eq!(first.config.rule_files, vec!["rules/*.yml".to_string()]);
    assert_eq!(first.yaml, CONFIG);
    let read = |name: &str| std::fs::read_to_string(first.base_dir.join(name)).ok();
    assert_eq!(read("rules/a.yml").as_deref(), Some(RULES_A));
    assert_eq!(read("rules/b.yml").as_deref(), Some(RULES_B));
    assert_eq!(
        read("other/c.yml"),
        None,
        "only files the globs match are fetched"
    );

    assert!(
        l.poll().await.unwrap().is_none(),
        "unchanged objects: no reload"
    );

    let changed = RULES_A.replace("sum by (job)", "max by (job)");
    put(&s3, "config/rules/a.yml", &changed).await;
    let second = l
        .poll()
        .await
        .unwrap()
        .expect("a changed rule file reloads");
    assert_ne!(second.version, first.version);
    assert_eq!(
        std::fs::read_to_string(second.base_dir.join("rules/a.yml")).unwrap(),
        changed
    );
}

#[tokio::test]
async fn missing_s3_config_means_defaults_until_uploaded() {
    let moto = Moto::start();
    let sdk = sdk(&moto).await;
    let s3 = ember_storage_aws::AwsClients::from_sdk_config(&sdk).s3;
    s3.create_bucket().bucket("cfg").send().await.unwrap();
    let ctx = Arc::new(AwsContext::with_config(sdk));
    let cache = tempfile::tempdir().unwrap();
    let mut l = loader(&ctx, "s3://cfg/config/prometheus.yml", cache.path());

    let defaults = l.poll().await.unwrap().expect("defaults at first");
    assert!(defaults.config.scrape_configs.is_empty());
    assert!(defaults.config.rule_files.is_empty());
    assert!(
        defaults.location.contains("not found"),
        "{}",
        defaults.location
    );
    assert!(
        l.poll().await.unwrap().is_none(),
        "still missing: nothing new"
    );

    put(
        &s3,
        "config/prometheus.yml",
        "global:\n  scrape_interval: 30s\n",
    )
    .await;
    let uploaded = l.poll().await.unwrap().expect("the upload is picked up");
    assert_eq!(uploaded.yaml, "global:\n  scrape_interval: 30s\n");
}
