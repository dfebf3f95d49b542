//! The simulator over real HTTP, checked against the Keystone and Cinder
//! API references and the recorded exchanges (`sim/tests/recordings/`,
//! cited by number). No test depends on timing: backups finish through
//! `Sim::finish_pending`.

mod backups;
mod binary;
mod control;
mod faults;
mod keystone;
mod pipeline;
mod replay;
mod scale;
mod snapshots;
mod support;
