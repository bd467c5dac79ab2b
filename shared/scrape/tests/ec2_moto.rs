//! `ec2_sd_configs` against a real moto server on 127.0.0.1.
//!
//! Instances are created with `PrivateIpAddress=127.0.0.1`; one more instance gets a
//! moto-assigned 10.x address and must be dropped by the `keep` relabel rule on
//! `__meta_ec2_private_ip`, so nothing but loopback is ever contacted.
//!
//! Needs `moto_server` (PyPI `moto[server]`): set `EMBER_MOTO_SERVER` to its path or put
//! it on PATH. The test fails (it does not skip) when it is missing.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ember_aws_query::Credentials;
use ember_config::Config;
use ember_scrape::discovery::ec2::ec2_query;
use ember_scrape::{ScrapeManager, ScrapeOptions};
use ember_storage::MemStorage;

fn between<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let end = xml[start..].find(close)? + start;
    Some(&xml[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_discovery_against_moto_scrapes_only_loopback_instances() {
    let Some(moto) = find_program("EMBER_MOTO_SERVER", "moto_server", &[]) else {
        panic!(
            "moto_server not found. Install it with `python3 -m venv /tmp/moto-venv && /tmp/moto-venv/bin/pip install \
             'moto[server]==5.2.5' boto3` and set EMBER_MOTO_SERVER=/tmp/moto-venv/bin/moto_server (or put it on PATH)."
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let port_s = port.to_string();
    let _moto = ChildGuard::spawn(
        &moto,
        &["-H", "127.0.0.1", "-p", &port_s],
        &dir.path().join("moto.log"),
    );
    wait_for_port(port, Duration::from_secs(30));
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let creds = || Credentials::new("testing", "testing", None, None, "test");
    let call = |params: Vec<(&'static str, String)>| {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        async move {
            ec2_query(&client, &endpoint, "us-east-1", creds(), &params)
                .await
                .expect("EC2 call to moto")
        }
    };

    let images = call(vec![("Action", "DescribeImages".into())]).await;
    let ami = between(&images, "<imageId>", "</imageId>")
        .expect("moto has AMIs")
        .to_string();
    let target = TestTarget::start(Reply::text("# TYPE app_up gauge\napp_up 1\n")).await;
    let target_port = target.address.rsplit(':').next().unwrap().to_string();

    let run = |private_ip: Option<&'static str>, name: &'static str| {
        let mut p: Vec<(&'static str, String)> = vec![
            ("Action", "RunInstances".into()),
            ("ImageId", ami.clone()),
            ("MinCount", "1".into()),
            ("MaxCount", "1".into()),
            ("InstanceType", "t3.micro".into()),
            ("TagSpecification.1.ResourceType", "instance".into()),
            ("TagSpecification.1.Tag.1.Key", "prometheus".into()),
            ("TagSpecification.1.Tag.1.Value", "scrape".into()),
            ("TagSpecification.1.Tag.2.Key", "Name".into()),
            ("TagSpecification.1.Tag.2.Value", name.into()),
        ];
        if let Some(ip) = private_ip {
            p.push(("PrivateIpAddress", ip.into()));
        }
        call(p)
    };
    let created = run(Some("127.0.0.1"), "web").await;
    let loopback_id = between(&created, "<instanceId>", "</instanceId>")
        .unwrap()
        .to_string();
    let other = run(None, "elsewhere").await;
    let other_ip = between(&other, "<privateIpAddress>", "</privateIpAddress>")
        .unwrap()
        .to_string();
    assert!(
        !other_ip.starts_with("127."),
        "moto assigns a non-loopback address: {other_ip}"
    );
    // An untagged instance is filtered out by the DescribeInstances filter.
    call(vec![
        ("Action", "RunInstances".into()),
        ("ImageId", ami.clone()),
        ("MinCount", "1".into()),
        ("MaxCount", "1".into()),
        ("PrivateIpAddress", "127.0.0.1".into()),
    ])
    .await;

    let yaml = format!(
        r#"scrape_configs:
  - job_name: ec2
    ec2_sd_configs:
      - endpoint: {endpoint}
        region: us-east-1
        access_key: testing
        secret_key: testing
        port: {target_port}
        filters: [{{name: 'tag:prometheus', values: [scrape]}}]
    relabel_configs:
      - source_labels: [__meta_ec2_private_ip]
        regex: '127\..*'
        action: keep
      - source_labels: [__meta_ec2_tag_Name]
        target_label: name
      - source_labels: [__meta_ec2_instance_id]
        target_label: instance_id
"#
    );
    let cfg = Config::from_yaml(&yaml, Path::new("ec2.yml")).unwrap();
    let store = Arc::new(MemStorage::new());
    let m = ScrapeManager::new(&cfg, store.clone(), ScrapeOptions::default()).unwrap();
    let r = m.scrape_job_once("ec2").await.unwrap();
    assert_eq!((r.scraped, r.failed), (1, 0), "{:#?}", m.targets());

    let instance = format!("127.0.0.1:{target_port}");
    assert_eq!(
        last_value(
            &store,
            &[("__name__", "up"), ("job", "ec2"), ("instance", &instance)]
        ),
        1.0
    );
    assert_eq!(
        last_value(
            &store,
            &[
                ("__name__", "app_up"),
                ("name", "web"),
                ("instance_id", &loopback_id)
            ]
        ),
        1.0
    );

    let targets = m.targets();
    assert_eq!(targets.active_targets.len(), 1);
    let d = &targets.active_targets[0].discovered_labels;
    let g = |k: &str| d.get(k).map(String::as_str);
    assert_eq!(g("__address__"), Some(instance.as_str()));
    assert_eq!(g("__meta_ec2_private_ip"), Some("127.0.0.1"));
    assert_eq!(g("__meta_ec2_instance_id"), Some(loopback_id.as_str()));
    assert_eq!(g("__meta_ec2_instance_state"), Some("running"));
    assert_eq!(g("__meta_ec2_instance_type"), Some("t3.micro"));
    assert_eq!(g("__meta_ec2_ami"), Some(ami.as_str()));
    assert_eq!(g("__meta_ec2_region"), Some("us-east-1"));
    assert_eq!(g("__meta_ec2_tag_Name"), Some("web"));
    assert_eq!(g("__meta_ec2_tag_prometheus"), Some("scrape"));
    for k in [
        "__meta_ec2_availability_zone",
        "__meta_ec2_owner_id",
        "__meta_ec2_private_dns_name",
        "__meta_ec2_vpc_id",
        "__meta_ec2_subnet_id",
    ] {
        assert!(d.contains_key(k), "missing {k}: {d:#?}");
    }
    // The moto-assigned address was dropped by relabeling and never scraped.
    assert_eq!(
        targets.dropped_targets.len(),
        1,
        "{:#?}",
        targets.dropped_targets
    );
    assert_eq!(
        targets.dropped_targets[0]
            .discovered_labels
            .get("__meta_ec2_private_ip"),
        Some(&other_ip)
    );
    assert_eq!(target.requests().len(), 1);
}
