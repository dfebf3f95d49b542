//! Injected faults: a queue of misbehaviours, each tied to one operation
//! (and optionally one project) and consumed as it fires, and a random
//! "chaos" mode that misbehaves on a fraction of calls. Decides what a call
//! suffers; knows nothing of how it is acted out (that is the HTTP layer's
//! job, see `server.rs` for dropped connections and bare answers).

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
    /// Answer this status without doing the work, with a short `text/html`
    /// body and none of the service's headers: what a proxy or load
    /// balancer in front of the service answers (a rate limit's 429, a
    /// 408, a 502 or 504 from a gateway whose backend is gone).
    BareStatus(u16),
    /// Close the connection without an answer; nothing is done.
    DropBeforeWork,
    /// Do the work (e.g. create the backup), then close the connection
    /// without an answer: a lost `202`.
    DropAfterWork,
    /// Wait this long, then answer normally.
    Delay(Duration),
}

/// Random misbehaviour, drawn afresh for every call it applies to: Cinder's
/// operations, and Keystone's token issue when [`Chaos::keystone`] is set.
///
/// Each call first draws whether it is delayed (`latency_rate`), then what
/// happens to it: closed before any work (`drop_before_rate`), answered an
/// error without the work (`error_rate`), worked and then closed without an
/// answer (`drop_after_rate`), or served normally. These three outcomes
/// exclude each other; their rates should add up to at most 1 (past 1 the
/// later ones get what is left). Queued faults ([`crate::Sim::inject`])
/// fire first: a call that takes one is spared the chaos.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    /// Fraction of calls answered `error_status`, with the service's error
    /// body, without the work.
    pub error_rate: f64,
    /// Status of those errors; 503 (Cinder's `serviceUnavailable`) by default.
    pub error_status: u16,
    /// Fraction of calls delayed by `latency` before anything else happens
    /// (1.0 delays every call).
    pub latency_rate: f64,
    /// The delay of a delayed call.
    pub latency: Duration,
    /// Fraction of calls whose connection is closed before any work.
    pub drop_before_rate: f64,
    /// Fraction of calls that do the work, then lose their answer (the
    /// connection is closed): a `202` that never arrives.
    pub drop_after_rate: f64,
    /// Whether Keystone's token issue suffers too. Off by default: a token
    /// lives an hour, so a client meets Keystone seldom and chaos there
    /// mostly slows start-up; a lost token answer only leaves an unused
    /// token behind.
    pub keystone: bool,
    /// Seed of the draws. The same seed and the same order of calls give
    /// the same faults; `None` seeds from the clock.
    pub seed: Option<u64>,
}

impl Default for Chaos {
    /// No misbehaviour at all; errors, when enabled, are 503s.
    fn default() -> Self {
        Chaos {
            error_rate: 0.0,
            error_status: 503,
            latency_rate: 0.0,
            latency: Duration::ZERO,
            drop_before_rate: 0.0,
            drop_after_rate: 0.0,
            keystone: false,
            seed: None,
        }
    }
}

/// How many calls chaos has hit so far, by kind of misbehaviour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosStats {
    /// Calls delayed by [`Chaos::latency`].
    pub delayed: u64,
    /// Calls answered an error.
    pub errors: u64,
    /// Calls closed before the work.
    pub dropped_before: u64,
    /// Calls whose answer was lost after the work.
    pub dropped_after: u64,
}

/// What happens to one call, after an optional delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// The service's error answer, no work.
    Status(u16),
    /// A proxy's bare answer, no work.
    BareStatus(u16),
    /// Connection closed, no work.
    DropBeforeWork,
    /// Work done, answer lost.
    DropAfterWork,
}

/// The misbehaviour of one call: wait `delay`, then `act` (or serve).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Misbehaviour {
    pub(crate) delay: Option<Duration>,
    pub(crate) act: Option<Act>,
}

impl From<FaultKind> for Misbehaviour {
    fn from(kind: FaultKind) -> Self {
        let act = match kind {
            FaultKind::Delay(d) => {
                return Misbehaviour {
                    delay: Some(d),
                    act: None,
                };
            }
            FaultKind::Status(code) => Act::Status(code),
            FaultKind::BareStatus(code) => Act::BareStatus(code),
            FaultKind::DropBeforeWork => Act::DropBeforeWork,
            FaultKind::DropAfterWork => Act::DropAfterWork,
        };
        Misbehaviour {
            delay: None,
            act: Some(act),
        }
    }
}

/// A queued fault and the project it is limited to.
#[derive(Debug)]
struct Pending {
    project: Option<String>,
    fault: Fault,
}

/// The queue of pending faults and the chaos settings.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Mutex<Vec<Pending>>,
    chaos: Mutex<Option<ChaosState>>,
    stats: Mutex<ChaosStats>,
}

#[derive(Debug)]
struct ChaosState {
    chaos: Chaos,
    rng: fastrand::Rng,
}

impl Faults {
    /// Adds a fault behind those already queued; with a `project`, it fires
    /// only on calls whose path names that project.
    pub(crate) fn push(&self, project: Option<&str>, fault: Fault) {
        if fault.times == 0 {
            return;
        }
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pending {
                project: project.map(str::to_owned),
                fault,
            });
    }

    /// Sets or clears the chaos mode.
    pub(crate) fn set_chaos(&self, chaos: Option<Chaos>) {
        let state = chaos.map(|chaos| {
            let rng = chaos
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
            ChaosState { chaos, rng }
        });
        *self.chaos.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The chaos in force, if any.
    pub(crate) fn chaos(&self) -> Option<Chaos> {
        self.chaos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|state| state.chaos.clone())
    }

    /// What chaos has done so far.
    pub(crate) fn stats(&self) -> ChaosStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What happens to a call of `op` on `project` (`None` where the path
    /// names none): the first matching queued fault, used up by one, or
    /// else a chaos draw.
    pub(crate) fn next(&self, op: Op, project: Option<&str>) -> Misbehaviour {
        if let Some(kind) = self.take(op, project) {
            return kind.into();
        }
        self.draw(op)
    }

    fn take(&self, op: Op, project: Option<&str>) -> Option<FaultKind> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let index = pending.iter().position(|p| {
            p.fault.op == op
                && p.project
                    .as_deref()
                    .is_none_or(|want| project == Some(want))
        })?;
        let fault = &mut pending[index].fault;
        let kind = fault.kind.clone();
        fault.times -= 1;
        if fault.times == 0 {
            pending.remove(index);
        }
        Some(kind)
    }

    fn draw(&self, op: Op) -> Misbehaviour {
        let mut guard = self.chaos.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = guard.as_mut() else {
            return Misbehaviour::default();
        };
        let applies = match op {
            Op::TokenIssue => state.chaos.keystone,
            op => !op.is_keystone(),
        };
        if !applies {
            return Misbehaviour::default();
        }
        let chaos = &state.chaos;
        let delay = (state.rng.f64() < chaos.latency_rate && !chaos.latency.is_zero())
            .then_some(chaos.latency);
        let roll = state.rng.f64();
        let before = chaos.drop_before_rate;
        let error = before + chaos.error_rate;
        let after = error + chaos.drop_after_rate;
        let act = if roll < before {
            Some(Act::DropBeforeWork)
        } else if roll < error {
            Some(Act::Status(chaos.error_status))
        } else if roll < after {
            Some(Act::DropAfterWork)
        } else {
            None
        };
        drop(guard);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.delayed += u64::from(delay.is_some());
        match act {
            Some(Act::DropBeforeWork) => stats.dropped_before += 1,
            Some(Act::Status(_)) => stats.errors += 1,
            Some(Act::DropAfterWork) => stats.dropped_after += 1,
            Some(Act::BareStatus(_)) | None => {}
        }
        Misbehaviour { delay, act }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, times: u32) -> Fault {
        Fault {
            op: Op::BackupCreate,
            kind,
            times,
        }
    }

    #[test]
    fn a_fault_fires_times_then_is_gone() {
        let faults = Faults::default();
        faults.push(None, fault(FaultKind::Status(503), 2));
        let status = Misbehaviour::from(FaultKind::Status(503));
        assert_eq!(faults.next(Op::SnapshotShow, None), Misbehaviour::default());
        assert_eq!(faults.next(Op::BackupCreate, Some("p")), status);
        assert_eq!(faults.next(Op::BackupCreate, None), status);
        assert_eq!(faults.next(Op::BackupCreate, None), Misbehaviour::default());
    }

    #[test]
    fn a_project_fault_fires_only_in_its_project() {
        let faults = Faults::default();
        faults.push(Some("b"), fault(FaultKind::DropBeforeWork, 1));
        faults.push(None, fault(FaultKind::Status(500), 1));
        // Project a skips b's fault and takes the general one.
        assert_eq!(
            faults.next(Op::BackupCreate, Some("a")),
            FaultKind::Status(500).into()
        );
        assert_eq!(
            faults.next(Op::BackupCreate, Some("a")),
            Misbehaviour::default()
        );
        assert_eq!(faults.next(Op::BackupCreate, None), Misbehaviour::default());
        assert_eq!(
            faults.next(Op::BackupCreate, Some("b")),
            FaultKind::DropBeforeWork.into()
        );
    }

    #[test]
    fn chaos_rates_are_roughly_kept_and_counted() {
        let faults = Faults::default();
        faults.set_chaos(Some(Chaos {
            error_rate: 0.3,
            latency_rate: 0.1,
            latency: Duration::from_secs(2),
            drop_before_rate: 0.1,
            drop_after_rate: 0.1,
            seed: Some(7),
            ..Chaos::default()
        }));
        let calls = 10_000;
        for _ in 0..calls {
            faults.next(Op::BackupDetail, Some("p"));
        }
        let stats = faults.stats();
        let near = |n: u64, rate: f64| (n as f64 / f64::from(calls) - rate).abs() < 0.03;
        assert!(near(stats.errors, 0.3), "{stats:?}");
        assert!(near(stats.delayed, 0.1), "{stats:?}");
        assert!(near(stats.dropped_before, 0.1), "{stats:?}");
        assert!(near(stats.dropped_after, 0.1), "{stats:?}");
    }

    #[test]
    fn chaos_spares_keystone_unless_asked_and_is_reproducible() {
        let every = Chaos {
            error_rate: 1.0,
            seed: Some(1),
            ..Chaos::default()
        };
        let faults = Faults::default();
        faults.set_chaos(Some(every.clone()));
        assert_eq!(faults.next(Op::TokenIssue, None), Misbehaviour::default());
        assert_eq!(
            faults.next(Op::Versions, None),
            FaultKind::Status(503).into()
        );
        faults.set_chaos(Some(Chaos {
            keystone: true,
            ..every
        }));
        assert_eq!(
            faults.next(Op::TokenIssue, None),
            FaultKind::Status(503).into()
        );
        assert_eq!(
            faults.next(Op::TokenValidate, None),
            Misbehaviour::default()
        );

        let mixed = Chaos {
            error_rate: 0.3,
            drop_after_rate: 0.3,
            seed: Some(42),
            ..Chaos::default()
        };
        let run = || {
            let faults = Faults::default();
            faults.set_chaos(Some(mixed.clone()));
            (0..50)
                .map(|_| faults.next(Op::BackupCreate, None))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());

        faults.set_chaos(None);
        assert_eq!(faults.next(Op::BackupCreate, None), Misbehaviour::default());
    }
}
