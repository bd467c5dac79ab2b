//! The HTTP side of a scrape: one `reqwest` client per job, authentication, TLS,
//! compression, the body size limit and the timeout.

use std::time::Duration;

use ember_config::scrape::{ResolvedScrapeConfig, ScrapeConfig, TlsConfig};
use ember_formats::exposition::{Format, SCRAPE_ACCEPT_HEADER};

use crate::ScrapeError;

/// The `User-Agent` Ember scrapes with.
pub const USER_AGENT: &str = concat!("Ember/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic {
        username: Secret,
        password: Option<Secret>,
    },
    Header {
        scheme: String,
        credentials: Secret,
    },
}

/// A value given inline or read from a file on every use (so rotated secrets are picked up).
#[derive(Debug, Clone)]
enum Secret {
    Inline(String),
    File(String),
}

impl Secret {
    async fn get(&self) -> Result<String, ScrapeError> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|e| ScrapeError::Config(format!("reading {path}: {e}"))),
        }
    }
}

/// A scraped body with its `Content-Type`.
#[derive(Debug, Clone)]
pub struct ScrapeBody {
    /// The (decompressed) body.
    pub bytes: Vec<u8>,
    /// The response `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// The HTTP client of one job.
#[derive(Debug, Clone)]
pub struct JobClient {
    client: reqwest::Client,
    auth: Auth,
    headers: Vec<(String, Secret)>,
    compression: bool,
    body_size_limit: u64,
    fallback: Option<Format>,
    accept: String,
}

/// Applies a `tls_config` to a client builder.
pub fn apply_tls(
    mut b: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder, ScrapeError> {
    let read = |inline: &Option<String>,
                file: &Option<String>,
                what: &str|
     -> Result<Option<Vec<u8>>, ScrapeError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(ScrapeError::Config(format!(
                "tls_config: at most one of {what} and {what}_file"
            ))),
            (Some(s), None) => Ok(Some(s.clone().into_bytes())),
            (None, Some(f)) => std::fs::read(f).map(Some).map_err(|e| {
                ScrapeError::Config(format!("tls_config: reading {what}_file {f}: {e}"))
            }),
            (None, None) => Ok(None),
        }
    };
    if let Some(ca) = read(&tls.ca, &tls.ca_file, "ca")? {
        let certs = reqwest::Certificate::from_pem_bundle(&ca)
            .map_err(|e| ScrapeError::Config(format!("tls_config: invalid CA PEM: {e}")))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    let cert = read(&tls.cert, &tls.cert_file, "cert")?;
    let key = read(&tls.key, &tls.key_file, "key")?;
    match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            let id = reqwest::Identity::from_pem(&cert).map_err(|e| {
                ScrapeError::Config(format!("tls_config: invalid client certificate/key: {e}"))
            })?;
            b = b.identity(id);
        }
        (None, None) => {}
        _ => {
            return Err(ScrapeError::Config(
                "tls_config: client cert and key must be given together".into(),
            ));
        }
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    if tls.server_name.is_some() {
        return Err(ScrapeError::Config(
            "tls_config: server_name is not supported by Ember".into(),
        ));
    }
    let version = |v: &str| match v {
        "TLS12" => Ok(reqwest::tls::Version::TLS_1_2),
        "TLS13" => Ok(reqwest::tls::Version::TLS_1_3),
        "TLS10" => Ok(reqwest::tls::Version::TLS_1_0),
        "TLS11" => Ok(reqwest::tls::Version::TLS_1_1),
        other => Err(ScrapeError::Config(format!(
            "tls_config: unknown TLS version {other:?}"
        ))),
    };
    if let Some(v) = &tls.min_version {
        b = b.tls_version_min(version(v)?);
    }
    if let Some(v) = &tls.max_version {
        b = b.tls_version_max(version(v)?);
    }
    Ok(b)
}

fn accept_header(protocols: Option<&Vec<String>>) -> String {
    let Some(protocols) = protocols.filter(|p| !p.is_empty()) else {
        return SCRAPE_ACCEPT_HEADER.to_string();
    };
    let mut parts = Vec::new();
    let n = protocols.len();
    for (i, p) in protocols.iter().enumerate() {
        let media = match p.as_str() {
            "OpenMetricsText1.0.0" => {
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            }
            "OpenMetricsText0.0.1" => "application/openmetrics-text;version=0.0.1",
            "PrometheusText1.0.0" => "text/plain;version=1.0.0;escaping=allow-utf-8",
            "PrometheusText0.0.4" => "text/plain;version=0.0.4",
            _ => continue,
        };
        let q = (n + 1 - i) as f64 / 10.0;
        parts.push(format!("{media};q={q}"));
    }
    parts.push("*/*;q=0.1".to_string());
    parts.join(",")
}

impl JobClient {
    /// Builds the client for a job.
    pub fn new(raw: &ScrapeConfig, cfg: &ResolvedScrapeConfig) -> Result<Self, ScrapeError> {
        let mut b = reqwest::Client::builder().user_agent(USER_AGENT);
        b = if cfg.follow_redirects {
            b.redirect(reqwest::redirect::Policy::limited(10))
        } else {
            b.redirect(reqwest::redirect::Policy::none())
        };
        if !cfg.enable_compression {
            b = b.no_gzip();
        }
        match (&raw.proxy_url, raw.proxy_from_environment.unwrap_or(false)) {
            (Some(p), _) => {
                let mut proxy = reqwest::Proxy::all(p)
                    .map_err(|e| ScrapeError::Config(format!("proxy_url {p:?}: {e}")))?;
                if let Some(np) = &raw.no_proxy {
                    proxy = proxy.no_proxy(reqwest::NoProxy::from_string(np));
                }
                b = b.proxy(proxy);
            }
            (None, true) => {}
            (None, false) => b = b.no_proxy(),
        }
        if let Some(tls) = &raw.tls_config {
            b = apply_tls(b, tls)?;
        }
        let client = b
            .build()
            .map_err(|e| ScrapeError::Config(format!("building HTTP client: {e}")))?;
        let auth = if let Some(ba) = &raw.basic_auth {
            let username = match &ba.username_file {
                Some(f) => Secret::File(f.clone()),
                None => Secret::Inline(ba.username.clone()),
            };
            let password = match (&ba.password, &ba.password_file) {
                (Some(p), _) => Some(Secret::Inline(p.clone())),
                (None, Some(f)) => Some(Secret::File(f.clone())),
                (None, None) => None,
            };
            Auth::Basic { username, password }
        } else if let Some(a) = &raw.authorization {
            let scheme = a.auth_type.clone().unwrap_or_else(|| "Bearer".into());
            match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => Auth::Header {
                    scheme,
                    credentials: Secret::Inline(c.clone()),
                },
                (None, Some(f)) => Auth::Header {
                    scheme,
                    credentials: Secret::File(f.clone()),
                },
                (None, None) => Auth::None,
            }
        } else if let Some(t) = &raw.bearer_token {
            Auth::Header {
                scheme: "Bearer".into(),
                credentials: Secret::Inline(t.clone()),
            }
        } else if let Some(f) = &raw.bearer_token_file {
            Auth::Header {
                scheme: "Bearer".into(),
                credentials: Secret::File(f.clone()),
            }
        } else {
            Auth::None
        };
        let mut headers = Vec::new();
        for (name, h) in &raw.http_headers {
            for v in h.values.iter().chain(&h.secrets) {
                headers.push((name.clone(), Secret::Inline(v.clone())));
            }
            for f in &h.files {
                headers.push((name.clone(), Secret::File(f.clone())));
            }
        }
        let fallback = match &cfg.fallback_scrape_protocol {
            Some(p) => Format::from_protocol_name(p),
            // Prometheus 2.x behaviour: an unknown or missing Content-Type is parsed as text.
            None => Some(Format::PrometheusText),
        };
        Ok(Self {
            client,
            auth,
            headers,
            compression: cfg.enable_compression,
            body_size_limit: cfg.body_size_limit,
            fallback,
            accept: accept_header(raw.scrape_protocols.as_ref()),
        })
    }

    /// The format to parse a response with.
    pub fn format_for(&self, content_type: Option<&str>) -> Result<Format, ScrapeError> {
        Format::from_content_type(content_type, self.fallback)
            .map_err(|e| ScrapeError::Parse(e.message))
    }

    /// GETs `url` within `timeout` and returns the decompressed body.
    pub async fn fetch(&self, url: &str, timeout: Duration) -> Result<ScrapeBody, ScrapeError> {
        match tokio::time::timeout(timeout, self.fetch_inner(url, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Http(format!(
                "Get {url:?}: context deadline exceeded (timeout {timeout:?})"
            ))),
        }
    }

    async fn fetch_inner(&self, url: &str, timeout: Duration) -> Result<ScrapeBody, ScrapeError> {
        let mut req = self
            .client
            .get(url)
            .header(http::header::ACCEPT, &self.accept)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            );
        if !self.compression {
            req = req.header(http::header::ACCEPT_ENCODING, "identity");
        }
        match &self.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                let user = username.get().await?;
                let pass = match password {
                    Some(p) => Some(p.get().await?),
                    None => None,
                };
                req = req.basic_auth(user, pass);
            }
            Auth::Header {
                scheme,
                credentials,
            } => {
                req = req.header(
                    http::header::AUTHORIZATION,
                    format!("{scheme} {}", credentials.get().await?),
                );
            }
        }
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.get().await?);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| ScrapeError::Http(format!("Get {url:?}: {}", error_chain(&e))))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(ScrapeError::Http(format!(
                "server returned HTTP status {status}"
            )));
        }
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes =
            Vec::with_capacity(resp.content_length().unwrap_or(0).min(16 << 20) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            ScrapeError::Http(format!("reading body of {url:?}: {}", error_chain(&e)))
        })? {
            bytes.extend_from_slice(&chunk);
            if self.body_size_limit > 0 && bytes.len() as u64 > self.body_size_limit {
                return Err(ScrapeError::BodySizeLimit(self.body_size_limit));
            }
        }
        Ok(ScrapeBody {
            bytes,
            content_type,
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_from_protocols() {
        assert_eq!(accept_header(None), SCRAPE_ACCEPT_HEADER);
        let h = accept_header(Some(&vec![
            "PrometheusText0.0.4".into(),
            "OpenMetricsText1.0.0".into(),
        ]));
        assert_eq!(
            h,
            "text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.2,*/*;q=0.1"
        );
    }
}
