//! What a simulator starts with: tenants (Keystone projects) with their
//! credentials, volumes, snapshots and backup quotas. Loaded from JSON or
//! built in (`Seed::demo`). Only data, no behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Everything the simulator knows at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seed {
    /// One entry per Keystone project.
    pub tenants: Vec<TenantSeed>,
}

/// A Keystone project and what it owns in Cinder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantSeed {
    /// Project name (also the cloud name in the generated clouds.yaml).
    pub name: String,
    /// Keystone project id (32 hex digits on a real cloud).
    pub project_id: String,
    /// Application credentials scoped to this project.
    #[serde(default)]
    pub app_credentials: Vec<AppCredentialSeed>,
    /// Users with a role assignment on this project (password auth).
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// The project's volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeSeed>,
    /// The project's snapshots; listed newest first in this order.
    #[serde(default)]
    pub snapshots: Vec<SnapshotSeed>,
    /// Backup quotas of the project.
    #[serde(default)]
    pub quotas: Quotas,
}

/// An application credential (`POST /v3/auth/tokens`, method `application_credential`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppCredentialSeed {
    /// Credential id.
    pub id: String,
    /// Credential name (unique per user).
    pub name: String,
    /// The secret given with the id or name.
    pub secret: String,
    /// Id of the user that owns the credential.
    pub user_id: String,
    /// Name of that user.
    pub user_name: String,
    /// Role names the credential carries (`member`, `reader`, `admin`).
    pub roles: Vec<String>,
}

/// A user that authenticates with a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSeed {
    /// User id.
    pub id: String,
    /// User name, in the `Default` domain.
    pub name: String,
    /// Password.
    pub password: String,
    /// Role names on the tenant's project; `admin` makes a cloud admin.
    pub roles: Vec<String>,
}

/// A Cinder volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeSeed {
    /// Volume id (a UUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Size in GiB; a backup of it is charged this much `backup_gigabytes`.
    pub size: u64,
    /// Status, usually `available` or `in-use`.
    pub status: String,
}

/// A Cinder snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotSeed {
    /// Snapshot id (a UUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description, `null` when absent.
    #[serde(default)]
    pub description: Option<String>,
    /// Volume the snapshot was taken from (in the same tenant).
    pub volume_id: String,
    /// Status, usually `available`.
    pub status: String,
    /// Snapshot metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Backup quotas of a project; `-1` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Number of backups.
    pub backups: i64,
    /// Sum of backup sizes in GiB (each backup is charged its volume's size).
    pub backup_gigabytes: i64,
}

impl Default for Quotas {
    /// Cinder's defaults (`quota_backups = 10`, `quota_backup_gigabytes = 1000`).
    fn default() -> Self {
        Self {
            backups: 10,
            backup_gigabytes: 1000,
        }
    }
}

impl Quotas {
    /// No limit on either resource.
    pub const UNLIMITED: Quotas = Quotas {
        backups: -1,
        backup_gigabytes: -1,
    };
}

impl Seed {
    /// Two demo tenants, `tenant-a` and `tenant-b`, with fixed ids and
    /// secrets, a few volumes each and one available snapshot per volume.
    pub fn demo() -> Seed {
        Seed {
            tenants: vec![
                demo_tenant(
                    "a",
                    "5f1d4c3b2a1948e7b6c5d4e3f2a1b0c9",
                    &[("db-data", 10), ("web-root", 2), ("logs", 1)],
                ),
                demo_tenant(
                    "b",
                    "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c6b",
                    &[("mail-store", 5), ("home", 3)],
                ),
            ],
        }
    }

    /// Reads a seed from a JSON file (the shape of [`Seed`]) and checks it.
    pub fn from_json_file(path: &Path) -> anyhow::Result<Seed> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading seed file {}", path.display()))?;
        let seed: Seed = serde_json::from_str(&text)
            .with_context(|| format!("parsing seed file {}", path.display()))?;
        seed.check()
            .with_context(|| format!("checking seed file {}", path.display()))?;
        Ok(seed)
    }

    /// Checks that ids are unique and every snapshot's volume is in its tenant.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut projects = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for tenant in &self.tenants {
            if !projects.insert(tenant.project_id.as_str()) {
                bail!("project id {} appears twice", tenant.project_id);
            }
            let volumes: BTreeSet<&str> = tenant.volumes.iter().map(|v| v.id.as_str()).collect();
            for id in tenant
                .volumes
                .iter()
                .map(|v| &v.id)
                .chain(tenant.snapshots.iter().map(|s| &s.id))
                .chain(tenant.app_credentials.iter().map(|c| &c.id))
            {
                if !ids.insert(id.as_str()) {
                    bail!("id {id} appears twice");
                }
            }
            for snapshot in &tenant.snapshots {
                if !volumes.contains(snapshot.volume_id.as_str()) {
                    bail!(
                        "snapshot {} refers to volume {} which is not in tenant {}",
                        snapshot.id,
                        snapshot.volume_id,
                        tenant.name
                    );
                }
            }
        }
        Ok(())
    }
}

/// Builds one demo tenant; `letter` makes names, ids and secrets distinct.
fn demo_tenant(letter: &str, project_id: &str, volumes: &[(&str, u64)]) -> TenantSeed {
    // Fixed, readable ids so a demo can be driven from a shell by copy-paste.
    let digit = if letter == "a" { 'a' } else { 'b' };
    let uuid = |kind: u32, n: usize| format!("{kind:08x}-0000-4000-8000-{digit}{n:011x}");
    let user_id: String = std::iter::repeat_n(digit, 32).collect();
    let mut tenant = TenantSeed {
        name: format!("tenant-{letter}"),
        project_id: project_id.to_owned(),
        app_credentials: vec![AppCredentialSeed {
            id: format!("demo-appcred-{letter}"),
            name: format!("demo-{letter}"),
            secret: format!("demo-secret-{letter}"),
            user_id: user_id.clone(),
            user_name: format!("user-{letter}"),
            roles: vec!["member".to_owned(), "reader".to_owned()],
        }],
        users: vec![UserSeed {
            id: user_id,
            name: format!("user-{letter}"),
            password: format!("demo-password-{letter}"),
            roles: vec!["member".to_owned(), "reader".to_owned()],
        }],
        volumes: Vec::new(),
        snapshots: Vec::new(),
        quotas: Quotas::UNLIMITED,
    };
    for (n, (name, size)) in volumes.iter().enumerate() {
        let volume_id = uuid(0x7e1, n + 1);
        tenant.snapshots.push(SnapshotSeed {
            id: uuid(0x5a9, n + 1),
            name: format!("{name}-snap-1"),
            description: Some(format!("daily snapshot of {name}")),
            volume_id: volume_id.clone(),
            status: "available".to_owned(),
            metadata: BTreeMap::new(),
        });
        tenant.volumes.push(VolumeSeed {
            id: volume_id,
            name: (*name).to_owned(),
            size: *size,
            status: "in-use".to_owned(),
        });
    }
    tenant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_seed_is_consistent() {
        let seed = Seed::demo();
        seed.check().expect("demo seed is valid");
        assert_eq!(seed.tenants.len(), 2);
        assert_eq!(seed.tenants[0].name, "tenant-a");
        assert_eq!(seed.tenants[0].app_credentials[0].secret, "demo-secret-a");
        assert!(
            seed.tenants
                .iter()
                .all(|t| t.snapshots.len() == t.volumes.len())
        );
    }

    #[test]
    fn seed_json_round_trips_with_defaults() {
        let json = r#"{"tenants":[{"name":"t","project_id":"p","volumes":[{"id":"v","name":"v","size":1,"status":"available"}],
            "snapshots":[{"id":"s","name":"s","volume_id":"v","status":"available"}]}]}"#;
        let seed: Seed = serde_json::from_str(json).expect("parses");
        seed.check().expect("valid");
        assert_eq!(seed.tenants[0].quotas, Quotas::default());
        assert_eq!(seed.tenants[0].snapshots[0].description, None);
    }
}
