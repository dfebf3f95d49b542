//! Snapshot reads for a tenant: as Cinder lists them, plus the jobs and
//! backups made from one snapshot.

use super::{Error, Jobs, model::Job, submission::snapshot_error, validation::check_snapshot_id};
use crate::{
    openstack::{Backup, BackupFilter, CallContext, Page, Snapshot},
    store::JobFilter,
};

/// Most jobs shown for one snapshot.
const SNAPSHOT_JOBS_LIMIT: u32 = 100;

/// Most of the volume's backups read for one snapshot's view (newest
/// first, as Cinder lists them).
const SNAPSHOT_BACKUPS_LIMIT: usize = 1000;

/// What has been made from one snapshot.
#[derive(Debug)]
pub struct SnapshotBackups {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The gateway's jobs of it, newest first.
    pub jobs: Vec<Job>,
    /// Cinder's backups of it (by the gateway or anyone else).
    pub backups: Vec<Backup>,
}

/// A read has nothing Cinder could refuse but the caller's rights (401,
/// 403) or the resource (404): any other refusal of one (a 400, a 413) is
/// an answer the gateway did not expect, not a refused backup or a spent
/// quota, which is what it would mean to a create.
fn read_error(e: crate::openstack::Error) -> crate::openstack::Error {
    match e {
        crate::openstack::Error::Cinder {
            status,
            fault,
            message,
            request_id,
        } if !matches!(status, 401 | 403 | 404) => crate::openstack::Error::Unexpected {
            service: crate::openstack::error::Service::Cinder,
            status: Some(status),
            message: format!("a read answered {status} {fault}: {message}"),
            request_id,
        },
        other => other,
    }
}

/// What a failed snapshot listing means. A listing names no snapshot the
/// caller asked for, so Cinder's 404 there (its endpoint not being what the
/// catalog says, or the marker of a follow-up look gone meanwhile) is an
/// answer the gateway did not expect, never "snapshot not found".
fn listing_error(e: crate::openstack::Error) -> crate::openstack::Error {
    match e {
        crate::openstack::Error::Cinder {
            status: 404,
            fault,
            message,
            request_id,
        } => crate::openstack::Error::Unexpected {
            service: crate::openstack::error::Service::Cinder,
            status: Some(404),
            message: format!("the snapshot listing answered 404 {fault}: {message}"),
            request_id,
        },
        other => read_error(other),
    }
}

impl Jobs {
    /// One page of the tenant's snapshots, with a marker for the next page
    /// only when there is one.
    pub async fn list_snapshots(
        &self,
        tenant: &str,
        limit: u32,
        marker: Option<&str>,
        ctx: &CallContext,
    ) -> Result<Page<Snapshot>, Error> {
        let cloud = self.tenants.cloud(tenant)?;
        // Cinder links a next page whenever a page is full, even the last
        // one: asking for one more than the page tells whether another
        // follows.
        let asked = limit.saturating_add(1);
        match self.cinder.list_snapshots(cloud, asked, marker, ctx).await {
            Ok(mut page) => {
                let limit = limit as usize;
                if page.items.len() > limit {
                    page.items.truncate(limit);
                    page.next_marker = page.items.last().map(|s| s.id.clone());
                } else if let Some(last) = page.next_marker.clone() {
                    // Fewer than asked, yet linked: Cinder's own largest
                    // page (`osapi_max_limit`) cut it, and it links every
                    // full page. One more snapshot after it says whether
                    // another page follows.
                    let after = self
                        .cinder
                        .list_snapshots(cloud, 1, Some(&last), ctx)
                        .await
                        .map_err(listing_error)?;
                    if after.items.is_empty() {
                        page.next_marker = None;
                    }
                }
                Ok(page)
            }
            // Cinder's 404 names the marker (the snapshot a page token
            // continues after, deleted since), not a missing snapshot.
            Err(crate::openstack::Error::Cinder { status: 404, .. }) if marker.is_some() => {
                Err(Error::Invalid(
                    "`page_token` no longer leads anywhere (the snapshot it continues after is gone); list again from the first page".into(),
                ))
            }
            Err(e) => Err(listing_error(e).into()),
        }
    }

    /// One snapshot of the tenant.
    pub async fn snapshot(
        &self,
        tenant: &str,
        id: &str,
        ctx: &CallContext,
    ) -> Result<Snapshot, Error> {
        check_snapshot_id(id)?;
        let cloud = self.tenants.cloud(tenant)?;
        self.cinder
            .show_snapshot(cloud, id, ctx)
            .await
            .map_err(|e| snapshot_error(id, read_error(e)))
    }

    /// A snapshot with the jobs and backups made from it. Cinder cannot
    /// filter backups by snapshot, so the snapshot's volume is listed and
    /// filtered here.
    pub async fn snapshot_backups(
        &self,
        tenant: &str,
        id: &str,
        ctx: &CallContext,
    ) -> Result<SnapshotBackups, Error> {
        check_snapshot_id(id)?;
        let (cloud, project_id) = self.tenant(tenant).await?;
        let snapshot = self
            .cinder
            .show_snapshot(&cloud, id, ctx)
            .await
            .map_err(|e| snapshot_error(id, read_error(e)))?;
        let filter = JobFilter {
            snapshot_id: Some(snapshot.id.clone()),
            ..Default::default()
        };
        let jobs = self
            .store
            .list(&project_id, &filter, SNAPSHOT_JOBS_LIMIT, None)
            .await?;
        self.shown(&jobs).await;
        let backup_filter = BackupFilter {
            volume_id: Some(snapshot.volume_id.clone()),
            // One request never costs unbounded upstream work.
            at_most: Some(SNAPSHOT_BACKUPS_LIMIT),
            ..Default::default()
        };
        let backups = self
            .cinder
            .list_backups(&cloud, &backup_filter, ctx)
            .await
            .map_err(read_error)?
            .into_iter()
            .filter(|b| b.snapshot_id.as_deref() == Some(snapshot.id.as_str()))
            .collect();
        Ok(SnapshotBackups {
            snapshot,
            jobs,
            backups,
        })
    }
}
