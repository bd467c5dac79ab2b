//! `open_aws_storage` honours the standard AWS environment (`AWS_ENDPOINT_URL`, region,
//! credentials). The only test in this binary, so setting variables is race-free.

use ember_model::{Labels, Matcher, Sample, Series};
use ember_storage::AppendBatch;
use ember_storage_aws::testing::Moto;
use ember_storage_aws::{AwsStorageConfig, open_aws_storage};

#[tokio::test]
async fn open_aws_storage_uses_the_standard_environment() {
    let moto = Moto::start();
    // SAFETY: this binary has a single test and sets the variables before any SDK thread runs.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let mut cfg = AwsStorageConfig::new("ember-env", "ember-env");
    cfg.create_resources = true;
    let st = open_aws_storage(&cfg).await.unwrap();
    let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
    let batch = AppendBatch {
        series: vec![Series::new(
            labels,
            vec![Sample::new(1_700_000_000_000, 1.0)],
        )],
        metadata: vec![],
    };
    st.append("default", batch).await.unwrap();
    let got = st
        .select(
            "default",
            &[Matcher::equal("__name__", "up")],
            0,
            i64::MAX / 2,
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples, vec![Sample::new(1_700_000_000_000, 1.0)]);
}
