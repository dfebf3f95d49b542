//! `serve --demo`: the gateway on its embedded defaults. An in-process
//! `openstack-sim` stands in for Keystone and Cinder, seeded with two
//! tenants, their volumes and snapshots; the store is a fresh SQLite file;
//! callers' tokens are signed with a demo secret and printed, with curl
//! lines ready to paste.
//!
//! Nothing here is used outside the demo: a real deployment configures its
//! clouds.yaml, tenant map and JWT settings (README, "Configuration").

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::{
    auth::{set_claim, sign_hs256},
    config::Config,
};
use openstack_sim::{RunningSim, Seed, Sim, SimConfig};

/// The demo's folder unless `--demo-data` names another.
pub const DEFAULT_DEMO_DATA: &str = "data";

/// The demo's files, in its folder.
struct DemoFiles {
    dir: PathBuf,
}

impl DemoFiles {
    /// The demo's store, made anew at every start: the simulator forgets
    /// its backups when it stops, so jobs of an earlier demo would point
    /// nowhere.
    fn database(&self) -> PathBuf {
        self.dir.join("demo.db")
    }

    /// Held by a running demo, so that a second one in the same folder
    /// stops.
    fn lock(&self) -> PathBuf {
        self.dir.join("demo.lock")
    }

    /// Where the demo writes what it prints, for `source` in a shell.
    fn env(&self) -> PathBuf {
        self.dir.join("demo.env")
    }

    /// The simulator's clouds.yaml.
    fn clouds(&self) -> PathBuf {
        self.dir.join("demo-clouds.yaml")
    }
}

/// How long a simulated backup stays `creating`: long enough to watch a job
/// run, short enough not to wait.
const DEMO_BACKUP_DURATION: Duration = Duration::from_secs(5);

/// Where the demo delivers webhooks, unless `--webhook-allow` says
/// otherwise: this machine.
pub const DEMO_WEBHOOK_TARGETS: [&str; 3] = ["127.0.0.0/8", "::1", "localhost"];

/// `iss` of the demo's tokens, unless --jwt-issuer says otherwise.
const DEMO_ISSUER: &str = "backup-gateway-demo";
/// `aud` of the demo's tokens, unless --jwt-audience says otherwise.
const DEMO_AUDIENCE: &str = "backup-gateway";

/// A running demo cloud; dropping it stops the simulator.
pub struct Demo {
    /// `demo.lock`, held while the demo runs: a second demo in the same
    /// folder stops before it removes this one's store.
    _lock: std::fs::File,
    files: DemoFiles,
    cloud: RunningSim,
    tenants: Vec<DemoTenant>,
    minter: TokenMinter,
}

/// Signs caller tokens as the gateway configured by a [`Config`] with a
/// shared secret verifies them: its issuer, audience, tenant and scope
/// claims, every scope. For demos and trials (`backup-gateway token`);
/// real callers get their tokens from their identity provider.
pub struct TokenMinter {
    secret: SecretString,
    issuer: Option<String>,
    audience: Option<String>,
    tenant_claim: String,
    scope_claim: String,
    scopes: String,
}

impl TokenMinter {
    /// The minter for `config`, which must verify with a shared secret
    /// (the only key source the gateway can sign for).
    pub fn new(config: &Config) -> anyhow::Result<TokenMinter> {
        let secret = config.jwt_secret.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "a token can be signed only with --jwt-secret (or --jwt-secret-file): the other key sources' private keys are the identity provider's"
            )
        })?;
        Ok(TokenMinter {
            secret,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            tenant_claim: config.tenant_claim.clone(),
            scope_claim: config.scope_claim.clone(),
            scopes: format!("{} {}", config.read_scope, config.write_scope),
        })
    }

    /// A token of `tenant` with every scope, for `subject`, valid `ttl`.
    pub fn token(&self, tenant: &str, subject: &str, ttl: Duration) -> anyhow::Result<String> {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let mut claims = json!({
            "sub": subject,
            "exp": chrono::Utc::now().timestamp().saturating_add(ttl),
        });
        set_claim(&mut claims, &self.tenant_claim, json!(tenant));
        set_claim(&mut claims, &self.scope_claim, json!(self.scopes));
        if let Some(issuer) = &self.issuer {
            claims["iss"] = json!(issuer);
        }
        if let Some(audience) = &self.audience {
            claims["aud"] = json!(audience);
        }
        sign_hs256(&self.secret, &claims)
    }
}

/// One demo tenant, for the banner.
struct DemoTenant {
    name: String,
    project_id: String,
    snapshots: Vec<String>,
}

impl Demo {
    /// Starts the simulator and fills in what the demo needs in `config`:
    /// the clouds.yaml, the tenant map, a JWT secret (unless one is set),
    /// a fresh store (unless one is set), and quick polling.
    pub async fn start(config: &mut Config, dir: &Path) -> anyhow::Result<Demo> {
        let files = DemoFiles {
            dir: dir.to_owned(),
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = lock_folder(&files.lock())?;
        let seed = Seed::demo();
        let sim = Sim::new(
            SimConfig {
                backup_duration: DEMO_BACKUP_DURATION,
                ..SimConfig::default()
            },
            seed.clone(),
        );
        let cloud = sim
            .start()
            .await
            .context("starting the demo OpenStack simulator")?;
        let clouds_file = files.clouds();
        write_private(&clouds_file, &cloud.clouds_yaml())?;
        config.clouds_file = Some(clouds_file);
        config.tenants = seed
            .tenants
            .iter()
            .map(|t| (t.name.clone(), t.name.clone()))
            .collect();
        // Always a fresh store of the demo's own: a database URL from the
        // shell or a config file names a store in use (an operator's
        // PostgreSQL, another demo's file), which this demo's worker would
        // fail job by job, its backups being unknown to this simulator.
        if config.database_url.expose_secret() != crate::config::DEFAULT_DATABASE_URL {
            tracing::warn!(
                "serve --demo keeps its own store in its data folder; the configured database URL is not used"
            );
        }
        let database = files.database();
        remove_sqlite_files(&database)?;
        config.database_url = SecretString::from(format!("sqlite://{}", database.display()));
        config.jwt_secret.get_or_insert_with(|| {
            SecretString::from(format!("demo-{}", uuid::Uuid::new_v4().simple()))
        });
        // The demo mints its own tokens: for its issuer and audience.
        config
            .jwt_issuer
            .get_or_insert_with(|| DEMO_ISSUER.to_owned());
        config
            .jwt_audience
            .get_or_insert_with(|| DEMO_AUDIENCE.to_owned());
        config.poll_interval = config.poll_interval.min(Duration::from_secs(1));
        // Webhooks to receivers on this machine, unless told otherwise.
        if config.webhook_allow.is_empty() {
            config.webhook_allow = DEMO_WEBHOOK_TARGETS.map(str::to_owned).to_vec();
        }
        let tenants = seed
            .tenants
            .iter()
            .map(|t| DemoTenant {
                name: t.name.clone(),
                project_id: t.project_id.clone(),
                snapshots: t.snapshots.iter().map(|s| s.id.clone()).collect(),
            })
            .collect();
        Ok(Demo {
            _lock: lock,
            files,
            cloud,
            tenants,
            minter: TokenMinter::new(config)?,
        })
    }

    /// A caller token for a demo tenant, valid for a day.
    pub fn token(&self, tenant: &str) -> anyhow::Result<String> {
        self.minter.token(
            tenant,
            &format!("demo-user-of-{tenant}"),
            Duration::from_secs(86_400),
        )
    }

    /// Writes the shell variables to [`DEMO_ENV_FILE`] and prints the banner:
    /// tokens, snapshots and curl lines for the gateway at `address`.
    pub fn announce(&self, address: std::net::SocketAddr) -> anyhow::Result<()> {
        let gateway = format!("http://{address}");
        let mut env = format!("export GATEWAY={gateway}\n");
        let mut banner = String::new();
        banner.push_str("\nbackup-gateway demo\n===================\n");
        banner.push_str(&format!(
            "Simulated OpenStack: Keystone {} , Cinder {}\n",
            self.cloud.keystone_url, self.cloud.cinder_url
        ));
        banner.push_str(&format!(
            "Gateway: {gateway}   (interactive docs: {gateway}/docs/ ; API spec: {gateway}/openapi.json)\n\n"
        ));
        banner.push_str(&format!("  export GATEWAY={gateway}\n"));
        for tenant in &self.tenants {
            let var = format!(
                "TOKEN_{}",
                tenant.name.trim_start_matches("tenant-").to_uppercase()
            );
            let token = self.token(&tenant.name)?;
            env.push_str(&format!("export {var}={token}\n"));
            banner.push_str(&format!(
                "{} (Keystone project {}), snapshots: {}\n",
                tenant.name,
                tenant.project_id,
                tenant.snapshots.join(", ")
            ));
            banner.push_str(&format!("  export {var}={token}\n"));
        }
        let env_file = self.files.env();
        write_private(&env_file, &env)?;
        let env_file = env_file.display();
        let snapshot = self
            .tenants
            .first()
            .and_then(|t| t.snapshots.first())
            .map(String::as_str)
            .unwrap_or("SNAPSHOT_ID");
        banner.push_str(&format!(
            "\nIn another shell (the variables are also in {env_file}: `source {env_file}`):\n\
             \n  curl -s -H \"Authorization: Bearer $TOKEN_A\" $GATEWAY/snapshots\
             \n  JOB=$(curl -s -o /dev/null -w '%header{{location}}' -X POST -H \"Authorization: Bearer $TOKEN_A\" \\\
             \n      -H 'Content-Type: application/json' -d '{{\"name\": \"first\"}}' $GATEWAY/snapshots/{snapshot}/backups)\
             \n  curl -s -H \"Authorization: Bearer $TOKEN_A\" \"$GATEWAY$JOB?wait=30\"\
             \n  curl -s -H \"Authorization: Bearer $TOKEN_A\" $GATEWAY/jobs\
             \n  curl -s -H \"Authorization: Bearer $TOKEN_B\" \"$GATEWAY$JOB\"   # another tenant's job: 404\n\
             \nWebhooks may go to receivers on this machine (--webhook-allow 127.0.0.0/8,::1,localhost):\
             \n  curl -s -X POST -H \"Authorization: Bearer $TOKEN_A\" -H 'Content-Type: application/json' \\\
             \n      -d '{{\"url\": \"http://127.0.0.1:9000/hook\"}}' $GATEWAY/webhooks\n\n\
             Ctrl-C stops the gateway and the simulator.\n"
        ));
        let mut out = std::io::stdout().lock();
        out.write_all(banner.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

/// Takes the demo's lock file at `path`, or says that another demo holds it.
fn lock_folder(path: &Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another demo runs in this folder (it holds {}): stop it first, or start this one with another --demo-data",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Writes a file only its owner can read (mode 0600): it holds secrets.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        // Also when an earlier file had a wider mode.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Removes a SQLite database and its WAL files, if present.
fn remove_sqlite_files(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}
