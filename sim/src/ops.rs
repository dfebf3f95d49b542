//! The operations the simulator serves, by name, and how often each was
//! called. Tests use the counters to assert what the gateway did upstream.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One API operation of the simulated Keystone or Cinder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `POST /v3/auth/tokens` (Keystone).
    TokenIssue,
    /// `GET`/`HEAD`/`DELETE /v3/auth/tokens` (Keystone).
    TokenValidate,
    /// `GET /` and `GET /v3/` on Cinder (version discovery).
    Versions,
    /// `GET /v3/{project}/snapshots`.
    SnapshotList,
    /// `GET /v3/{project}/snapshots/detail`.
    SnapshotDetail,
    /// `GET /v3/{project}/snapshots/{id}`.
    SnapshotShow,
    /// `GET /v3/{project}/volumes/{id}`.
    VolumeShow,
    /// `POST /v3/{project}/backups`.
    BackupCreate,
    /// `GET /v3/{project}/backups`.
    BackupList,
    /// `GET /v3/{project}/backups/detail`.
    BackupDetail,
    /// `GET /v3/{project}/backups/{id}`.
    BackupShow,
    /// `DELETE /v3/{project}/backups/{id}`.
    BackupDelete,
    /// `GET /v3/{project}/os-quota-sets/{target}`.
    QuotaShow,
    /// `PUT /v3/{project}/os-quota-sets/{target}` (admin).
    QuotaUpdate,
    /// `POST /v3/{project}/snapshots/{id}/action` (admin `os-reset_status`).
    SnapshotAction,
}

impl Op {
    /// The name used as key in [`crate::Sim::call_counts`]: the variant name.
    pub fn name(self) -> &'static str {
        match self {
            Op::TokenIssue => "TokenIssue",
            Op::TokenValidate => "TokenValidate",
            Op::Versions => "Versions",
            Op::SnapshotList => "SnapshotList",
            Op::SnapshotDetail => "SnapshotDetail",
            Op::SnapshotShow => "SnapshotShow",
            Op::VolumeShow => "VolumeShow",
            Op::BackupCreate => "BackupCreate",
            Op::BackupList => "BackupList",
            Op::BackupDetail => "BackupDetail",
            Op::BackupShow => "BackupShow",
            Op::BackupDelete => "BackupDelete",
            Op::QuotaShow => "QuotaShow",
            Op::QuotaUpdate => "QuotaUpdate",
            Op::SnapshotAction => "SnapshotAction",
        }
    }

    /// Whether the operation belongs to Keystone (error bodies differ).
    pub(crate) fn is_keystone(self) -> bool {
        matches!(self, Op::TokenIssue | Op::TokenValidate)
    }
}

/// Per-operation call counters.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    counts: Mutex<BTreeMap<Op, u64>>,
}

impl CallCounters {
    /// Counts one call of `op` (every request routed to it, answered or not).
    pub(crate) fn record(&self, op: Op) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(op).or_default() += 1;
    }

    /// Calls of `op` since start or the last reset.
    pub(crate) fn get(&self, op: Op) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&op).copied().unwrap_or(0)
    }

    /// All non-zero counters by operation name.
    pub(crate) fn all(&self) -> BTreeMap<String, u64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .map(|(op, n)| (op.name().to_owned(), *n))
            .collect()
    }

    /// Sets every counter back to zero.
    pub(crate) fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
