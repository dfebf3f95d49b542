//! The simulator over real HTTP, checked against `shared/OPENSTACK-API.md`
//! and the recorded exchanges (`shared/openstack/exchanges/`, cited by
//! number). No test depends on timing: backups finish through
//! `Sim::finish_pending`.

mod backups;
mod faults;
mod keystone;
mod pipeline;
mod replay;
mod snapshots;
mod support;
