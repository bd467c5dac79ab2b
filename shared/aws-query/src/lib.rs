//! Signed AWS Query API calls: a form-encoded `POST` with `Action=…`, `Version=…` and
//! parameters, signed with SigV4 (`aws-sigv4`), answered with XML.
//!
//! Ember makes one or two such calls per service (EC2 `DescribeInstances` for discovery,
//! SNS `Publish` for the notifier). The generated SDK crates for those services cost
//! minutes of compile time on two cores and megabytes of Lambda binary; this is the part
//! of them Ember uses. Callers parse the XML answer themselves.

use std::time::SystemTime;

pub use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// A Query API call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request could not be signed (bad region, endpoint or credentials).
    #[error("signing {action} for {endpoint}: {message}")]
    Sign {
        /// The action.
        action: String,
        /// Where it was going.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// No answer (connection refused, timeout, TLS).
    #[error("{action} to {endpoint}: {message}")]
    Transport {
        /// The action.
        action: String,
        /// Where it was going.
        endpoint: String,
        /// What went wrong (the URL is not repeated).
        message: String,
    },
    /// The service answered with an error status; `body` is the start of its XML.
    #[error("{action} to {endpoint} returned HTTP {status}: {body}")]
    Status {
        /// The action.
        action: String,
        /// Where it was going.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The first 300 characters of the answer.
        body: String,
    },
}

impl QueryError {
    /// Whether retrying can help: transport errors, throttling (400 `Throttling`),
    /// 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            QueryError::Sign { .. } => false,
            QueryError::Transport { .. } => true,
            QueryError::Status { status, body, .. } => {
                *status >= 500 || *status == 429 || body.contains("Throttl")
            }
        }
    }
}

/// One service endpoint: where to send, how to sign.
#[derive(Debug, Clone)]
pub struct QueryService {
    /// Endpoint URL (`https://sns.us-east-1.amazonaws.com`, or a local one in tests).
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// Signing name (`ec2`, `sns`).
    pub service: &'static str,
    /// API version sent as `Version` (`2016-11-15` for EC2, `2010-03-31` for SNS).
    pub version: &'static str,
}

impl QueryService {
    /// The service in `region`, at the endpoint the standard environment names
    /// (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`), else AWS' public one.
    pub fn from_env(service: &'static str, version: &'static str, region: &str) -> Self {
        let specific = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
        let endpoint = env_nonempty(&specific)
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| default_endpoint(service, region));
        Self {
            endpoint,
            region: region.to_string(),
            service,
            version,
        }
    }

    /// Sends `Action=action` with `params`, signed with `credentials`; returns the XML
    /// answer of a 2xx.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        credentials: &Credentials,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, QueryError> {
        let body = {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            ser.append_pair("Action", action);
            for (k, v) in params {
                ser.append_pair(k, v);
            }
            ser.append_pair("Version", self.version);
            ser.finish()
        };
        let sign_err = |message: String| QueryError::Sign {
            action: action.to_string(),
            endpoint: self.endpoint.clone(),
            message,
        };
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let identity: Identity = credentials.clone().into();
        let signing_params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| sign_err(e.to_string()))?
            .into();
        let headers = [("content-type", content_type)];
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| sign_err(e.to_string()))?;
        let (instructions, _) = sign(signable, &signing_params)
            .map_err(|e| sign_err(e.to_string()))?
            .into_parts();
        let mut req = client
            .post(&self.endpoint)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let transport = |e: reqwest::Error| QueryError::Transport {
            action: action.to_string(),
            endpoint: self.endpoint.clone(),
            message: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(QueryError::Status {
                action: action.to_string(),
                endpoint: self.endpoint.clone(),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        Ok(text)
    }
}

/// AWS' public endpoint of `service` in `region` (`amazonaws.com.cn` in China regions).
pub fn default_endpoint(service: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{service}.{region}.{suffix}")
}

/// Credentials from the standard environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), which Lambda sets; `None` if unset.
pub fn env_credentials(provider: &'static str) -> Option<Credentials> {
    let ak = env_nonempty("AWS_ACCESS_KEY_ID")?;
    let sk = env_nonempty("AWS_SECRET_ACCESS_KEY")?;
    Some(Credentials::new(
        ak,
        sk,
        env_nonempty("AWS_SESSION_TOKEN"),
        None,
        provider,
    ))
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The text of the first `<name>…</name>` element in an XML answer (request ids,
/// message ids, error codes), without a full parse.
pub fn xml_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_xml() {
        assert_eq!(
            default_endpoint("sns", "eu-west-1"),
            "https://sns.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            default_endpoint("ec2", "cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
        let xml = "<PublishResponse><PublishResult><MessageId>abc-1</MessageId></PublishResult></PublishResponse>";
        assert_eq!(xml_text(xml, "MessageId"), Some("abc-1"));
        assert_eq!(xml_text(xml, "Code"), None);
    }

    #[test]
    fn retryable_errors() {
        let status = |status, body: &str| QueryError::Status {
            action: "Publish".into(),
            endpoint: "e".into(),
            status,
            body: body.into(),
        };
        assert!(status(503, "").is_retryable());
        assert!(status(400, "<Code>Throttling</Code>").is_retryable());
        assert!(!status(404, "<Code>NotFound</Code>").is_retryable());
    }

    #[tokio::test]
    async fn refused_connection_is_a_transport_error_without_the_url_twice() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let svc = QueryService {
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "us-east-1".into(),
            service: "sns",
            version: "2010-03-31",
        };
        let creds = Credentials::new("AKID", "secret", None, None, "test");
        let e = svc
            .call(&reqwest::Client::new(), &creds, "Publish", &[])
            .await
            .unwrap_err();
        assert!(matches!(e, QueryError::Transport { .. }), "{e}");
        assert!(e.is_retryable());
    }
}
