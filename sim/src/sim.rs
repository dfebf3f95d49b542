//! The simulator handle: construction, start on two listeners, and the
//! control surface tests use to steer it (time, failures, faults, data).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::{Faults, Misbehaviour};
use crate::microversion::Microversion;
use crate::ops::{Answering, CallCounters};
use crate::seed::{Quotas, Seed, SnapshotSeed, VolumeSeed};
use crate::state::{State, Urls};
use crate::{
    BackupCounts, CallCount, Chaos, ChaosStats, Fault, Op, SimConfig, cinder, control, keystone,
    server,
};

/// A Keystone + Cinder simulator. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    counters: Arc<CallCounters>,
    faults: Faults,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

impl Sim {
    /// A simulator holding `seed`; nothing listens until [`Sim::start`].
    pub fn new(config: SimConfig, seed: Seed) -> Sim {
        Sim {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config, seed)),
                counters: Arc::default(),
                faults: Faults::default(),
            }),
        }
    }

    /// Starts Keystone and Cinder on two free ports of 127.0.0.1.
    pub async fn start(&self) -> std::io::Result<RunningSim> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        self.start_on(any, any).await
    }

    /// Starts Keystone on `keystone` and Cinder on `cinder`.
    pub async fn start_on(
        &self,
        keystone: SocketAddr,
        cinder: SocketAddr,
    ) -> std::io::Result<RunningSim> {
        let keystone_listener = TcpListener::bind(keystone).await?;
        let cinder_listener = TcpListener::bind(cinder).await?;
        let public_host = self.state().public_host.clone();
        let public = |address: SocketAddr| match &public_host {
            Some(host) => format!("{host}:{}", address.port()),
            None => address.to_string(),
        };
        let keystone_url = format!("http://{}/v3", public(keystone_listener.local_addr()?));
        let cinder_url = format!("http://{}", public(cinder_listener.local_addr()?));
        self.state().urls = Some(Urls {
            keystone: keystone_url.clone(),
            cinder: cinder_url.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            server::spawn(
                keystone_listener,
                // The control endpoint sits beside Keystone: the one
                // address every client of the simulator already has.
                keystone::router(self.clone()).nest("/_sim", control::router(self.clone())),
                stopped.clone(),
            ),
            server::spawn(cinder_listener, cinder::router(self.clone()), stopped),
        ];
        tracing::info!(%keystone_url, %cinder_url, "openstack-sim listening");
        Ok(RunningSim {
            keystone_url,
            cinder_url,
            sim: self.clone(),
            stop,
            tasks,
        })
    }

    /// The state, with every due transition applied.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the data half-written
        // in a way that matters to a simulator; keep serving.
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.advance();
        state
    }

    /// Counts a call of `op` as it arrives; the result counts its answer.
    pub(crate) fn begin_call(&self, op: Op) -> Answering {
        self.inner.counters.begin(op)
    }

    /// What happens to this call of `op` (on `project`, for Cinder's
    /// project routes): a queued fault, else a chaos draw, else nothing.
    pub(crate) fn misbehaviour(&self, op: Op, project: Option<&str>) -> Misbehaviour {
        self.inner.faults.next(op, project)
    }

    /// Calls of `op` since start or the last [`Sim::reset_calls`].
    pub fn calls(&self, op: Op) -> u64 {
        self.inner.counters.get(op)
    }

    /// Non-zero call counters, keyed by [`Op::name`].
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.counters.all()
    }

    /// Answered calls by service, operation and the status of the answer
    /// actually given (an injected fault's or chaos' included; a cut
    /// connection's is [`CallCount::NO_ANSWER`]), sorted by service, then
    /// operation, then status. A call is counted here once answered, so a
    /// call still under way is in [`Sim::calls`] but not yet here.
    pub fn calls_by_status(&self) -> Vec<CallCount> {
        self.inner.counters.by_status()
    }

    /// Sets all call counters to zero, those of [`Sim::calls_by_status`] too.
    pub fn reset_calls(&self) {
        self.inner.counters.reset();
    }

    /// How long backups take to create (and to delete). Applies to running
    /// ones too: a backup is done once `created_at + duration` has passed,
    /// so `Duration::ZERO` finishes every pending backup at once.
    pub fn set_backup_duration(&self, d: Duration) {
        let mut state = self.state();
        state.backup_duration = d;
        state.advance();
    }

    /// Ends every backup in `creating` or `deleting` now, whatever the duration.
    pub fn finish_pending(&self) {
        self.state().finish_pending();
    }

    /// While `Some`, backups accepted from now on end in `error` with this
    /// `fail_reason` (their snapshot goes back to `available`).
    pub fn fail_backups(&self, reason: Option<String>) {
        self.state().fail_reason = reason;
    }

    /// Queues a fault; it fires on the next `times` calls of its operation.
    pub fn inject(&self, fault: Fault) {
        self.inner.faults.push(None, fault);
    }

    /// Queues a fault that fires only on calls whose path names
    /// `project_id` (Cinder's `/v3/{project_id}/...`): the next `times` such
    /// calls of its operation. Other projects' calls, Cinder's version
    /// documents and Keystone never take it.
    pub fn inject_for(&self, project_id: &str, fault: Fault) {
        self.inner.faults.push(Some(project_id), fault);
    }

    /// Turns the random chaos mode on (`Some`) or off (`None`); see
    /// [`Chaos`]. Every call is still counted by [`Sim::calls`].
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.inner.faults.set_chaos(chaos);
    }

    /// The chaos in force, as last set; `None` when it is off.
    pub fn chaos(&self) -> Option<Chaos> {
        self.inner.faults.chaos()
    }

    /// How many calls chaos has delayed, failed or cut since start.
    pub fn chaos_stats(&self) -> ChaosStats {
        self.inner.faults.stats()
    }

    /// Sets a project's backup quotas (no usage check, unlike the API).
    pub fn set_quotas(&self, project_id: &str, q: Quotas) {
        if let Some(tenant) = self.state().tenant_mut(project_id) {
            tenant.quotas = q;
        }
    }

    /// Sets a snapshot's status (e.g. `backing-up`, `error`).
    pub fn set_snapshot_status(&self, snapshot_id: &str, status: &str) {
        if let Some(snapshot) = self.state().snapshot_mut(snapshot_id) {
            snapshot.status = status.to_owned();
            snapshot.updated_at = Utc::now();
        }
    }

    /// Adds (or replaces) a volume of a project.
    pub fn add_volume(&self, project_id: &str, v: VolumeSeed) {
        self.state().insert_volume(project_id, v, Utc::now());
    }

    /// Adds (or replaces) a snapshot of a project; it is the newest.
    pub fn add_snapshot(&self, project_id: &str, s: SnapshotSeed) {
        self.state().insert_snapshot(project_id, s, Utc::now());
    }

    /// Removes a snapshot at once, as if deleted by its owner.
    pub fn delete_snapshot(&self, snapshot_id: &str) {
        self.state().remove_snapshot(snapshot_id);
    }

    /// Removes a backup at once, as if deleted outside the gateway.
    pub fn delete_backup(&self, backup_id: &str) {
        self.state().remove_backup(backup_id);
    }

    /// A project's backups, newest first, as Cinder's show at 3.43 renders them.
    pub fn backups(&self, project_id: &str) -> Vec<Value> {
        let state = self.state();
        let base = state
            .urls
            .as_ref()
            .map(|u| u.cinder.clone())
            .unwrap_or_else(|| "http://127.0.0.1".to_owned());
        let version = Microversion {
            major: 3,
            minor: 43,
        };
        state
            .backups()
            .newest_first(project_id)
            .map(|b| cinder::backups::render_detail(b, version, &base, false))
            .collect()
    }

    /// How many backups there are in each status, over all projects.
    pub fn backup_counts(&self) -> BackupCounts {
        self.state().backups().counts()
    }

    /// Sets a backup's status (e.g. `restoring`, or one a newer Cinder
    /// might report); it no longer moves on by itself.
    pub fn set_backup_status(&self, backup_id: &str, status: &str) {
        self.state().set_backup_status(backup_id, status);
    }

    /// A snapshot's current status, if it exists.
    pub fn snapshot_status(&self, snapshot_id: &str) -> Option<String> {
        self.state().snapshot(snapshot_id).map(|s| s.status.clone())
    }

    /// Makes every token issued so far expired: Cinder answers them 401.
    pub fn expire_tokens(&self) {
        let now = Utc::now();
        for token in self.state().tokens.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, d: Duration) {
        self.state().token_ttl = d;
    }
}

/// A started simulator. Dropping it (or [`RunningSim::shutdown`]) stops both listeners.
#[derive(Debug)]
pub struct RunningSim {
    /// Keystone's v3 root, `http://127.0.0.1:P1/v3` (the `auth_url`).
    pub keystone_url: String,
    /// Cinder's version root, `http://127.0.0.1:P2`.
    pub cinder_url: String,
    /// The simulator, for control calls.
    pub sim: Sim,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSim {
    /// Cinder's project endpoint as the catalog lists it: `{cinder_url}/v3/{project_id}`.
    pub fn endpoint(&self, project_id: &str) -> String {
        format!("{}/v3/{project_id}", self.cinder_url)
    }

    /// An openstacksdk `clouds.yaml` with one cloud per tenant, named after
    /// it, using its first application credential (tenants without one use
    /// their first user's password).
    pub fn clouds_yaml(&self) -> String {
        let state = self.sim.state();
        let mut out = String::from("clouds:\n");
        for tenant in &state.tenants {
            let auth = if let Some(cred) = tenant.app_credentials.first() {
                format!(
                    "    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}\n      application_credential_id: {}\n      application_credential_secret: {}\n",
                    yaml_str(&self.keystone_url),
                    yaml_str(&cred.id),
                    yaml_str(&cred.secret)
                )
            } else if let Some(user) = tenant.users.first() {
                format!(
                    "    auth_type: password\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      user_domain_name: Default\n      project_id: {}\n",
                    yaml_str(&self.keystone_url),
                    yaml_str(&user.name),
                    yaml_str(&user.password),
                    yaml_str(&tenant.project_id)
                )
            } else {
                continue;
            };
            out.push_str(&format!("  {}:\n{auth}", yaml_str(&tenant.name)));
            out.push_str("    region_name: RegionOne\n    interface: public\n");
        }
        out
    }

    /// Stops both listeners and waits for open connections to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A YAML scalar: plain when it is safe, else double-quoted with escapes.
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'))
        && !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | ':' | '/' | '.'))
        && !s.contains(": ")
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "null" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        return s.to_owned();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::yaml_str;

    #[test]
    fn yaml_scalars_are_quoted_when_needed() {
        assert_eq!(yaml_str("tenant-a"), "tenant-a");
        assert_eq!(
            yaml_str("http://127.0.0.1:5000/v3"),
            "http://127.0.0.1:5000/v3"
        );
        assert_eq!(yaml_str("true"), "\"true\"");
        assert_eq!(yaml_str("12"), "\"12\"");
        assert_eq!(yaml_str("a b"), "\"a b\"");
        assert_eq!(yaml_str("x\"y"), "\"x\\\"y\"");
    }
}
