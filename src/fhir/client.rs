//! A FHIR R4 REST client (source and sink): retries with exponential backoff and full jitter on
//! connection errors, 429 and 5xx (a `Retry-After` wins), `next`-link paging, capabilities from
//! `/metadata`, and errors that quote the server's OperationOutcome. Secrets are never printed.
//!
//! Credentials go only to the base URL's origin (and origins the operator allows), never over
//! plain http off the machine; URLs in errors and logs carry no query string (a search names
//! patients there); paging, retries and waits are capped so a hostile server cannot hold a run.

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
    /// A secret from its text.
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
    /// The secret's text, for the one place that sends it.
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
    /// No authentication.
    #[default]
    None,
    /// A fixed bearer token.
    Bearer(Secret),
    /// OAuth2 client credentials, with a client secret or (SMART Backend Services) a JWT signed
    /// with the client's private key.
    ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// The client's id there.
        client_id: String,
        /// How the client proves itself.
        credential: Credential,
        /// The scopes asked for, if any.
        scope: Option<String>,
    },
}

/// How a client proves who it is to the token endpoint.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A client secret.
    Secret(Secret),
    /// `private_key_jwt` (RFC 7523, SMART Backend Services): a PEM private key (RSA or EC),
    /// signed with RS384 or ES384, and the key id the server knows it by.
    PrivateKeyJwt {
        /// The private key (PEM).
        key_pem: Secret,
        /// RS384 or ES384.
        algorithm: jsonwebtoken::Algorithm,
        /// The key id the server knows the key by.
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
pub(crate) fn pkcs12_to_pem(data: &[u8], password: &Secret) -> Result<Vec<u8>, ClientError> {
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
    /// The client certificate and key (PEM).
    pub identity_pem: Option<std::path::PathBuf>,
    /// A PKCS#12 client certificate instead of PEM, with its password.
    pub identity_p12: Option<(std::path::PathBuf, Secret)>,
    /// A private CA to trust (PEM).
    pub ca_pem: Option<std::path::PathBuf>,
}

/// How to reach one FHIR endpoint: base URL, authentication, TLS, limits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) base: String,
    /// Longest silence while reading an answer (not a cap on the whole download).
    pub(crate) timeout: Duration,
    /// Origins (`https://files.example:443`) other than the base's that may receive the
    /// credentials, such as a Bulk Data file server.
    pub auth_origins: Vec<String>,
    /// Most pages one search follows.
    pub(crate) max_pages: usize,
    /// Most time one request may spend waiting between its retries, Retry-After included.
    pub max_retry_wait: Duration,
    pub(crate) max_retries: usize,
    /// How to authenticate.
    pub auth: Auth,
    /// Mutual TLS and trust.
    pub tls: Tls,
    /// Sent as `X-Tenant-ID` (test isolation on servers that support it).
    pub tenant: Option<String>,
    /// `Prefer: handling=strict`: a misspelt search parameter is an error, not ignored.
    pub(crate) strict_search: bool,
    /// First backoff delay (doubles each retry, with full jitter).
    pub(crate) min_delay: Duration,
}

impl ClientConfig {
    /// A configuration for `base` with the defaults (no auth, the usual limits).
    pub fn new(base: &str) -> Self {
        ClientConfig {
            base: base.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(30),
            auth_origins: Vec::new(),
            max_pages: 100_000,
            max_retry_wait: Duration::from_secs(120),
            max_retries: 8,
            auth: Auth::None,
            tls: Tls::default(),
            tenant: None,
            strict_search: true,
            min_delay: Duration::from_millis(200),
        }
    }
}

#[allow(missing_docs)] // each variant's #[error] text says what it is
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
    /// The server asked for something the product will not do (a link to another origin, a
    /// repeated page, more pages than the cap).
    #[error("{url}: {message}")]
    Refused { url: String, message: String },
}

/// A URL as it may be shown: without its query string (searches name patients there), and
/// without user info.
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let had_query = u.query().is_some();
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => match url.split_once('?') {
            Some((head, _)) => format!("{head}?…"),
            None => url.to_owned(),
        },
    }
}

/// The origin of a URL as `scheme://host:port`.
pub(crate) fn origin(url: &reqwest::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    })
}

/// At most `n` bytes of a text, cut at a character boundary.
pub(crate) fn truncate_chars(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What the server says it can do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Capabilities {
    pub(crate) transaction: bool,
    pub(crate) batch: bool,
    pub(crate) conditional_update: bool,
    pub(crate) versioned_update: bool,
    pub(crate) software: Option<String>,
}

/// A successful answer.
pub struct Response {
    /// The HTTP status (200, 201 …).
    pub(crate) status: u16,
    pub(crate) etag: Option<String>,
    /// The `Location` header: where a create put the resource (`Type/id/_history/n`).
    pub(crate) location: Option<String>,
    pub(crate) body: Value,
}

impl Response {
    /// The version the answer names: the ETag (`W/"3"`), else `meta.versionId` of the body,
    /// else the `_history` part of the Location.
    pub(crate) fn version(&self) -> Option<String> {
        self.etag
            .as_deref()
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_owned())
            .or_else(|| self.body["meta"]["versionId"].as_str().map(str::to_owned))
            .or_else(|| {
                let l = self.location.as_deref()?;
                let (_, v) = l.split_once("/_history/")?;
                Some(v.trim_end_matches('/').to_owned())
            })
    }

    /// The id a create was given, from the Location (`…/Type/id/_history/n`) or the body.
    pub(crate) fn created_id(&self) -> Option<String> {
        if let Some(l) = self.location.as_deref() {
            let path = l.split("/_history/").next().unwrap_or(l);
            if let Some(id) = path.trim_end_matches('/').rsplit('/').next() {
                if !id.is_empty() {
                    return Some(id.to_owned());
                }
            }
        }
        self.body["id"].as_str().map(str::to_owned)
    }
}

/// A FHIR R4 REST client: retries, throttling, paging, credentials bound to their origin.
/// Its clones are one client (the connections, the token and the counters are shared), so a
/// request can run as a task of its own.
#[derive(Clone)]
pub struct FhirClient(std::sync::Arc<ClientShared>);

impl std::ops::Deref for FhirClient {
    type Target = ClientShared;
    fn deref(&self) -> &ClientShared {
        &self.0
    }
}

/// What a client's clones share.
pub struct ClientShared {
    http: reqwest::Client,
    cfg: ClientConfig,
    token: Mutex<Option<(String, Instant)>>,
    /// Requests that may change data (anything but GET), counted for the run summary.
    pub(crate) writes: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    /// 429 answers met (each waited out).
    pub(crate) throttled: AtomicU64,
    /// Each request's wall time in seconds, for a latency histogram (the first million).
    latencies: Mutex<Vec<f32>>,
}

/// The OperationOutcome's issue texts, or the start of the body, with any identity number a
/// server echoed masked (this text reaches the terminal, the logs and the state file).
fn outcome_message(body: &[u8]) -> String {
    crate::sources::register::mask_identity_numbers(&outcome_text(body))
}

fn outcome_text(body: &[u8]) -> String {
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

/// A token's lifetime from `expires_in`, less a margin, capped at a day (a hostile or broken
/// answer must not overflow the clock).
fn token_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(300).min(86_400).saturating_sub(30))
}

/// A successful answer: its JSON body (none is `Null`), ETag and Location.
fn success(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    bytes: &[u8],
    url: &str,
) -> Result<Response, ClientError> {
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Json {
            url: url.to_owned(),
            message: e.to_string(),
        })?
    };
    let h = |n: reqwest::header::HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(Response {
        status,
        etag: h(reqwest::header::ETAG),
        location: h(reqwest::header::LOCATION).or_else(|| h(reqwest::header::CONTENT_LOCATION)),
        body,
    })
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
    fn latency(&self, since: Instant) {
        let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() < 1_000_000 {
            l.push(since.elapsed().as_secs_f32());
        }
    }

    /// The requests' wall times so far (seconds), emptied: a run's latency histogram.
    pub fn take_latencies(&self) -> Vec<f32> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// 429 answers met so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// A client for one endpoint.
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let base = reqwest::Url::parse(&cfg.base)
            .map_err(|e| ClientError::Config(format!("the EHR URL {}: {e}", cfg.base)))?;
        let has_auth = !matches!(cfg.auth, Auth::None);
        if has_auth && base.scheme() != "https" && !is_loopback(&base) {
            return Err(ClientError::Config(format!(
                "credentials are never sent over plain http to another machine: use https for {}",
                display_url(&cfg.base)
            )));
        }
        if let Auth::ClientCredentials { token_url, .. } = &cfg.auth {
            let t = reqwest::Url::parse(token_url)
                .map_err(|e| ClientError::Config(format!("the token URL: {e}")))?;
            if t.scheme() != "https" && !is_loopback(&t) {
                return Err(ClientError::Config(
                    "the token URL must be https (unless on this machine)".into(),
                ));
            }
        }
        for o in &cfg.auth_origins {
            let u = reqwest::Url::parse(o)
                .map_err(|e| ClientError::Config(format!("allowed origin {o}: {e}")))?;
            if u.scheme() != "https" && !is_loopback(&u) {
                return Err(ClientError::Config(format!(
                    "allowed origin {o}: credentials go over https only"
                )));
            }
        }
        // A read timeout, not a total one: a large download that keeps arriving is fine.
        let mut b = reqwest::Client::builder()
            .read_timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(10))
            // Redirects are not followed: one to another host would carry the credentials.
            .redirect(reqwest::redirect::Policy::none())
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
        Ok(FhirClient(std::sync::Arc::new(ClientShared {
            http,
            cfg,
            token: Mutex::new(None),
            writes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
        })))
    }

    pub(crate) fn base(&self) -> &str {
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
                let until = Instant::now() + token_lifetime(v["expires_in"].as_u64());
                *self
                    .token
                    .lock()
                    .map_err(|_| ClientError::Config("token lock".into()))? =
                    Some((token.clone(), until));
                Ok(Some(token))
            }
        }
    }

    /// `path` is relative to the base (`CareTeam?_tag=…`) or an absolute URL (a `next` link).
    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.cfg.base, path.trim_start_matches('/'))
        }
    }

    /// Whether a URL is on the base URL's own origin.
    pub(crate) fn same_origin(&self, url: &str) -> bool {
        match (
            reqwest::Url::parse(&self.cfg.base),
            reqwest::Url::parse(url),
        ) {
            (Ok(b), Ok(u)) => origin(&b) == origin(&u),
            _ => false,
        }
    }

    /// Whether the credentials may go to this URL: the base's origin, or one the operator
    /// allowed.
    pub(crate) fn may_authenticate(&self, url: &str) -> bool {
        if self.same_origin(url) {
            return true;
        }
        let Ok(u) = reqwest::Url::parse(url) else {
            return false;
        };
        let o = origin(&u);
        self.cfg.auth_origins.iter().any(|a| {
            reqwest::Url::parse(a)
                .map(|a| origin(&a) == o)
                .unwrap_or(false)
        })
    }

    /// The bearer token for a request to `url`, if the credentials may go there.
    async fn bearer_for(&self, url: &str) -> Result<Option<String>, ClientError> {
        if !self.may_authenticate(url) {
            if !matches!(self.cfg.auth, Auth::None) {
                tracing::warn!(url = %display_url(url), "another origin: sent without credentials");
            }
            return Ok(None);
        }
        self.bearer().await
    }

    /// Sends with retries. 4xx other than 429 is final (returned as an error with the outcome).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Response, ClientError> {
        let headers: Vec<(&str, String)> = if_match
            .map(|v| ("If-Match", v.to_owned()))
            .into_iter()
            .collect();
        self.send_with(method, path, body, &headers).await
    }

    /// Sends with retries and the given headers (`Prefer`, `If-None-Exist`, `If-Match` …).
    pub(crate) async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Response, ClientError> {
        let payload = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Json {
                url: display_url(&self.url(path)),
                message: e.to_string(),
            })?
            .map(|p| ("application/fhir+json", p));
        self.send_raw(method, path, payload, headers).await
    }

    /// A search by POST to `[type]/_search` with the parameters in a form body, so that the
    /// values (identity numbers) appear in no URL, access log or error message.
    pub async fn search_post(
        &self,
        resource_type: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, ClientError> {
        let mut form =
            reqwest::Url::parse("http://x/").map_err(|e| ClientError::Config(e.to_string()))?;
        form.query_pairs_mut().extend_pairs(params);
        let body = form.query().unwrap_or("").as_bytes().to_vec();
        let first = self
            .send_raw(
                Method::POST,
                &format!("{resource_type}/_search"),
                Some(("application/x-www-form-urlencoded", body)),
                &[],
            )
            .await?
            .body;
        let mut out = Vec::new();
        self.follow_pages(first, &mut |page| out.extend(page))
            .await?;
        Ok(out)
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        payload: Option<(&'static str, Vec<u8>)>,
        headers: &[(&str, String)],
    ) -> Result<Response, ClientError> {
        let full = self.url(path);
        // What errors and logs show: never the query string.
        let url = display_url(&full);
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.cfg.min_delay)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.cfg.max_retries)
            .with_jitter()
            .build();
        let mut attempts = 0;
        let mut waited = Duration::ZERO;
        loop {
            attempts += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let searching = method == Method::GET || full.ends_with("/_search");
            if !searching {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            let mut req = self
                .http
                .request(method.clone(), &full)
                .header("Accept", "application/fhir+json");
            if let Some((content_type, p)) = &payload {
                req = req.header("Content-Type", *content_type).body(p.clone());
            }
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(t) = &self.cfg.tenant {
                req = req.header("X-Tenant-ID", t);
            }
            if self.cfg.strict_search && searching {
                req = req.header("Prefer", "handling=strict");
            }
            if let Some(token) = self.bearer_for(&full).await? {
                req = req.bearer_auth(token);
            }
            let sent = Instant::now();
            let answer = req.send().await;
            self.latency(sent);
            let wait = match answer {
                Ok(resp) => {
                    let status = resp.status();
                    // Where a run's time goes, request by request (the URL without its query).
                    tracing::debug!(%method, %url, status = status.as_u16(), ms = sent.elapsed().as_millis() as u64, bytes_out = payload.as_ref().map_or(0, |p| p.1.len()), "answered");
                    let headers = resp.headers().clone();
                    let bytes = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            let e = e.without_url();
                            tracing::debug!(%url, error = %e, "body read failed");
                            match delays.next() {
                                Some(d) if waited + d <= self.cfg.max_retry_wait => {
                                    waited += d;
                                    self.retries.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(d).await;
                                    continue;
                                }
                                _ => {
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
                        return success(status.as_u16(), &headers, &bytes, &url);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
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
                            message: e.without_url().to_string(),
                            attempts,
                        })
                    }
                },
            };
            if waited + wait > self.cfg.max_retry_wait {
                return Err(ClientError::Transport {
                    method: method.to_string(),
                    url,
                    message: format!(
                        "the server asked to wait {} s more after {} s of retries; the cap is {} s",
                        wait.as_secs(),
                        waited.as_secs(),
                        self.cfg.max_retry_wait.as_secs()
                    ),
                    attempts,
                });
            }
            if wait >= Duration::from_secs(5) {
                tracing::warn!(%url, seconds = wait.as_secs(), attempt = attempts, "the server is busy; waiting before the next try");
            }
            waited += wait;
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    pub(crate) async fn capabilities(&self) -> Result<Capabilities, ClientError> {
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
    pub(crate) async fn search_pages(
        &self,
        path: &str,
        on_page: &mut (dyn FnMut(Vec<Value>) + Send),
    ) -> Result<(), ClientError> {
        let first = self.send(Method::GET, path, None, None).await?.body;
        self.follow_pages(first, on_page).await
    }

    /// Hands each page's resources to `on_page` and follows `next` links: only on the base's
    /// own origin, never one seen before, at most `max_pages`.
    async fn follow_pages(
        &self,
        first: Value,
        on_page: &mut (dyn FnMut(Vec<Value>) + Send),
    ) -> Result<(), ClientError> {
        let mut page = first;
        let mut seen = std::collections::HashSet::new();
        let mut links = std::collections::HashSet::new();
        let mut pages = 1usize;
        loop {
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
            let Some(next) = page["link"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str())
                .map(str::to_owned)
            else {
                return Ok(());
            };
            let refused = |message: String| ClientError::Refused {
                url: display_url(&next),
                message,
            };
            let absolute = self.url(&next);
            if !self.same_origin(&absolute) {
                return Err(refused(format!(
                    "the server's next link leaves {}; paging stopped (the search is incomplete)",
                    display_url(&self.cfg.base)
                )));
            }
            if !links.insert(absolute.clone()) {
                return Err(refused(
                    "the server gave a next link it gave before; paging stopped (the search is incomplete)".into(),
                ));
            }
            pages += 1;
            if pages > self.cfg.max_pages {
                return Err(refused(format!(
                    "more than {} pages; paging stopped (the search is incomplete)",
                    self.cfg.max_pages
                )));
            }
            page = self.send(Method::GET, &absolute, None, None).await?.body;
        }
    }

    /// One GET with the client's auth and tenant, not retried, the response left unread (for
    /// Bulk Data: kick-off, status polling, and streaming NDJSON downloads).
    /// `auth`: whether the request may carry the credentials at all (a Bulk Data manifest
    /// saying `requiresAccessToken: false` means its files are fetched without them); even
    /// then they go only to an allowed origin.
    pub(crate) async fn get_raw(
        &self,
        path: &str,
        accept: &str,
        prefer_async: bool,
        auth: bool,
    ) -> Result<reqwest::Response, ClientError> {
        let full = self.url(path);
        let url = display_url(&full);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.get(&full).header("Accept", accept);
        if prefer_async {
            req = req.header("Prefer", "respond-async");
        }
        if let Some(t) = &self.cfg.tenant {
            req = req.header("X-Tenant-ID", t);
        }
        if auth {
            if let Some(token) = self.bearer_for(&full).await? {
                req = req.bearer_auth(token);
            }
        }
        req.send().await.map_err(|e| ClientError::Transport {
            method: "GET".into(),
            url,
            message: e.without_url().to_string(),
            attempts: 1,
        })
    }

    /// The system-level operations the server declares (`export` for Bulk Data).
    pub(crate) async fn operations(&self) -> Result<Vec<String>, ClientError> {
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

    /// Reads one resource; None when the server has no such resource (404, 410).
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
