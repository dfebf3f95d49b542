//! One cloud's session: its HTTP client (with the entry's TLS settings), its
//! cached Keystone token and its Cinder's maximum microversion.
//!
//! Concurrent callers needing a token share one Keystone call: the token slot
//! is an async mutex held while the token is fetched, so the others wait for
//! that token instead of asking for their own (single flight). A failed
//! token request is remembered too: until its backoff (doubling, capped)
//! has passed, every caller gets the same error at once and Keystone is not
//! asked again, so wrong credentials never turn each request into a Keystone
//! call (a `password` entry could be locked out).

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Instant};

use secrecy::ExposeSecret;
use tokio::sync::{Mutex, OnceCell};

use super::{
    UpstreamSettings,
    clouds::Cloud,
    error::{Error, Service},
    health::HealthRecord,
    http::{read_body, request_id_of, transport_error},
    keystone::{Token, issue_token},
    microversion::Microversion,
};

/// The cached token, or the last failure to get one.
#[derive(Default)]
struct TokenSlot {
    token: Option<Arc<Token>>,
    failure: Option<TokenFailure>,
    /// The last token was dropped after Cinder refused it: the next one
    /// renews it (a refresh, not a miss of an empty cache).
    dropped: bool,
}

/// A token request that failed, remembered until `until`.
struct TokenFailure {
    error: Error,
    until: Instant,
    /// Failures in a row: the backoff doubles with each.
    streak: u32,
}

/// A cloud entry with its client, token cache and version.
pub struct Session {
    /// The clouds.yaml entry.
    pub cloud: Cloud,
    /// HTTP client honouring the entry's `verify` and `cacert`, shared
    /// with the other entries of the same TLS settings.
    pub http: reqwest::Client,
    settings: Arc<UpstreamSettings>,
    token: Mutex<TokenSlot>,
    /// The project of the first token: jobs are keyed by it, so reading
    /// them needs no Keystone call once it is known, and a later token for
    /// another project is refused.
    project_id: std::sync::OnceLock<String>,
    max_version: OnceCell<Microversion>,
    /// What Keystone and Cinder last answered (readiness shows it).
    pub(super) health: HealthRecord,
}

/// The HTTP clients of the sessions, one per distinct TLS setting: clouds
/// with the same `verify` and `cacert` share one client, its connection
/// pools and its root store. Building a client reads the system's CA store,
/// which costs milliseconds; a client per cloud made start-up with 100
/// tenants take half a second.
pub struct HttpClients {
    settings: Arc<UpstreamSettings>,
    clients: HashMap<(bool, Option<PathBuf>), reqwest::Client>,
}

impl HttpClients {
    /// No client yet; each is built on first use.
    pub fn new(settings: Arc<UpstreamSettings>) -> Self {
        HttpClients {
            settings,
            clients: HashMap::new(),
        }
    }

    /// How many distinct clients were built.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients.len()
    }

    /// The client honouring `cloud`'s `verify` and `cacert`; fails on an
    /// unreadable `cacert`.
    pub fn for_cloud(&mut self, cloud: &Cloud) -> anyhow::Result<reqwest::Client> {
        let key = (cloud.verify, cloud.cacert.clone());
        if let Some(client) = self.clients.get(&key) {
            return Ok(client.clone());
        }
        let settings = &self.settings;
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("backup-gateway/", env!("CARGO_PKG_VERSION")));
        if !cloud.verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &cloud.cacert {
            let unreadable = |e: &dyn std::fmt::Display| {
                anyhow::anyhow!(
                    "clouds.yaml entry `{}`: cacert {}: {e}",
                    cloud.name,
                    path.display()
                )
            };
            let pem = std::fs::read(path).map_err(|e| unreadable(&e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| unreadable(&e))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build()?;
        self.clients.insert(key, client.clone());
        Ok(client)
    }
}

impl Session {
    /// A session of `cloud` over `http` (see [`HttpClients::for_cloud`]).
    pub fn new(cloud: Cloud, http: reqwest::Client, settings: Arc<UpstreamSettings>) -> Self {
        Session {
            cloud,
            http,
            settings,
            token: Mutex::new(TokenSlot::default()),
            project_id: std::sync::OnceLock::new(),
            max_version: OnceCell::new(),
            health: HealthRecord::default(),
        }
    }

    /// A valid token: the cached one, or a new one from Keystone; while a
    /// failed request's backoff lasts, its error.
    pub async fn token(&self) -> Result<Arc<Token>, Error> {
        let mut slot = self.token.lock().await;
        let now = Instant::now();
        let metrics = crate::metrics::metrics();
        if let Some(token) = slot.token.as_ref()
            && !token.needs_renewal(now)
        {
            metrics.token_event(&self.cloud.name, "hit");
            return Ok(token.clone());
        }
        if let Some(failure) = &slot.failure
            && now < failure.until
        {
            metrics.token_event(&self.cloud.name, "backoff");
            return Err(failure.error.clone());
        }
        let outcome = if slot.token.is_some() || slot.dropped {
            "refresh"
        } else {
            "miss"
        };
        metrics.token_event(&self.cloud.name, outcome);
        let issued = self.issue().await;
        match &issued {
            Ok(_) => self.health.success(Service::Keystone),
            Err(error) => self.health.failure(Service::Keystone, error),
        }
        match issued {
            Ok(token) => {
                slot.failure = None;
                slot.dropped = false;
                slot.token = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                metrics.token_event(&self.cloud.name, "failure");
                let streak = slot.failure.as_ref().map_or(1, |f| f.streak + 1);
                let wait = self.settings.auth_backoff.delay(streak);
                tracing::warn!(cloud = %self.cloud.name, %error, streak, retry_in = ?wait, "token request failed; Keystone is not asked again for this cloud until the backoff passes");
                // The next success still renews the token this one was to.
                slot.dropped |= slot.token.is_some();
                slot.token = None;
                slot.failure = Some(TokenFailure {
                    error: error.clone(),
                    until: Instant::now() + wait,
                    streak,
                });
                Err(error)
            }
        }
    }

    /// Asks Keystone for a token and checks it acts for the known project.
    async fn issue(&self) -> Result<Arc<Token>, Error> {
        let token = Arc::new(
            issue_token(
                &self.http,
                &self.cloud,
                &self.settings.interface,
                self.settings.region.as_deref(),
                self.settings.timeout,
            )
            .await?,
        );
        tracing::info!(cloud = %self.cloud.name, project_id = %token.project_id, "issued Keystone token");
        let known = self.project_id.get_or_init(|| token.project_id.clone());
        if *known != token.project_id {
            return Err(Error::Unexpected {
                service: Service::Keystone,
                status: None,
                message: format!(
                    "the credentials of cloud `{}` now act for project {}, not {known}; restart the gateway after moving a tenant to another project",
                    self.cloud.name, token.project_id
                ),
                request_id: None,
            });
        }
        Ok(token)
    }

    /// The Keystone project the cloud entry acts for: known after the first
    /// token, asked for with one before.
    pub async fn project_id(&self) -> Result<String, Error> {
        match self.project_id.get() {
            Some(id) => Ok(id.clone()),
            None => Ok(self.token().await?.project_id.clone()),
        }
    }

    /// Forgets `token` after Cinder refused it, unless another request has
    /// already replaced it.
    pub async fn drop_token(&self, token: &Arc<Token>) {
        let mut slot = self.token.lock().await;
        if slot.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            slot.token = None;
            slot.dropped = true;
        }
    }

    /// Cinder's maximum microversion, asked once (version discovery on the
    /// endpoint's version root, `.../v3/`).
    pub async fn max_version(&self) -> Result<Microversion, Error> {
        self.max_version
            .get_or_try_init(|| async {
                let mut retried = false;
                let (root, response) = loop {
                    let token = self.token().await?;
                    let root = version_root(&token.cinder_url);
                    let started = Instant::now();
                    let sent = self
                        .http
                        .get(&root)
                        .header("Accept", "application/json")
                        .header("X-Auth-Token", token.value.expose_secret())
                        .send()
                        .await;
                    crate::metrics::metrics().upstream_sent("cinder", "version_discovery", &sent, started);
                    let response = sent
                        .map_err(|e| transport_error(Service::Cinder, &e, self.settings.timeout))?;
                    if response.status().as_u16() == 401 && !retried {
                        // As for every Cinder call: the token was revoked or
                        // expired early; renew it once.
                        tracing::info!(cloud = %self.cloud.name, "Cinder refused the token; renewing it");
                        self.drop_token(&token).await;
                        retried = true;
                        continue;
                    }
                    break (root, response);
                };
                let status = response.status().as_u16();
                let request_id = request_id_of(&response);
                let unexpected = |message: String| Error::Unexpected {
                    service: Service::Cinder,
                    status: Some(status),
                    message,
                    request_id: request_id.clone(),
                };
                if status >= 500 {
                    return Err(Error::Unavailable {
                        service: Service::Cinder,
                        finished: false,
                        message: format!("version discovery answered {status}"),
                        status: Some(status),
                        request_id,
                    });
                }
                // `.../v3/` answers 200, the bare root 300: both carry the list.
                if !(200..=300).contains(&status) {
                    tracing::warn!(cloud = %self.cloud.name, url = %root, status, "version discovery answered unexpectedly");
                    return Err(unexpected(format!("version discovery answered {status}")));
                }
                let body = read_body(Service::Cinder, response, self.settings.timeout).await?;
                let body: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| unexpected(format!("version discovery body: {e}")))?;
                let max = body["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v["id"].as_str().is_some_and(|id| id.starts_with("v3")))
                    .filter_map(|v| v["version"].as_str())
                    .filter_map(|v| v.parse::<Microversion>().ok())
                    .max()
                    // A v3 API without a `version` offers no microversions.
                    .unwrap_or(Microversion::BASE);
                tracing::info!(cloud = %self.cloud.name, max_microversion = %max, "discovered Cinder version");
                Ok(max)
            })
            .await
            .copied()
    }
}

/// `http://host:8776/v3/<project_id>` -> `http://host:8776/v3/`.
fn version_root(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((head, last)) if !last.starts_with('v') => format!("{head}/"),
        _ => format!("{trimmed}/"),
    }
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, sync::Arc, time::Duration};

    use super::HttpClients;
    use crate::openstack::{
        Backoff, UpstreamSettings,
        clouds::{Cloud, Credential},
    };

    fn cloud(name: &str, verify: bool, cacert: Option<PathBuf>) -> Cloud {
        Cloud {
            name: name.to_owned(),
            auth_url: "http://keystone.example/v3".to_owned(),
            credential: Credential::ApplicationCredentialId {
                id: "id".to_owned(),
                secret: "secret".into(),
            },
            region: None,
            interface: None,
            verify,
            cacert,
        }
    }

    #[test]
    fn clouds_with_the_same_tls_settings_share_one_client() {
        let mut clients = HttpClients::new(Arc::new(UpstreamSettings {
            interface: "public".to_owned(),
            region: None,
            timeout: Duration::from_secs(5),
            page_size: 1000,
            auth_backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }));
        for i in 0..100 {
            clients
                .for_cloud(&cloud(&format!("t{i}"), true, None))
                .unwrap();
        }
        assert_eq!(clients.len(), 1);
        clients.for_cloud(&cloud("lab", false, None)).unwrap();
        assert_eq!(clients.len(), 2, "verify: false gets a client of its own");
        let missing = PathBuf::from("/nonexistent/ca.pem");
        let error = clients
            .for_cloud(&cloud("private", true, Some(missing)))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("clouds.yaml entry `private`: cacert /nonexistent/ca.pem"),
            "{error}"
        );
        assert_eq!(clients.len(), 2, "a failed client is not kept");
    }

    #[test]
    fn version_root_strips_the_project() {
        assert_eq!(
            super::version_root("http://h:8776/v3/abc"),
            "http://h:8776/v3/"
        );
        assert_eq!(
            super::version_root("http://h:8776/v3/"),
            "http://h:8776/v3/"
        );
    }
}
