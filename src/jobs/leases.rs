//! Per-tenant leases: which tenants this replica's worker polls and
//! submits for. Several replicas on one store share the tenants through
//! lease rows in the store; nothing else coordinates them.
//!
//! Each cycle the replica records itself alive, renews what it holds, and
//! aims at its fair share of the tenants that have unfinished jobs (their
//! number over the replicas seen alive, rounded up): it takes free or
//! expired leases up to that share and gives back what is above it, so that
//! tenants spread over the replicas. A replica that dies stops renewing;
//! its leases expire after `ttl` and the others take them over. Every job
//! write of the worker carries the lease ([`Fence`]), so a replica that
//! lost a lease can no longer change that tenant's jobs.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::store::{Fence, HeldLease, JobStore, TenantKey};

/// Who this replica is and how long its leases last.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// This replica's name in the store (lease holder).
    pub replica: String,
    /// How long a lease lasts without renewal: the longest a dead replica's
    /// tenants wait before another replica takes them over.
    pub ttl: Duration,
}

/// The leases this replica holds.
pub struct Leases {
    store: Arc<dyn JobStore>,
    settings: LeaseSettings,
    /// The tenants this process took, with the generation of its tenure.
    held: Mutex<BTreeMap<TenantKey, i64>>,
    /// One renewal or claim at a time: a renewal must never see a lease a
    /// claim has just taken but not yet noted.
    turn: tokio::sync::Mutex<()>,
}

impl Leases {
    /// No leases held yet.
    pub fn new(store: Arc<dyn JobStore>, settings: LeaseSettings) -> Self {
        Leases {
            store,
            settings,
            held: Mutex::default(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.settings.replica
    }

    /// How often leases are renewed: well within their time to live.
    pub fn renew_every(&self) -> Duration {
        (self.settings.ttl / 3).max(Duration::from_millis(100))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TenantKey, i64>> {
        // A plain map: nothing a panic elsewhere could leave half-done.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenants held now.
    pub fn held(&self) -> Vec<TenantKey> {
        self.lock().keys().cloned().collect()
    }

    fn fence(&self, generation: i64) -> Fence {
        Fence {
            holder: self.settings.replica.clone(),
            generation,
        }
    }

    /// Records this replica alive and renews its leases; how many replicas
    /// are alive. A lease that could not be renewed is forgotten.
    pub async fn renew(&self) -> Result<u32, crate::store::Error> {
        let _turn = self.turn.lock().await;
        self.renew_in_turn().await
    }

    async fn renew_in_turn(&self) -> Result<u32, crate::store::Error> {
        let live = self
            .store
            .heartbeat(&self.settings.replica, self.settings.ttl)
            .await?;
        let renewed = self
            .store
            .renew_leases(&self.settings.replica, self.settings.ttl)
            .await?;
        // Leases under this name that this process did not take are an
        // earlier life's (a restart with the same name): given back, so that
        // whoever takes them next starts a new tenure.
        let (mine, strays): (Vec<HeldLease>, Vec<HeldLease>) = {
            let held = self.lock();
            renewed
                .into_iter()
                .partition(|l| held.get(&l.tenant) == Some(&l.generation))
        };
        {
            let mut held = self.lock();
            for lost in held
                .keys()
                .filter(|k| !mine.iter().any(|l| &l.tenant == *k))
            {
                tracing::warn!(cloud = %lost.cloud, project_id = %lost.project_id, "lost the lease on a tenant; another replica works it now");
            }
            *held = mine.into_iter().map(|l| (l.tenant, l.generation)).collect();
        }
        for stray in strays {
            self.store
                .release_lease(&stray.tenant, &self.settings.replica)
                .await?;
        }
        Ok(live)
    }

    /// Decides which of the tenants with unfinished jobs (`wanted`) this
    /// replica works now, and the fence of each. Leases above the fair
    /// share, or of tenants with nothing to do, are given back unless their
    /// pass still runs (`busy`).
    pub async fn claim(
        &self,
        wanted: &BTreeSet<TenantKey>,
        busy: &BTreeSet<TenantKey>,
    ) -> Result<BTreeMap<TenantKey, Fence>, crate::store::Error> {
        let _turn = self.turn.lock().await;
        let live = self.renew_in_turn().await?;
        let share = wanted.len().div_ceil(live as usize);
        let held = self.held();
        // Give back what this replica need not hold: tenants with nothing
        // to do, then (idle ones first) those above the share.
        let (mut keep, idle): (Vec<TenantKey>, Vec<TenantKey>) =
            held.into_iter().partition(|k| wanted.contains(k));
        let mut give_back: Vec<TenantKey> =
            idle.into_iter().filter(|k| !busy.contains(k)).collect();
        keep.sort_by_key(|k| busy.contains(k));
        while keep.len() > share {
            match keep.first() {
                Some(first) if !busy.contains(first) => give_back.push(keep.remove(0)),
                _ => break,
            }
        }
        for tenant in give_back {
            self.store
                .release_lease(&tenant, &self.settings.replica)
                .await?;
            self.lock().remove(&tenant);
            tracing::debug!(cloud = %tenant.cloud, project_id = %tenant.project_id, "gave back a tenant's lease");
        }
        // Take free or expired leases up to the share, in an order of this
        // replica's own so that replicas starting together spread out.
        let mut free: Vec<&TenantKey> = wanted
            .iter()
            .filter(|k| !self.lock().contains_key(*k))
            .collect();
        fastrand::shuffle(&mut free);
        for tenant in free {
            if self.lock().len() >= share {
                break;
            }
            if let Some(generation) = self
                .store
                .acquire_lease(tenant, &self.settings.replica, self.settings.ttl)
                .await?
            {
                tracing::info!(cloud = %tenant.cloud, project_id = %tenant.project_id, generation, "took a tenant's lease");
                self.lock().insert(tenant.clone(), generation);
            }
        }
        Ok(self
            .lock()
            .iter()
            .filter(|(k, _)| wanted.contains(*k))
            .map(|(k, g)| (k.clone(), self.fence(*g)))
            .collect())
    }

    /// Gives back every lease and forgets this replica (graceful shutdown):
    /// other replicas take its tenants at once instead of after `ttl`.
    pub async fn release_all(&self) {
        let _turn = self.turn.lock().await;
        match self.store.leave(&self.settings.replica).await {
            Ok(()) => {
                self.lock().clear();
                tracing::info!("gave back every tenant lease");
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not give back the tenant leases; they expire on their own");
            }
        }
    }
}
