//! The simulated cloud's side: the seed the driver writes (tenants, their
//! volumes and snapshots), the direct Keystone + Cinder calls the gateway's
//! create is compared with, and the simulator's control endpoint (call
//! counters, run-time settings).

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Snapshots and their tenants, as seeded.
pub struct Cloud {
    pub tenants: Vec<Tenant>,
}

/// One seeded tenant: its name (also its clouds.yaml entry and the tenant
/// claim), project, application credential and snapshots.
pub struct Tenant {
    pub name: String,
    pub project_id: String,
    pub credential_id: String,
    pub credential_secret: String,
    /// `(snapshot id, volume id)`, in seed order.
    pub snapshots: Vec<(String, String)>,
}

impl Cloud {
    /// `tenants` tenants of `snapshots` snapshots each (ten volumes each),
    /// with no backup quota, written to `path` as the simulator's seed.
    pub fn seed(path: &Path, tenants: usize, snapshots: usize) -> anyhow::Result<Cloud> {
        let mut cloud = Cloud {
            tenants: Vec::new(),
        };
        let mut seed_tenants = Vec::new();
        for t in 0..tenants {
            let name = format!("t{t:03}");
            let project_id = format!("{:032x}", 0xb0_0000 + t);
            let user_id = format!("{:032x}", 0xd0_0000 + t);
            let volumes: Vec<String> = (0..10)
                .map(|v| format!("7e{t:06x}-0000-4000-8000-{v:012x}"))
                .collect();
            let pairs: Vec<(String, String)> = (0..snapshots)
                .map(|s| {
                    (
                        format!("5a{t:06x}-0000-4000-8000-{s:012x}"),
                        volumes[s % volumes.len()].clone(),
                    )
                })
                .collect();
            let tenant = Tenant {
                name: name.clone(),
                project_id: project_id.clone(),
                credential_id: format!("{name}-appcred"),
                credential_secret: format!("{name}-secret"),
                snapshots: pairs,
            };
            seed_tenants.push(json!({
                "name": name,
                "project_id": project_id,
                "app_credentials": [{
                    "id": tenant.credential_id,
                    "name": "backup-gateway",
                    "secret": tenant.credential_secret,
                    "user_id": user_id,
                    "user_name": format!("{name}-user"),
                    "roles": ["member", "reader"],
                }],
                "volumes": volumes.iter().map(|id| json!({
                    "id": id, "name": format!("vol-{id}"), "size": 1, "status": "available",
                })).collect::<Vec<_>>(),
                "snapshots": tenant.snapshots.iter().map(|(id, volume)| json!({
                    "id": id, "name": format!("snap-{id}"), "volume_id": volume,
                    "status": "available",
                })).collect::<Vec<_>>(),
                "quotas": {"backups": -1, "backup_gigabytes": -1},
            }));
            cloud.tenants.push(tenant);
        }
        std::fs::write(path, json!({ "tenants": seed_tenants }).to_string())?;
        Ok(cloud)
    }

    /// Tenant names, in order.
    pub fn names(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.name.clone()).collect()
    }
}

/// Takes snapshots out of a tenant's list so that no two creates use the
/// same one (a snapshot with a backup under way is busy).
pub struct SnapshotPool {
    next: Vec<usize>,
}

impl SnapshotPool {
    pub fn new(cloud: &Cloud) -> SnapshotPool {
        SnapshotPool {
            next: vec![0; cloud.tenants.len()],
        }
    }

    /// The next unused snapshot of tenant `t`.
    pub fn take<'c>(&mut self, cloud: &'c Cloud, t: usize) -> anyhow::Result<&'c (String, String)> {
        let tenant = &cloud.tenants[t];
        let i = self.next[t];
        self.next[t] += 1;
        tenant
            .snapshots
            .get(i)
            .with_context(|| format!("tenant {} has no unused snapshot left", tenant.name))
    }
}

/// A tenant's own session with the simulated cloud: what a client of
/// Cinder without the gateway would hold (a token, the endpoint).
#[derive(Clone)]
pub struct Direct {
    pub token: String,
    /// `http://127.0.0.1:P/v3/{project_id}`
    pub endpoint: String,
}

impl Direct {
    /// Gets a token with the tenant's application credential.
    pub async fn login(
        http: &reqwest::Client,
        keystone: &str,
        cinder: &str,
        tenant: &Tenant,
    ) -> anyhow::Result<Direct> {
        let body = json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": tenant.credential_id, "secret": tenant.credential_secret},
        }}});
        let answer = http
            .post(format!("{keystone}/auth/tokens"))
            .json(&body)
            .send()
            .await?;
        if answer.status() != 201 {
            bail!("Keystone token for {}: {}", tenant.name, answer.status());
        }
        let token = answer
            .headers()
            .get("x-subject-token")
            .context("no X-Subject-Token")?
            .to_str()?
            .to_owned();
        Ok(Direct {
            token,
            endpoint: format!("{cinder}/v3/{}", tenant.project_id),
        })
    }

    /// What the gateway's create does upstream, made directly: the snapshot
    /// read, then the backup create at the same microversion.
    pub async fn create(
        &self,
        http: &reqwest::Client,
        snapshot_id: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        let shown = http
            .get(format!("{}/snapshots/{snapshot_id}", self.endpoint))
            .header("X-Auth-Token", &self.token)
            .send()
            .await?;
        if shown.status() != 200 {
            bail!("snapshot show: {}", shown.status());
        }
        let snapshot: Value = shown.json().await?;
        let volume_id = snapshot["snapshot"]["volume_id"]
            .as_str()
            .unwrap_or_default();
        let created = http
            .post(format!("{}/backups", self.endpoint))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "volume 3.43")
            .json(&json!({"backup": {
                "volume_id": volume_id,
                "snapshot_id": snapshot_id,
                "name": name,
                "metadata": {"bench": "direct"},
            }}))
            .send()
            .await?;
        if created.status() != 202 {
            bail!("backup create: {}", created.status());
        }
        let _: Value = created.json().await?;
        Ok(())
    }
}

/// The simulator's control endpoint.
pub struct Control {
    pub root: String,
}

impl Control {
    /// Calls by `(service, operation)` since the last reset, all statuses.
    pub async fn calls(
        &self,
        http: &reqwest::Client,
    ) -> anyhow::Result<BTreeMap<(String, String), u64>> {
        let body: Value = http
            .get(format!("{}/calls", self.root))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut calls = BTreeMap::new();
        for call in body["calls"].as_array().context("calls")? {
            let key = (
                call["service"].as_str().unwrap_or_default().to_owned(),
                call["operation"].as_str().unwrap_or_default().to_owned(),
            );
            *calls.entry(key).or_default() += call["count"].as_u64().unwrap_or_default();
        }
        Ok(calls)
    }

    /// Sets every counter to zero.
    pub async fn reset_calls(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        http.delete(format!("{}/calls", self.root))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Makes every Cinder call take `latency` more (`None`: none).
    pub async fn set_latency(
        &self,
        http: &reqwest::Client,
        latency: Option<std::time::Duration>,
    ) -> anyhow::Result<()> {
        let chaos = match latency {
            Some(latency) => json!({
                "latency_ms": u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                "latency_rate": 1.0,
            }),
            None => Value::Null,
        };
        http.patch(format!("{}/settings", self.root))
            .json(&json!({ "chaos": chaos }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Ends every pending backup now.
    pub async fn finish_pending(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        http.post(format!("{}/finish-pending", self.root))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// Calls of one service in a counter map.
pub fn service_calls(calls: &BTreeMap<(String, String), u64>, service: &str) -> u64 {
    calls
        .iter()
        .filter(|((s, _), _)| s == service)
        .map(|(_, n)| n)
        .sum()
}

/// Calls of one operation in a counter map.
pub fn operation_calls(calls: &BTreeMap<(String, String), u64>, operation: &str) -> u64 {
    calls
        .iter()
        .filter(|((_, o), _)| o == operation)
        .map(|(_, n)| n)
        .sum()
}
