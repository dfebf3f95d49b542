//! The operations the simulator serves, by name, and how often each was
//! called, and answered with which status. Tests use the counters to assert
//! what the gateway did upstream; benchmarks, to count its calls by outcome.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

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

    /// The service that serves it: `keystone` or `cinder`.
    pub fn service(self) -> &'static str {
        if self.is_keystone() {
            "keystone"
        } else {
            "cinder"
        }
    }

    /// Whether the operation belongs to Keystone (error bodies differ).
    pub(crate) fn is_keystone(self) -> bool {
        matches!(self, Op::TokenIssue | Op::TokenValidate)
    }
}

/// How many calls of one operation got one answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallCount {
    /// `keystone` or `cinder` ([`Op::service`]).
    pub service: &'static str,
    /// The operation, [`Op::name`].
    pub operation: &'static str,
    /// The HTTP status of the answer given, faults' and chaos' included;
    /// [`CallCount::NO_ANSWER`] when the connection was cut instead.
    pub status: u16,
    /// How many such calls since start or the last reset.
    pub count: u64,
}

impl CallCount {
    /// The status of a call that got no answer: its connection was cut by a
    /// fault or chaos (before or after the work), or the call was abandoned
    /// before it was answered. No HTTP status is 0.
    pub const NO_ANSWER: u16 = 0;
}

/// The counts themselves, under one lock so that a reset clears both at once.
#[derive(Debug, Default)]
struct Counts {
    /// By operation, counted as a call arrives.
    calls: BTreeMap<Op, u64>,
    /// By `(service, operation, status)`, counted as it is answered.
    answers: BTreeMap<(&'static str, &'static str, u16), u64>,
}

/// Call counters, per operation and per answer.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    counts: Mutex<Counts>,
}

impl CallCounters {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one call of `op` (every request routed to it, answered or
    /// not) and returns what counts its answer. The per-operation count is
    /// taken on arrival so that a test sees a call that is still delayed.
    pub(crate) fn begin(self: &Arc<Self>, op: Op) -> Answering {
        *self.counts().calls.entry(op).or_default() += 1;
        Answering {
            counters: Arc::clone(self),
            op,
            status: CallCount::NO_ANSWER,
        }
    }

    /// Calls of `op` since start or the last reset.
    pub(crate) fn get(&self, op: Op) -> u64 {
        self.counts().calls.get(&op).copied().unwrap_or(0)
    }

    /// All non-zero counters by operation name.
    pub(crate) fn all(&self) -> BTreeMap<String, u64> {
        self.counts()
            .calls
            .iter()
            .map(|(op, n)| (op.name().to_owned(), *n))
            .collect()
    }

    /// Answered calls by service, operation and status, in that order.
    pub(crate) fn by_status(&self) -> Vec<CallCount> {
        self.counts()
            .answers
            .iter()
            .map(|(&(service, operation, status), &count)| CallCount {
                service,
                operation,
                status,
                count,
            })
            .collect()
    }

    /// Sets every counter back to zero.
    pub(crate) fn reset(&self) {
        *self.counts() = Counts::default();
    }
}

/// One call under way: counts its answer when dropped, with the status
/// given to [`Answering::answered`], or [`CallCount::NO_ANSWER`] if the
/// call ended without one (its future dropped, its task gone).
#[derive(Debug)]
pub(crate) struct Answering {
    counters: Arc<CallCounters>,
    op: Op,
    status: u16,
}

impl Answering {
    /// The call was answered `status` ([`CallCount::NO_ANSWER`]: its
    /// connection was cut instead).
    pub(crate) fn answered(mut self, status: u16) {
        self.status = status;
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let key = (self.op.service(), self.op.name(), self.status);
        *self.counters.counts().answers.entry(key).or_default() += 1;
    }
}
