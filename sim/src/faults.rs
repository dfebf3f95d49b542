//! Injected faults: a queue of misbehaviours, each tied to one operation and
//! consumed as it fires. Knows nothing of how a fault is acted out (that is
//! the HTTP layer's job, see `server.rs` for dropped connections).

use std::sync::Mutex;
use std::time::Duration;

use crate::Op;

/// A fault to fire on the next `times` calls of `op`.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The operation it applies to.
    pub op: Op,
    /// What happens.
    pub kind: FaultKind,
    /// How many calls it affects before it is used up.
    pub times: u32,
}

/// How a call misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer this status without doing the work, with the body the service
    /// would send (Cinder `computeFault`/`serviceUnavailable`..., Keystone `error`).
    Status(u16),
    /// Close the connection without an answer; nothing is done.
    DropBeforeWork,
    /// Do the work (e.g. create the backup), then close the connection
    /// without an answer: a lost `202`.
    DropAfterWork,
    /// Wait this long, then answer normally.
    Delay(Duration),
}

/// The queue of pending faults.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    pending: Mutex<Vec<Fault>>,
}

impl FaultQueue {
    /// Adds a fault behind those already queued.
    pub(crate) fn push(&self, fault: Fault) {
        if fault.times == 0 {
            return;
        }
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    /// The first queued fault for `op`, used up by one if it fires now.
    pub(crate) fn take(&self, op: Op) -> Option<FaultKind> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let index = pending.iter().position(|f| f.op == op)?;
        let fault = &mut pending[index];
        let kind = fault.kind.clone();
        fault.times -= 1;
        if fault.times == 0 {
            pending.remove(index);
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_fires_times_then_is_gone() {
        let queue = FaultQueue::default();
        queue.push(Fault {
            op: Op::BackupCreate,
            kind: FaultKind::Status(503),
            times: 2,
        });
        assert_eq!(queue.take(Op::SnapshotShow), None);
        assert_eq!(queue.take(Op::BackupCreate), Some(FaultKind::Status(503)));
        assert_eq!(queue.take(Op::BackupCreate), Some(FaultKind::Status(503)));
        assert_eq!(queue.take(Op::BackupCreate), None);
    }
}
