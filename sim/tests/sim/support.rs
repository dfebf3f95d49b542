//! A started simulator with the demo tenants plus a reader-only credential
//! and an admin tenant, and helpers to call it.

use std::time::Duration;

use openstack_sim::{AppCredentialSeed, RunningSim, Seed, Sim, SimConfig, TenantSeed};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Project of the admin tenant added to the demo seed.
pub const ADMIN_PROJECT: &str = "0a0d0a0d0a0d4a0d8a0d0a0d0a0d0a0d";

/// One answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running simulator, the seed it started from and an HTTP client.
pub struct Harness {
    pub running: RunningSim,
    pub seed: Seed,
    pub client: reqwest::Client,
}

impl Harness {
    /// Starts a simulator whose backups stay `creating` until
    /// [`Sim::finish_pending`] (the duration is far longer than any test).
    pub async fn start() -> Harness {
        let mut seed = Seed::demo();
        let tenant_a = &mut seed.tenants[0];
        let owner = tenant_a.app_credentials[0].clone();
        tenant_a.app_credentials.push(AppCredentialSeed {
            id: "reader-appcred-a".to_owned(),
            name: "reader-a".to_owned(),
            secret: "reader-secret-a".to_owned(),
            roles: vec!["reader".to_owned()],
            ..owner
        });
        seed.tenants.push(TenantSeed {
            name: "admin".to_owned(),
            project_id: ADMIN_PROJECT.to_owned(),
            app_credentials: vec![AppCredentialSeed {
                id: "admin-appcred".to_owned(),
                name: "admin".to_owned(),
                secret: "admin-secret".to_owned(),
                user_id: "ad".repeat(16),
                user_name: "admin".to_owned(),
                roles: vec!["admin".to_owned(), "member".to_owned(), "reader".to_owned()],
            }],
            users: Vec::new(),
            volumes: Vec::new(),
            snapshots: Vec::new(),
            quotas: Default::default(),
        });
        let config = SimConfig {
            backup_duration: Duration::from_secs(24 * 3600),
            ..SimConfig::default()
        };
        let sim = Sim::new(config, seed.clone());
        let running = sim.start().await.expect("simulator starts");
        let client = reqwest::Client::builder()
            // A connection cut by a fault must never be reused.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Harness {
            running,
            seed,
            client,
        }
    }

    pub fn sim(&self) -> &Sim {
        &self.running.sim
    }

    /// Project id of demo tenant `index` (0 = tenant-a, 1 = tenant-b).
    pub fn project(&self, index: usize) -> String {
        self.seed.tenants[index].project_id.clone()
    }

    /// Id of snapshot `n` of demo tenant `index`.
    pub fn snapshot(&self, index: usize, n: usize) -> String {
        self.seed.tenants[index].snapshots[n].id.clone()
    }

    /// Volume id of snapshot `n` of demo tenant `index`.
    pub fn volume_of(&self, index: usize, n: usize) -> String {
        self.seed.tenants[index].snapshots[n].volume_id.clone()
    }

    /// Sends a request and reads the JSON answer.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        self.try_send(method, url, headers, body)
            .await
            .expect("an answer")
    }

    /// Like [`Harness::send`], returning the transport error.
    pub async fn try_send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self.client.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A call to the control endpoint, `{keystone root}/_sim{path}`.
    pub async fn control(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let root = self
            .running
            .keystone_url
            .strip_suffix("/v3")
            .expect("a /v3 auth_url");
        let body = body.map(Value::to_string);
        self.send(method, &format!("{root}/_sim{path}"), &[], body.as_deref())
            .await
    }

    /// `POST /v3/auth/tokens` with an application credential id and secret.
    pub async fn issue(&self, id: &str, secret: &str) -> Answer {
        let body = json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": id, "secret": secret},
        }}});
        self.send(
            Method::POST,
            &format!("{}/auth/tokens", self.running.keystone_url),
            &[],
            Some(&body.to_string()),
        )
        .await
    }

    /// A token for demo tenant `index`'s first credential.
    pub async fn token(&self, index: usize) -> String {
        let cred = &self.seed.tenants[index].app_credentials[0];
        self.token_for(&cred.id, &cred.secret).await
    }

    /// A token for a credential.
    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let answer = self.issue(id, secret).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer
            .header("x-subject-token")
            .expect("X-Subject-Token")
            .to_owned()
    }

    /// A Cinder call on `{cinder}/v3/{project}{path}` with a token and an
    /// optional microversion.
    pub async fn cinder(
        &self,
        method: Method,
        project: &str,
        path: &str,
        token: &str,
        version: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let url = format!("{}{path}", self.running.endpoint(project));
        let version = version.map(|v| format!("volume {v}"));
        let mut headers = vec![("x-auth-token", token)];
        if let Some(v) = &version {
            headers.push(("openstack-api-version", v.as_str()));
        }
        let body = body.map(Value::to_string);
        self.send(method, &url, &headers, body.as_deref()).await
    }

    /// Creates a backup of snapshot `n` of tenant `index` at `version`;
    /// returns the answer.
    pub async fn create_backup(
        &self,
        index: usize,
        n: usize,
        token: &str,
        version: Option<&str>,
        extra: Value,
    ) -> Answer {
        let mut backup = json!({
            "volume_id": self.volume_of(index, n),
            "snapshot_id": self.snapshot(index, n),
        });
        if let (Some(map), Some(extra)) = (backup.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        self.cinder(
            Method::POST,
            &self.project(index),
            "/backups",
            token,
            version,
            Some(&json!({ "backup": backup })),
        )
        .await
    }
}

/// Whether `text` is `req-` followed by a UUID.
pub fn is_request_id(text: &str) -> bool {
    text.strip_prefix("req-")
        .is_some_and(|rest| uuid::Uuid::parse_str(rest).is_ok() && rest.len() == 36)
}

/// The keys of a JSON object, sorted.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Sorted owned strings from literals.
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}
