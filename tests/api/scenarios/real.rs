//! The scenarios against a real Keystone + Cinder: the local harness
//! (`tests/real-openstack/harness/`, Keystone 30 + Cinder 29) or any cloud
//! an operator names. Run by `bash tests/real-openstack/run`, which exports
//! the `REAL_OPENSTACK_*` variables read here; the default test run leaves
//! them out (`.config/nextest.toml`). They run one at a time: some change
//! cloud-wide state (a quota, the token lifetime) and put it back.
//!
//! The gateway is configured as a user would configure it: the cloud's
//! clouds.yaml used as it is, tenants `tenant-a` and `tenant-b` mapped to
//! its entries, callers with JWTs. Cloud-side set-up goes through the
//! `openstack` CLI with the cloud's own entries, as an operator would do
//! it: each scenario makes its own volumes and snapshots, named after the
//! run (`REAL_OPENSTACK_PREFIX`) so that the run script deletes them, with
//! the backups of them, when the run ends.
//!
//! Some scenarios need more than the two tenants: an admin entry (quotas,
//! resetting a snapshot Cinder left `backing-up`), an entry that may create
//! application credentials (the reader-only credential), or the local
//! harness (Keystone restarted with short-lived tokens). The run script
//! leaves them out, with the reason, when it was not given what they need
//! (its table `NEEDS`; a new scenario that needs more than the tenants goes
//! there too); run anyway, they fail saying what is missing.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use yaml_serde::{Mapping, Value as Yaml};

use super::{CloudGuard, Upstream};
use crate::helpers::{Gateway, WRONG_SECRET};

/// Token lifetime set for the expiry scenario (Keystone restarts with it):
/// shorter than most backups of the harness (3-15 s), so that the gateway
/// renews its token while a job runs.
const SHORT_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

/// How long a new volume or snapshot may take to become `available`.
const READY_DEADLINE: Duration = Duration::from_secs(300);

/// The cloud the run script names, read from its environment once per test.
#[derive(Clone)]
struct Cloud {
    /// The clouds.yaml, given to the gateway and the CLI as it is.
    clouds_file: String,
    /// The `openstack` CLI.
    cli: String,
    /// The entries of `tenant-a` and `tenant-b` (role `member`).
    tenant_a: String,
    tenant_b: String,
    /// An admin entry, when given.
    admin: Option<String>,
    /// An entry of tenant-a's project that may create application
    /// credentials, when the run script found one.
    credential_user: Option<String>,
    /// The local harness's scripts, when the cloud is the harness.
    harness: Option<PathBuf>,
    /// Start of the names of everything this run makes in the cloud.
    prefix: String,
}

impl Cloud {
    fn from_env() -> Cloud {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the real-service suite with `bash tests/real-openstack/run`"
                )
            })
        };
        let optional = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Cloud {
            clouds_file: var("REAL_OPENSTACK_CLOUD_CONFIG"),
            cli: optional("OPENSTACK_CLI").unwrap_or_else(|| "openstack".to_owned()),
            tenant_a: var("REAL_OPENSTACK_TENANT_A"),
            tenant_b: var("REAL_OPENSTACK_TENANT_B"),
            admin: optional("REAL_OPENSTACK_ADMIN"),
            credential_user: optional("REAL_OPENSTACK_CREDENTIAL_USER"),
            harness: optional("REAL_OPENSTACK_HARNESS").map(PathBuf::from),
            prefix: var("REAL_OPENSTACK_PREFIX"),
        }
    }

    /// The clouds.yaml entry a scenario's tenant acts with.
    fn entry_of(&self, tenant: &str) -> &str {
        match tenant {
            "tenant-a" => &self.tenant_a,
            // The reader-only credential belongs to tenant-a's project.
            "tenant-r" => {
                self.credential_user();
                &self.tenant_a
            }
            "tenant-b" => &self.tenant_b,
            other => panic!("no tenant {other} in the real-service suite"),
        }
    }

    /// The admin entry; a scenario that needs one fails without it.
    fn admin(&self) -> &str {
        self.admin.as_deref().unwrap_or_else(|| {
            panic!(
                "this scenario needs an admin entry (`tests/real-openstack/run --admin NAME`); \
                 the run script skips it without one"
            )
        })
    }

    /// The entry that may create application credentials; a scenario that
    /// needs one fails without it.
    fn credential_user(&self) -> &str {
        self.credential_user.as_deref().unwrap_or_else(|| {
            panic!(
                "this scenario needs an entry of tenant-a's project that may create application \
                 credentials (`tests/real-openstack/run --credential-user NAME`); the run script \
                 skips it without one"
            )
        })
    }

    /// A name for something this run makes in the cloud.
    fn name(&self, what: &str) -> String {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        format!("{}-{what}-{}", self.prefix, &unique[..8])
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

    /// `openstack --os-cloud ENTRY ARGS...`.
    fn openstack(&self, entry: &str, args: &[&str]) -> String {
        let mut all = vec!["--os-cloud", entry];
        all.extend_from_slice(args);
        self.run(&self.cli, &all, &[])
    }

    /// One field of an `openstack ... show`-like command, trimmed.
    fn field(&self, entry: &str, args: &[&str], field: &str) -> String {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-f", "value", "-c", field]);
        self.openstack(entry, &all).trim().to_owned()
    }

    /// Polls `show` (`volume show ID` or `volume snapshot show ID`) until
    /// the status is `available`; fails on an error status or past
    /// [`READY_DEADLINE`].
    fn wait_available(&self, entry: &str, show: &[&str]) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let status = self.field(entry, show, "status");
            match status.as_str() {
                "available" => return,
                s if s.starts_with("error") => panic!("{show:?} went to {s}"),
                s => assert!(
                    Instant::now() < deadline,
                    "{show:?} still {s} after {READY_DEADLINE:?}"
                ),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The Keystone project of an entry's token.
    fn project_of(&self, entry: &str) -> String {
        self.field(entry, &["token", "issue"], "project_id")
    }

    /// The local harness's script `name`; a scenario that needs one fails
    /// on any other cloud.
    fn harness_script(&self, name: &str) -> String {
        let dir = self.harness.as_ref().unwrap_or_else(|| {
            panic!(
                "this scenario needs the local harness (it restarts Keystone); \
                 the run script skips it on another cloud"
            )
        });
        dir.join(name).display().to_string()
    }

    /// The clouds.yaml entry `name`, as written.
    fn entry(&self, name: &str) -> Mapping {
        let text = std::fs::read_to_string(&self.clouds_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.clouds_file));
        let file: Yaml = yaml_serde::from_str(&text)
            .unwrap_or_else(|_| panic!("{} is not YAML", self.clouds_file));
        file.get("clouds")
            .and_then(|clouds| clouds.get(name))
            .and_then(Yaml::as_mapping)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {name} in {}", self.clouds_file))
    }
}

/// A real cloud with a gateway in front of it.
pub struct RealCloud {
    /// The gateway for `tenant-a` and `tenant-b`.
    pub gateway: Gateway,
    special: Option<(Gateway, Option<CloudGuard>)>,
    cloud: Cloud,
    dir: tempfile::TempDir,
}

impl RealCloud {
    /// Starts a gateway on the cloud's clouds.yaml, as is.
    pub async fn start() -> Upstream {
        let cloud = Cloud::from_env();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let tenant_a = format!("tenant-a={}", cloud.tenant_a);
        let tenant_b = format!("tenant-b={}", cloud.tenant_b);
        let gateway = Gateway::start(&[
            "--database-url",
            &database_url,
            "--clouds-file",
            &cloud.clouds_file,
            "--tenant",
            &tenant_a,
            "--tenant",
            &tenant_b,
            "--poll-interval",
            "1s",
            "--webhook-allow",
            "127.0.0.0/8",
        ])
        .await;
        Upstream::Real(RealCloud {
            gateway,
            special: None,
            cloud,
            dir,
        })
    }

    /// A second gateway for `tenant-x`, tenant-a's entry with a wrong
    /// secret, and (when the cloud lets this run make application
    /// credentials) `tenant-r`, a credential of tenant-a's project with the
    /// reader role only, made now and deleted after.
    pub(super) async fn special_gateway(&mut self) -> &Gateway {
        if self.special.is_none() {
            let (clouds, cleanup) = special_clouds(&self.cloud);
            let clouds_file = self.dir.path().join("special-clouds.yaml");
            std::fs::write(&clouds_file, clouds).expect("write clouds.yaml");
            let database_url = format!("sqlite://{}", self.dir.path().join("special.db").display());
            let clouds_file = clouds_file.display().to_string();
            let mut flags = vec![
                "--database-url",
                &database_url,
                "--clouds-file",
                &clouds_file,
                "--tenant",
                "tenant-x=tenant-x",
                "--poll-interval",
                "1s",
            ];
            if cleanup.is_some() {
                flags.extend(["--tenant", "tenant-r=tenant-r"]);
            }
            let gateway = Gateway::start(&flags).await;
            self.special = Some((gateway, cleanup));
        }
        &self.special.as_ref().expect("just made").0
    }

    /// A new 1 GiB volume of the tenant with an available snapshot, made
    /// with the tenant's entry; the snapshot id.
    pub(super) async fn fresh_snapshot(&self, tenant: &str) -> String {
        let cloud = self.cloud.clone();
        let entry = cloud.entry_of(tenant).to_owned();
        tokio::task::spawn_blocking(move || {
            let name = cloud.name("volume");
            let volume = cloud.field(&entry, &["volume", "create", "--size", "1", &name], "id");
            cloud.wait_available(&entry, &["volume", "show", &volume]);
            let snapshot = cloud.field(
                &entry,
                &["volume", "snapshot", "create", "--volume", &volume, &name],
                "id",
            );
            cloud.wait_available(&entry, &["volume", "snapshot", "show", &snapshot]);
            snapshot
        })
        .await
        .expect("seed task")
    }

    /// Sets the backup quota to what is in use (Cinder refuses a limit below
    /// usage), and back to the limit it had on drop.
    pub(super) fn cap_backups_at_usage(&self, tenant: &str) -> CloudGuard {
        let cloud = self.cloud.clone();
        let admin = cloud.admin().to_owned();
        let project = cloud.project_of(cloud.entry_of(tenant));
        let usage: Value = serde_json::from_str(&cloud.openstack(
            &admin,
            &[
                "quota", "show", "--usage", "--volume", &project, "-f", "json",
            ],
        ))
        .expect("quota JSON");
        let backups = usage
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["Resource"] == "backups"))
            .unwrap_or_else(|| panic!("no backups row in {usage}"));
        let in_use = backups["In Use"].as_i64().expect("backups in use");
        let limit = backups["Limit"].as_i64().expect("backups limit");
        cloud.openstack(
            &admin,
            &["quota", "set", "--backups", &in_use.to_string(), &project],
        );
        CloudGuard::new(move || {
            cloud.openstack(
                &admin,
                &["quota", "set", "--backups", &limit.to_string(), &project],
            );
        })
    }

    /// `openstack volume snapshot set --state available`, as an admin, on drop.
    pub(super) fn reset_snapshot_later(&self, snapshot_id: &str) -> CloudGuard {
        let cloud = self.cloud.clone();
        let admin = cloud.admin().to_owned();
        let snapshot_id = snapshot_id.to_owned();
        CloudGuard::new(move || {
            cloud.openstack(
                &admin,
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

    /// Restarts the harness's Keystone with short-lived tokens; back to an
    /// hour on drop.
    pub(super) fn shorten_tokens(&self) -> (Duration, CloudGuard) {
        let cloud = self.cloud.clone();
        let restart = cloud.harness_script("restart-keystone.sh");
        let seconds = SHORT_TOKEN_LIFETIME.as_secs().to_string();
        cloud.run(&restart, &[], &[("KEYSTONE_TOKEN_EXPIRATION", &seconds)]);
        let guard = CloudGuard::new(move || {
            cloud.run(&restart, &[], &[("KEYSTONE_TOKEN_EXPIRATION", "3600")]);
        });
        (SHORT_TOKEN_LIFETIME, guard)
    }
}

/// The clouds.yaml of the special gateway, and the guard deleting the
/// reader-only credential made for it, if one was. Both entries are copies
/// of tenant-a's (its Keystone, region, interface and TLS settings):
/// `tenant-x` with [`WRONG_SECRET`] in place of its secret or password,
/// `tenant-r` with the new credential.
fn special_clouds(cloud: &Cloud) -> (String, Option<CloudGuard>) {
    let key = |k: &str| Yaml::String(k.to_owned());
    let tenant_a = cloud.entry(&cloud.tenant_a);
    let auth_of_a = tenant_a
        .get("auth")
        .and_then(Yaml::as_mapping)
        .cloned()
        .unwrap_or_else(|| panic!("the entry {} has no auth", cloud.tenant_a));
    let mut clouds = Mapping::new();

    let mut wrong_auth = auth_of_a.clone();
    let secret_key = ["application_credential_secret", "password"]
        .into_iter()
        .find(|k| wrong_auth.contains_key(*k))
        .unwrap_or_else(|| {
            panic!(
                "the entry {} has neither an application-credential secret nor a password",
                cloud.tenant_a
            )
        });
    wrong_auth.insert(key(secret_key), Yaml::String(WRONG_SECRET.to_owned()));
    let mut wrong = tenant_a.clone();
    wrong.insert(key("auth"), Yaml::Mapping(wrong_auth));
    clouds.insert(key("tenant-x"), Yaml::Mapping(wrong));

    let cleanup = cloud.credential_user.clone().map(|user| {
        let name = cloud.name("reader");
        let created: Value = serde_json::from_str(&cloud.openstack(
            &user,
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
            let cloud = cloud.clone();
            CloudGuard::new(move || {
                cloud.openstack(&user, &["application", "credential", "delete", &name]);
            })
        };
        assert_eq!(
            created["Project ID"].as_str(),
            Some(cloud.project_of(&cloud.tenant_a).as_str()),
            "the credential user's entry must be scoped to tenant-a's project"
        );
        let text = |field: &str| {
            created[field]
                .as_str()
                .unwrap_or_else(|| panic!("credential {field}"))
                .to_owned()
        };
        let mut reader_auth = Mapping::new();
        if let Some(url) = auth_of_a.get("auth_url") {
            reader_auth.insert(key("auth_url"), url.clone());
        }
        reader_auth.insert(key("application_credential_id"), Yaml::String(text("ID")));
        reader_auth.insert(
            key("application_credential_secret"),
            Yaml::String(text("Secret")),
        );
        let mut reader = tenant_a;
        reader.insert(
            key("auth_type"),
            Yaml::String("v3applicationcredential".to_owned()),
        );
        reader.insert(key("auth"), Yaml::Mapping(reader_auth));
        clouds.insert(key("tenant-r"), Yaml::Mapping(reader));
        cleanup
    });

    let mut file = Mapping::new();
    file.insert(key("clouds"), Yaml::Mapping(clouds));
    let text = yaml_serde::to_string(&Yaml::Mapping(file)).expect("clouds.yaml text");
    (text, cleanup)
}

// Every scenario of `super`, on a cloud of its own.
super::every_scenario!(RealCloud::start());
