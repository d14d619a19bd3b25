//! A FHIR R4 REST client (source and sink): retries with exponential backoff and full jitter on
//! connection errors, 429 and 5xx (a `Retry-After` wins), `next`-link paging, capabilities from
//! `/metadata`, and errors that quote the server's OperationOutcome. Secrets are never printed.

use backon::BackoffBuilder;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A secret read from a file or the environment; `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// `file:PATH`, `env:NAME`, or nothing else (inline secrets would end up in shell history).
    pub fn load(spec: &str) -> Result<Self, ClientError> {
        if let Some(path) = spec.strip_prefix("file:") {
            std::fs::read_to_string(path)
                .map(|s| Secret(s.trim().to_owned()))
                .map_err(|e| ClientError::Config(format!("reading secret file {path}: {e}")))
        } else if let Some(name) = spec.strip_prefix("env:") {
            std::env::var(name)
                .map(Secret)
                .map_err(|_| ClientError::Config(format!("environment variable {name} is not set")))
        } else {
            Err(ClientError::Config(
                "a secret is given as file:PATH or env:NAME".into(),
            ))
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to authenticate to one endpoint.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Bearer(Secret),
    /// OAuth2 client credentials, with a client secret or (SMART Backend Services) a JWT signed
    /// with the client's private key.
    ClientCredentials {
        token_url: String,
        client_id: String,
        credential: Credential,
        scope: Option<String>,
    },
}

/// How a client proves who it is to the token endpoint.
#[derive(Debug, Clone)]
pub enum Credential {
    Secret(Secret),
    /// `private_key_jwt` (RFC 7523, SMART Backend Services): a PEM private key (RSA or EC),
    /// signed with RS384 or ES384, and the key id the server knows it by.
    PrivateKeyJwt {
        key_pem: Secret,
        algorithm: jsonwebtoken::Algorithm,
        kid: Option<String>,
    },
}

/// The signed client assertion of `private_key_jwt`: iss = sub = client id, aud = token URL,
/// a 5-minute expiry and a unique jti.
pub fn client_assertion(
    client_id: &str,
    token_url: &str,
    key_pem: &Secret,
    algorithm: jsonwebtoken::Algorithm,
    kid: Option<&str>,
) -> Result<String, ClientError> {
    let key = match algorithm {
        jsonwebtoken::Algorithm::ES256 | jsonwebtoken::Algorithm::ES384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(key_pem.expose().as_bytes())
        }
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes()),
    }
    .map_err(|e| ClientError::Config(format!("the private key for private_key_jwt: {e}")))?;
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    header.typ = Some("JWT".into());
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": token_url,
        "exp": now + 300, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| ClientError::Config(format!("signing the client assertion: {e}")))
}

/// A PKCS#12 file (a SITHS export, say) as the PEM identity reqwest takes: the private key and
/// its certificate chain.
pub fn pkcs12_to_pem(data: &[u8], password: &Secret) -> Result<Vec<u8>, ClientError> {
    let ks = p12_keystore::KeyStore::from_pkcs12(
        data,
        password.expose(),
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| ClientError::Config(format!("reading the PKCS#12 file: {e}")))?;
    let (_, chain) = ks.private_key_chain().ok_or_else(|| {
        ClientError::Config("the PKCS#12 file holds no private key with a certificate".into())
    })?;
    let mut blocks = vec![pem::Pem::new("PRIVATE KEY", chain.key().as_der().to_vec())];
    blocks.extend(
        chain
            .certs()
            .iter()
            .map(|c| pem::Pem::new("CERTIFICATE", c.as_der().to_vec())),
    );
    Ok(pem::encode_many(&blocks).into_bytes())
}

/// Mutual TLS: client certificate and key (PEM), and a private CA (PEM) to trust.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub identity_pem: Option<std::path::PathBuf>,
    /// A PKCS#12 client certificate instead of PEM, with its password.
    pub identity_p12: Option<(std::path::PathBuf, Secret)>,
    pub ca_pem: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base: String,
    pub timeout: Duration,
    pub max_retries: usize,
    pub auth: Auth,
    pub tls: Tls,
    /// Sent as `X-Tenant-ID` (test isolation on servers that support it).
    pub tenant: Option<String>,
    /// `Prefer: handling=strict`: a misspelt search parameter is an error, not ignored.
    pub strict_search: bool,
    /// First backoff delay (doubles each retry, with full jitter).
    pub min_delay: Duration,
}

impl ClientConfig {
    pub fn new(base: &str) -> Self {
        ClientConfig {
            base: base.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(30),
            max_retries: 8,
            auth: Auth::None,
            tls: Tls::default(),
            tenant: None,
            strict_search: true,
            min_delay: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {url}: HTTP {status}: {message}")]
    Http {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{method} {url}: {message} (gave up after {attempts} attempts)")]
    Transport {
        method: String,
        url: String,
        message: String,
        attempts: usize,
    },
    #[error("{url}: the answer is not JSON: {message}")]
    Json { url: String, message: String },
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What the server says it can do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Capabilities {
    pub transaction: bool,
    pub batch: bool,
    pub conditional_update: bool,
    pub versioned_update: bool,
    pub software: Option<String>,
}

pub struct Response {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub body: Value,
}

pub struct FhirClient {
    http: reqwest::Client,
    cfg: ClientConfig,
    token: Mutex<Option<(String, Instant)>>,
    /// Requests that may change data (anything but GET), counted for the run summary.
    pub writes: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

/// The OperationOutcome's issue texts, or the start of the body.
fn outcome_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v["resourceType"] == "OperationOutcome" {
            let issues: Vec<String> = v["issue"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            let text = i["diagnostics"]
                                .as_str()
                                .or(i["details"]["text"].as_str())
                                .unwrap_or("");
                            let loc = i["expression"][0]
                                .as_str()
                                .map(|e| format!(" at {e}"))
                                .unwrap_or_default();
                            format!(
                                "{} {}{loc}: {text}",
                                i["severity"].as_str().unwrap_or("?"),
                                i["code"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return format!("OperationOutcome: {}", issues.join("; "));
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs.min(300)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = when
        .signed_duration_since(chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    Some(d.min(Duration::from_secs(300)))
}

impl FhirClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("fastkontakt/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &cfg.tls.identity_pem {
            let pem = std::fs::read(p)
                .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?,
            );
        }
        if let Some((p, password)) = &cfg.tls.identity_p12 {
            let data = std::fs::read(p)
                .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
            let pem = pkcs12_to_pem(&data, password)?;
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?,
            );
        }
        if let Some(p) = &cfg.tls.ca_pem {
            let pem = std::fs::read(p)
                .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
            b = b.tls_certs_merge([cert]);
        }
        let http = b.build().map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(FhirClient {
            http,
            cfg,
            token: Mutex::new(None),
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    pub fn base(&self) -> &str {
        &self.cfg.base
    }

    async fn bearer(&self) -> Result<Option<String>, ClientError> {
        match &self.cfg.auth {
            Auth::None => Ok(None),
            Auth::Bearer(s) => Ok(Some(s.expose().to_owned())),
            Auth::ClientCredentials {
                token_url,
                client_id,
                credential,
                scope,
            } => {
                if let Some((t, until)) = self
                    .token
                    .lock()
                    .map_err(|_| ClientError::Config("token lock".into()))?
                    .clone()
                {
                    if Instant::now() < until {
                        return Ok(Some(t));
                    }
                }
                let assertion;
                let mut form = vec![("grant_type", "client_credentials")];
                match credential {
                    Credential::Secret(secret) => {
                        form.push(("client_id", client_id.as_str()));
                        form.push(("client_secret", secret.expose()));
                    }
                    Credential::PrivateKeyJwt {
                        key_pem,
                        algorithm,
                        kid,
                    } => {
                        assertion = client_assertion(
                            client_id,
                            token_url,
                            key_pem,
                            *algorithm,
                            kid.as_deref(),
                        )?;
                        form.push((
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ));
                        form.push(("client_assertion", &assertion));
                    }
                }
                if let Some(s) = scope {
                    form.push(("scope", s));
                }
                let resp = self
                    .http
                    .post(token_url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| ClientError::Transport {
                        method: "POST".into(),
                        url: token_url.clone(),
                        message: e.to_string(),
                        attempts: 1,
                    })?;
                let status = resp.status();
                let body = resp.bytes().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(ClientError::Http {
                        method: "POST".into(),
                        url: token_url.clone(),
                        status: status.as_u16(),
                        message: "token request refused".into(),
                    });
                }
                let v: Value = serde_json::from_slice(&body).map_err(|e| ClientError::Json {
                    url: token_url.clone(),
                    message: e.to_string(),
                })?;
                let token = v["access_token"]
                    .as_str()
                    .ok_or_else(|| ClientError::Json {
                        url: token_url.clone(),
                        message: "no access_token".into(),
                    })?
                    .to_owned();
                let ttl = v["expires_in"].as_u64().unwrap_or(300).saturating_sub(30);
                *self
                    .token
                    .lock()
                    .map_err(|_| ClientError::Config("token lock".into()))? =
                    Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
                Ok(Some(token))
            }
        }
    }

    /// `path` is relative to the base (`CareTeam?_tag=…`) or an absolute URL (a `next` link).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.cfg.base, path.trim_start_matches('/'))
        }
    }

    /// Sends with retries. 4xx other than 429 is final (returned as an error with the outcome).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Response, ClientError> {
        let url = self.url(path);
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.cfg.min_delay)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.cfg.max_retries)
            .with_jitter()
            .build();
        let payload = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Json {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            if method != Method::GET {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("Accept", "application/fhir+json");
            if let Some(p) = &payload {
                req = req
                    .header("Content-Type", "application/fhir+json")
                    .body(p.clone());
            }
            if let Some(v) = if_match {
                req = req.header("If-Match", v);
            }
            if let Some(t) = &self.cfg.tenant {
                req = req.header("X-Tenant-ID", t);
            }
            if self.cfg.strict_search && method == Method::GET {
                req = req.header("Prefer", "handling=strict");
            }
            if let Some(token) = self.bearer().await? {
                req = req.bearer_auth(token);
            }
            let wait = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let bytes = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::debug!(%url, error = %e, "body read failed");
                            match delays.next() {
                                Some(d) => {
                                    self.retries.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(d).await;
                                    continue;
                                }
                                None => {
                                    return Err(ClientError::Transport {
                                        method: method.to_string(),
                                        url,
                                        message: e.to_string(),
                                        attempts,
                                    })
                                }
                            }
                        }
                    };
                    if status.is_success() {
                        let body = if bytes.is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_slice(&bytes).map_err(|e| ClientError::Json {
                                url: url.clone(),
                                message: e.to_string(),
                            })?
                        };
                        let h = |n: reqwest::header::HeaderName| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        return Ok(Response {
                            status,
                            etag: h(reqwest::header::ETAG),
                            location: h(reqwest::header::LOCATION),
                            body,
                        });
                    }
                    if !retryable(status) {
                        return Err(ClientError::Http {
                            method: method.to_string(),
                            url,
                            status: status.as_u16(),
                            message: outcome_message(&bytes),
                        });
                    }
                    match (retry_after(&headers), delays.next()) {
                        (_, None) => {
                            return Err(ClientError::Http {
                                method: method.to_string(),
                                url,
                                status: status.as_u16(),
                                message: format!(
                                    "still failing after {attempts} attempts: {}",
                                    outcome_message(&bytes)
                                ),
                            })
                        }
                        (Some(ra), Some(_)) => ra,
                        (None, Some(d)) => d,
                    }
                }
                Err(e) => match delays.next() {
                    Some(d) => {
                        tracing::debug!(%url, error = %e, "transport error, retrying");
                        d
                    }
                    None => {
                        return Err(ClientError::Transport {
                            method: method.to_string(),
                            url,
                            message: e.to_string(),
                            attempts,
                        })
                    }
                },
            };
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    pub async fn capabilities(&self) -> Result<Capabilities, ClientError> {
        let v = self.send(Method::GET, "metadata", None, None).await?.body;
        let rest = &v["rest"][0];
        let has = |name: &str| {
            rest["interaction"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["code"] == name))
        };
        let resources = rest["resource"].as_array().cloned().unwrap_or_default();
        let careteam = resources.iter().find(|r| r["type"] == "CareTeam");
        Ok(Capabilities {
            transaction: has("transaction"),
            batch: has("batch"),
            conditional_update: careteam.is_some_and(|r| r["conditionalUpdate"] == true),
            versioned_update: careteam.is_some_and(|r| r["versioning"] == "versioned-update"),
            software: v["software"]["name"]
                .as_str()
                .map(|n| format!("{n} {}", v["software"]["version"].as_str().unwrap_or(""))),
        })
    }

    /// Every resource of a search, following `next` links.
    pub async fn search_all(&self, path: &str) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        self.search_pages(path, &mut |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// A search page by page (only one page is held at a time), following `next` links.
    pub async fn search_pages(
        &self,
        path: &str,
        on_page: &mut (dyn FnMut(Vec<Value>) + Send),
    ) -> Result<(), ClientError> {
        let mut next = Some(path.to_owned());
        let mut seen = std::collections::HashSet::new();
        while let Some(p) = next.take() {
            let mut page = self.send(Method::GET, &p, None, None).await?.body;
            let mut resources = Vec::new();
            if let Some(entries) = page["entry"].as_array_mut() {
                for e in entries.iter_mut() {
                    if e["search"]["mode"] == "include" {
                        continue;
                    }
                    if let Some(r) = e.get_mut("resource").map(Value::take) {
                        // Guard against a page boundary repeating a resource.
                        let key = format!(
                            "{}/{}",
                            r["resourceType"].as_str().unwrap_or(""),
                            r["id"].as_str().unwrap_or("")
                        );
                        if seen.insert(key) {
                            resources.push(r);
                        }
                    }
                }
            }
            on_page(resources);
            next = page["link"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str())
                .map(str::to_owned);
        }
        Ok(())
    }

    /// One GET with the client's auth and tenant, not retried, the response left unread (for
    /// Bulk Data: kick-off, status polling, and streaming NDJSON downloads).
    pub async fn get_raw(
        &self,
        path: &str,
        accept: &str,
        prefer_async: bool,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.get(&url).header("Accept", accept);
        if prefer_async {
            req = req.header("Prefer", "respond-async");
        }
        if let Some(t) = &self.cfg.tenant {
            req = req.header("X-Tenant-ID", t);
        }
        if let Some(token) = self.bearer().await? {
            req = req.bearer_auth(token);
        }
        req.send().await.map_err(|e| ClientError::Transport {
            method: "GET".into(),
            url,
            message: e.to_string(),
            attempts: 1,
        })
    }

    /// The system-level operations the server declares (`export` for Bulk Data).
    pub async fn operations(&self) -> Result<Vec<String>, ClientError> {
        let v = self.send(Method::GET, "metadata", None, None).await?.body;
        Ok(v["rest"][0]["operation"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                o["name"]
                    .as_str()
                    .map(|n| n.trim_start_matches('$').to_owned())
            })
            .collect())
    }

    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Value>, ClientError> {
        match self
            .send(Method::GET, &format!("{resource_type}/{id}"), None, None)
            .await
        {
            Ok(r) => Ok(Some(r.body)),
            Err(ClientError::Http {
                status: 404 | 410, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
