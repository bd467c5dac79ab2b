//! `ec2_sd_configs`: EC2 instances as targets, with Prometheus' `__meta_ec2_*` labels.
//!
//! The one API call needed, `DescribeInstances` (plus `DescribeAvailabilityZones` for the
//! zone ids), is sent as an EC2 Query API request signed with `aws-sigv4`
//! (`ember-aws-query`) and its XML answer parsed with `quick-xml`. This avoids `aws-sdk-ec2`, which alone costs ~217 s of
//! compile time on two cores, for two requests.
//!
//! Credentials come from the config (`access_key`/`secret_key`) or the standard
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) that Lambda also sets; the region from the config or
//! `AWS_REGION`/`AWS_DEFAULT_REGION`; the endpoint from the config, `AWS_ENDPOINT_URL_EC2`
//! or `AWS_ENDPOINT_URL`, else `https://ec2.<region>.amazonaws.com`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ember_aws_query::{Credentials, QueryService};
use ember_config::scrape::Ec2SdConfig;

use super::{ADDRESS_LABEL, DiscoveryError, TargetGroup};

const EC2_API_VERSION: &str = "2016-11-15";
const META: &str = "__meta_ec2_";

/// Discovers EC2 instances.
pub struct Ec2Provider {
    cfg: Ec2SdConfig,
    client: Option<reqwest::Client>,
}

impl Ec2Provider {
    /// A provider for one `ec2_sd_configs` entry.
    pub fn new(cfg: Ec2SdConfig) -> Self {
        Self { cfg, client: None }
    }

    fn region(&self) -> Result<String, DiscoveryError> {
        self.cfg
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
            .ok_or_else(|| DiscoveryError::Ec2("no region: set `region` or AWS_REGION".into()))
    }

    fn endpoint(&self, region: &str) -> String {
        self.cfg
            .endpoint
            .clone()
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL_EC2"))
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"))
    }

    fn credentials(&self) -> Result<Credentials, DiscoveryError> {
        let (ak, sk, token) = match (&self.cfg.access_key, &self.cfg.secret_key) {
            (Some(a), Some(s)) => (a.clone(), s.clone(), None),
            _ => (
                env_nonempty("AWS_ACCESS_KEY_ID").ok_or_else(|| {
                    DiscoveryError::Ec2("no credentials: set AWS_ACCESS_KEY_ID".into())
                })?,
                env_nonempty("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                    DiscoveryError::Ec2("no credentials: set AWS_SECRET_ACCESS_KEY".into())
                })?,
                env_nonempty("AWS_SESSION_TOKEN"),
            ),
        };
        Ok(Credentials::new(ak, sk, token, None, "ember-ec2-sd"))
    }

    fn client(&mut self) -> Result<reqwest::Client, DiscoveryError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(tls) = &self.cfg.tls_config {
            b = crate::client::apply_tls(b, tls).map_err(|e| DiscoveryError::Ec2(e.to_string()))?;
        }
        let c = b
            .build()
            .map_err(|e| DiscoveryError::Ec2(format!("building HTTP client: {e}")))?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Lists the instances and turns them into one target group.
    pub async fn refresh(&mut self) -> Result<Vec<TargetGroup>, DiscoveryError> {
        let region = self.region()?;
        let endpoint = self.endpoint(&region);
        let creds = self.credentials()?;
        let client = self.client()?;
        let call = Ec2Call {
            client: &client,
            service: ec2_service(&endpoint, &region),
            credentials: creds,
        };

        // Availability zone name → id (Prometheus labels `availability_zone_id` too).
        let az_ids = match call
            .request(&[("Action", "DescribeAvailabilityZones".into())])
            .await
        {
            Ok(xml) => parse_az_ids(&xml)?,
            Err(e) => {
                tracing::debug!(error = %e, "ec2_sd: DescribeAvailabilityZones failed; no availability_zone_id labels");
                HashMap::new()
            }
        };

        let mut targets = Vec::new();
        let mut next_token: Option<String> = None;
        for _page in 0..1000 {
            let mut params: Vec<(&str, String)> = vec![("Action", "DescribeInstances".into())];
            let mut owned: Vec<(String, String)> = Vec::new();
            for (i, f) in self.cfg.filters.iter().enumerate() {
                owned.push((format!("Filter.{}.Name", i + 1), f.name.clone()));
                for (j, v) in f.values.iter().enumerate() {
                    owned.push((format!("Filter.{}.Value.{}", i + 1, j + 1), v.clone()));
                }
            }
            if let Some(t) = &next_token {
                params.push(("NextToken", t.clone()));
            }
            let all: Vec<(&str, String)> = params
                .into_iter()
                .chain(owned.iter().map(|(k, v)| (k.as_str(), v.clone())))
                .collect();
            let xml = call.request(&all).await?;
            let (page_targets, token) = parse_instances(&xml, &region, self.cfg.port, &az_ids)?;
            targets.extend(page_targets);
            match token {
                Some(t) if !t.is_empty() => next_token = Some(t),
                _ => break,
            }
        }
        Ok(vec![TargetGroup {
            source: format!("ec2/{region}"),
            targets,
            labels: BTreeMap::new(),
        }])
    }
}

/// Sends one signed EC2 Query API request (`Action=…` plus parameters) and returns the
/// XML body. Used by discovery; public so tools and tests can create instances on a
/// local EC2 endpoint (moto) the same way.
pub async fn ec2_query(
    client: &reqwest::Client,
    endpoint: &str,
    region: &str,
    credentials: Credentials,
    params: &[(&str, String)],
) -> Result<String, DiscoveryError> {
    Ec2Call {
        client,
        service: ec2_service(endpoint, region),
        credentials,
    }
    .request(params)
    .await
}

fn ec2_service(endpoint: &str, region: &str) -> QueryService {
    QueryService {
        endpoint: endpoint.to_string(),
        region: region.to_string(),
        service: "ec2",
        version: EC2_API_VERSION,
    }
}

struct Ec2Call<'a> {
    client: &'a reqwest::Client,
    service: QueryService,
    credentials: Credentials,
}

impl Ec2Call<'_> {
    /// `params` start with `("Action", …)`.
    async fn request(&self, params: &[(&str, String)]) -> Result<String, DiscoveryError> {
        let action = params
            .iter()
            .find(|(k, _)| *k == "Action")
            .map_or("", |(_, v)| v.as_str());
        let rest: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| *k != "Action")
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        self.service
            .call(self.client, &self.credentials, action, &rest)
            .await
            .map_err(|e| DiscoveryError::Ec2(e.to_string()))
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A minimal XML element tree.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Children `item` of the child `name` (the EC2 list encoding).
    fn items<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Node> + 's {
        self.child(name)
            .into_iter()
            .flat_map(|c| c.children.iter().filter(|i| i.name == "item"))
    }
}

fn parse_xml(xml: &str) -> Result<Node, DiscoveryError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| DiscoveryError::Ec2(format!("invalid XML response: {e}")))?;
        match ev {
            Event::Start(s) => stack.push(Node {
                name: s.local_name().as_ref().to_string(),
                ..Node::default()
            }),
            Event::Empty(s) => {
                let node = Node {
                    name: s.local_name().as_ref().to_string(),
                    ..Node::default()
                };
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match &*r {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => format!("&{other};"),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::End(_) => {
                if stack.len() > 1
                    && let Some(mut node) = stack.pop()
                {
                    let trimmed = node.text.trim();
                    if trimmed.len() != node.text.len() {
                        node.text = trimmed.to_string();
                    }
                    if let Some(top) = stack.last_mut() {
                        top.children.push(node);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut root = stack.into_iter().next().unwrap_or_default();
    Ok(root.children.pop().unwrap_or_default())
}

fn parse_az_ids(xml: &str) -> Result<HashMap<String, String>, DiscoveryError> {
    let root = parse_xml(xml)?;
    Ok(root
        .items("availabilityZoneInfo")
        .filter_map(|z| {
            Some((
                z.text_of("zoneName")?.to_string(),
                z.text_of("zoneId")?.to_string(),
            ))
        })
        .collect())
}

/// Replaces characters not allowed in label names by `_` (Prometheus' `SanitizeLabelName`).
fn sanitize_label_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One discovered target's labels.
type DiscoveredTarget = BTreeMap<String, String>;

/// Turns a `DescribeInstances` response into targets (and the pagination token).
fn parse_instances(
    xml: &str,
    region: &str,
    port: u16,
    az_ids: &HashMap<String, String>,
) -> Result<(Vec<DiscoveredTarget>, Option<String>), DiscoveryError> {
    let root = parse_xml(xml)?;
    if root.name != "DescribeInstancesResponse" {
        return Err(DiscoveryError::Ec2(format!(
            "unexpected response element {:?}",
            root.name
        )));
    }
    let mut out = Vec::new();
    for reservation in root.items("reservationSet") {
        let owner = reservation.text_of("ownerId").unwrap_or("");
        for inst in reservation.items("instancesSet") {
            // Prometheus skips instances without a private IP.
            let Some(private_ip) = inst.text_of("privateIpAddress").filter(|s| !s.is_empty())
            else {
                continue;
            };
            let mut l = BTreeMap::new();
            let mut set = |k: &str, v: &str| {
                l.insert(format!("{META}{k}"), v.to_string());
            };
            set("instance_id", inst.text_of("instanceId").unwrap_or(""));
            set("region", region);
            set("private_ip", private_ip);
            set("owner_id", owner);
            if let Some(v) = inst.text_of("imageId") {
                set("ami", v);
            }
            if let Some(v) = inst.text_of("architecture") {
                set("architecture", v);
            }
            if let Some(v) = inst.text_of("privateDnsName").filter(|s| !s.is_empty()) {
                set("private_dns_name", v);
            }
            if let Some(v) = inst.text_of("ipAddress").filter(|s| !s.is_empty()) {
                set("public_ip", v);
            }
            if let Some(v) = inst.text_of("dnsName").filter(|s| !s.is_empty()) {
                set("public_dns_name", v);
            }
            if let Some(v) = inst.text_of("platform") {
                set("platform", v);
            }
            if let Some(v) = inst.text_of("instanceLifecycle") {
                set("instance_lifecycle", v);
            }
            if let Some(az) = inst
                .child("placement")
                .and_then(|p| p.text_of("availabilityZone"))
            {
                set("availability_zone", az);
                if let Some(id) = az_ids.get(az) {
                    set("availability_zone_id", id);
                }
            }
            if let Some(state) = inst.child("instanceState").and_then(|s| s.text_of("name")) {
                set("instance_state", state);
            }
            if let Some(v) = inst.text_of("instanceType") {
                set("instance_type", v);
            }
            if let Some(vpc) = inst.text_of("vpcId").filter(|s| !s.is_empty()) {
                set("vpc_id", vpc);
                if let Some(v) = inst.text_of("subnetId") {
                    set("primary_subnet_id", v);
                }
                let mut subnets: Vec<&str> = Vec::new();
                let mut ipv6: Vec<&str> = Vec::new();
                let mut primary_ipv6: Vec<&str> = Vec::new();
                for eni in inst.items("networkInterfaceSet") {
                    if let Some(s) = eni.text_of("subnetId").filter(|s| !s.is_empty())
                        && !subnets.contains(&s)
                    {
                        subnets.push(s);
                    }
                    for a in eni.items("ipv6AddressesSet") {
                        if let Some(addr) = a.text_of("ipv6Address") {
                            ipv6.push(addr);
                            if a.text_of("isPrimaryIpv6") == Some("true") {
                                primary_ipv6.push(addr);
                            }
                        }
                    }
                }
                if !subnets.is_empty() {
                    set("subnet_id", &format!(",{},", subnets.join(",")));
                }
                if !ipv6.is_empty() {
                    set("ipv6_addresses", &format!(",{},", ipv6.join(",")));
                }
                if !primary_ipv6.is_empty() {
                    set(
                        "primary_ipv6_addresses",
                        &format!(",{},", primary_ipv6.join(",")),
                    );
                }
            }
            for tag in inst.items("tagSet") {
                if let (Some(k), Some(v)) = (tag.text_of("key"), tag.text_of("value")) {
                    l.insert(
                        format!("{META}tag_{}", sanitize_label_name(k)),
                        v.to_string(),
                    );
                }
            }
            let host = if private_ip.contains(':') {
                format!("[{private_ip}]")
            } else {
                private_ip.to_string()
            };
            l.insert(ADDRESS_LABEL.to_string(), format!("{host}:{port}"));
            out.push(l);
        }
    }
    let token = root.text_of("nextToken").map(str::to_string);
    Ok((out, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r1</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <ownerId>123456789012</ownerId>
      <instancesSet>
        <item>
          <instanceId>i-abc</instanceId>
          <imageId>ami-1</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-127-0-0-1.ec2.internal</privateDnsName>
          <dnsName></dnsName>
          <instanceType>t3.micro</instanceType>
          <placement><availabilityZone>us-east-1a</availabilityZone></placement>
          <subnetId>subnet-1</subnetId>
          <vpcId>vpc-1</vpcId>
          <privateIpAddress>127.0.0.1</privateIpAddress>
          <architecture>x86_64</architecture>
          <networkInterfaceSet><item><subnetId>subnet-1</subnetId></item></networkInterfaceSet>
          <tagSet>
            <item><key>prometheus</key><value>scrape</value></item>
            <item><key>app:name</key><value>a &amp; b</value></item>
          </tagSet>
        </item>
        <item><instanceId>i-noip</instanceId></item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

    #[test]
    fn parses_instances_into_prometheus_labels() {
        let az = HashMap::from([("us-east-1a".to_string(), "use1-az6".to_string())]);
        let (targets, token) = parse_instances(RESPONSE, "us-east-1", 9100, &az).unwrap();
        assert_eq!(token, None);
        assert_eq!(
            targets.len(),
            1,
            "instances without a private IP are skipped"
        );
        let t = &targets[0];
        let g = |k: &str| t.get(k).map(String::as_str);
        assert_eq!(g("__address__"), Some("127.0.0.1:9100"));
        assert_eq!(g("__meta_ec2_instance_id"), Some("i-abc"));
        assert_eq!(g("__meta_ec2_owner_id"), Some("123456789012"));
        assert_eq!(g("__meta_ec2_instance_state"), Some("running"));
        assert_eq!(g("__meta_ec2_availability_zone_id"), Some("use1-az6"));
        assert_eq!(g("__meta_ec2_subnet_id"), Some(",subnet-1,"));
        assert_eq!(g("__meta_ec2_primary_subnet_id"), Some("subnet-1"));
        assert_eq!(g("__meta_ec2_tag_prometheus"), Some("scrape"));
        assert_eq!(g("__meta_ec2_tag_app_name"), Some("a & b"));
        assert_eq!(g("__meta_ec2_public_dns_name"), None);
        assert_eq!(g("__meta_ec2_region"), Some("us-east-1"));
    }
}
