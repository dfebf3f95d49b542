//! The scenarios against the real Keystone 30 + Cinder 29 of the local
//! harness (`tests/real-openstack/harness/`). Run by `bash tests/real-openstack/run`, which
//! brings the harness up and exports its `harness.env`; the default test run
//! leaves them out (`.config/nextest.toml`). They run one at a time: some
//! change cloud-wide state (a quota, the token lifetime) and put it back.
//!
//! The gateway is configured as a user would configure it: the harness's
//! clouds.yaml used as it is, tenants `tenant-a` and `tenant-b` mapped to
//! its entries, callers with JWTs. Cloud-side set-up (fresh snapshots,
//! quotas, a reader-only credential, the token lifetime) goes through the
//! harness's scripts and the `openstack` CLI, as an operator would do it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

use super::{CloudGuard, Upstream};
use crate::helpers::{Gateway, WRONG_SECRET};

/// Token lifetime set for the expiry scenario (Keystone restarts with it):
/// shorter than most backups of the harness (3-15 s), so that the gateway
/// renews its token while a job runs.
const SHORT_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

/// What `harness.env` exports, read once per test.
#[derive(Clone)]
struct Harness {
    dir: PathBuf,
    clouds_file: String,
    cli: String,
    keystone_url: String,
    project_a: String,
    project_b: String,
}

impl Harness {
    fn from_env() -> Harness {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the real-service suite with `bash tests/real-openstack/run`")
            })
        };
        Harness {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real-openstack/harness"),
            clouds_file: var("OS_CLIENT_CONFIG_FILE"),
            cli: var("OPENSTACK_CLI"),
            keystone_url: var("KEYSTONE_URL"),
            project_a: var("TENANT_A_PROJECT_ID"),
            project_b: var("TENANT_B_PROJECT_ID"),
        }
    }

    fn project_of(&self, tenant: &str) -> &str {
        match tenant {
            // The reader-only credential belongs to tenant-a's project.
            "tenant-a" | "tenant-r" => &self.project_a,
            "tenant-b" => &self.project_b,
            other => panic!("no harness tenant {other}"),
        }
    }

    /// Runs a program to completion; its standard output, or a panic with
    /// its standard error.
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let output = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds_file)
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `openstack --os-cloud CLOUD ARGS...`.
    fn openstack(&self, cloud: &str, args: &[&str]) -> String {
        let mut all = vec!["--os-cloud", cloud];
        all.extend_from_slice(args);
        self.run(&self.cli, &all, &[])
    }

    fn script(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// The harness's cloud with a gateway in front of it.
pub struct RealCloud {
    /// The gateway for `tenant-a` and `tenant-b`.
    pub gateway: Gateway,
    special: Option<(Gateway, CloudGuard)>,
    harness: Harness,
    dir: tempfile::TempDir,
}

impl RealCloud {
    /// Starts a gateway on the harness's clouds.yaml, as is.
    pub async fn start() -> Upstream {
        let harness = Harness::from_env();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let gateway = Gateway::start(&[
            "--database-url",
            &database_url,
            "--clouds-file",
            &harness.clouds_file,
            "--tenant",
            "tenant-a=tenant-a",
            "--tenant",
            "tenant-b=tenant-b",
            "--poll-interval",
            "1s",
        ])
        .await;
        Upstream::Real(RealCloud {
            gateway,
            special: None,
            harness,
            dir,
        })
    }

    /// A second gateway for `tenant-r`, an application credential of
    /// tenant-a's user with the reader role only (made now, deleted after),
    /// and `tenant-x`, tenant-a's credential with a wrong secret.
    pub(super) async fn special_gateway(&mut self) -> &Gateway {
        if self.special.is_none() {
            let harness = self.harness.clone();
            let name = format!("gateway-reader-{}", uuid::Uuid::new_v4().simple());
            let created: Value = serde_json::from_str(&harness.openstack(
                "user-a",
                &[
                    "application",
                    "credential",
                    "create",
                    "--role",
                    "reader",
                    &name,
                    "-f",
                    "json",
                ],
            ))
            .expect("credential JSON");
            let cleanup = {
                let harness = harness.clone();
                let name = name.clone();
                CloudGuard::new(move || {
                    harness.openstack("user-a", &["application", "credential", "delete", &name]);
                })
            };
            let tenant_a_id = tenant_a_credential_id(&harness);
            let clouds = format!(
                "clouds:\n  tenant-r:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {url}\n      \
                 application_credential_id: {reader_id}\n      application_credential_secret: \"{reader_secret}\"\n    \
                 region_name: RegionOne\n  tenant-x:\n    auth_type: v3applicationcredential\n    auth:\n      \
                 auth_url: {url}\n      application_credential_id: {tenant_a_id}\n      \
                 application_credential_secret: {WRONG_SECRET}\n    region_name: RegionOne\n",
                url = harness.keystone_url,
                reader_id = created["ID"].as_str().expect("credential ID"),
                reader_secret = created["Secret"].as_str().expect("credential Secret"),
            );
            let clouds_file = self.dir.path().join("special-clouds.yaml");
            std::fs::write(&clouds_file, clouds).expect("write clouds.yaml");
            let database_url = format!("sqlite://{}", self.dir.path().join("special.db").display());
            let gateway = Gateway::start(&[
                "--database-url",
                &database_url,
                "--clouds-file",
                &clouds_file.display().to_string(),
                "--tenant",
                "tenant-r=tenant-r",
                "--tenant",
                "tenant-x=tenant-x",
                "--poll-interval",
                "1s",
            ])
            .await;
            self.special = Some((gateway, cleanup));
        }
        &self.special.as_ref().expect("just made").0
    }

    /// `seed.sh 1`: a new 1 GiB volume with an available snapshot per tenant.
    pub(super) async fn fresh_snapshot(&self, tenant: &str) -> String {
        let harness = self.harness.clone();
        let project = harness.project_of(tenant).to_owned();
        tokio::task::spawn_blocking(move || {
            let seeded: Value =
                serde_json::from_str(&harness.run(&harness.script("seed.sh"), &["1"], &[]))
                    .expect("seed JSON");
            let tenant = seeded
                .as_object()
                .and_then(|tenants| {
                    tenants
                        .values()
                        .find(|t| t["project_id"] == project.as_str())
                })
                .expect("the tenant was seeded");
            tenant["volumes"][0]["snapshot_id"]
                .as_str()
                .expect("snapshot id")
                .to_owned()
        })
        .await
        .expect("seed task")
    }

    /// Sets the backup quota to what is in use (Cinder refuses a limit below
    /// usage), and back to unlimited (`-1`, as `up.sh` leaves it) on drop.
    pub(super) fn cap_backups_at_usage(&self, tenant: &str) -> CloudGuard {
        let harness = self.harness.clone();
        let project = harness.project_of(tenant).to_owned();
        let usage: Value = serde_json::from_str(&harness.openstack(
            "admin",
            &[
                "quota", "show", "--usage", "--volume", &project, "-f", "json",
            ],
        ))
        .expect("quota JSON");
        let in_use = usage
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["Resource"] == "backups"))
            .and_then(|row| row["In Use"].as_i64())
            .expect("backups in use");
        harness.openstack(
            "admin",
            &["quota", "set", "--backups", &in_use.to_string(), &project],
        );
        CloudGuard::new(move || {
            harness.openstack("admin", &["quota", "set", "--backups", "-1", &project]);
        })
    }

    /// `openstack volume snapshot set --state available`, as an admin, on drop.
    pub(super) fn reset_snapshot_later(&self, snapshot_id: &str) -> CloudGuard {
        let harness = self.harness.clone();
        let snapshot_id = snapshot_id.to_owned();
        CloudGuard::new(move || {
            harness.openstack(
                "admin",
                &[
                    "volume",
                    "snapshot",
                    "set",
                    "--state",
                    "available",
                    &snapshot_id,
                ],
            );
        })
    }

    /// Restarts Keystone with short-lived tokens; back to an hour on drop.
    pub(super) fn shorten_tokens(&self) -> (Duration, CloudGuard) {
        let harness = self.harness.clone();
        let restart = harness.script("restart-keystone.sh");
        let seconds = SHORT_TOKEN_LIFETIME.as_secs().to_string();
        harness.run(&restart, &[], &[("KEYSTONE_TOKEN_EXPIRATION", &seconds)]);
        let guard = CloudGuard::new(move || {
            harness.run(&restart, &[], &[("KEYSTONE_TOKEN_EXPIRATION", "3600")]);
        });
        (SHORT_TOKEN_LIFETIME, guard)
    }
}

/// The application-credential id of the harness's `tenant-a` entry.
fn tenant_a_credential_id(harness: &Harness) -> String {
    let clouds = backup_gateway::openstack::clouds::load(Path::new(&harness.clouds_file))
        .expect("harness clouds.yaml");
    match &clouds.get("tenant-a").expect("tenant-a entry").credential {
        backup_gateway::openstack::clouds::Credential::ApplicationCredentialId { id, .. } => {
            id.clone()
        }
        other => panic!("tenant-a is not an application credential by id: {other:?}"),
    }
}

// Every scenario of `super`, on a cloud of its own.
super::every_scenario!(RealCloud::start());
