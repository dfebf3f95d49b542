//! The Cinder v3 calls the gateway makes, behind the [`Cinder`] trait, and
//! their implementation over HTTP ([`OpenStackClient`]).
//!
//! Every call gets the tenant's cached token, retries once with a fresh token
//! after a 401, propagates the caller's request id, and turns answers into
//! typed values or [`Error`]s. This module knows nothing of jobs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    UpstreamSettings,
    clouds::Cloud,
    error::{Error, Service},
    http::{fault_of, read_body, request_id_of, transport_error},
    microversion::Microversion,
    session::{HttpClients, Session},
};
use std::sync::Arc;

/// Most pages one listing follows: a guard against an upstream that keeps
/// answering full pages with the same marker.
const MAX_PAGES: usize = 10_000;

/// Per-call context carried to Cinder.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The gateway's request id (`req-<uuid>`), sent as `X-OpenStack-Request-ID`
    /// so that Cinder's logs can be matched with ours.
    pub request_id: Option<String>,
}

/// A volume snapshot as Cinder shows it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Snapshot {
    /// Snapshot id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `available`, `backing-up`, `creating`, ...
    pub status: String,
    /// The volume it was taken of (never changes).
    pub volume_id: String,
    /// Size in GiB.
    #[serde(default)]
    pub size: Option<u64>,
    /// Snapshot metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Creation time (Cinder's format, UTC without offset).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A backup as Cinder shows it (microversion 3.43, with metadata).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Backup {
    /// Backup id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `creating`, `available`, `error`, `deleting`, ...
    pub status: String,
    /// Why it failed, when `error`.
    #[serde(default)]
    pub fail_reason: Option<String>,
    /// The backed-up volume.
    #[serde(default)]
    pub volume_id: Option<String>,
    /// The snapshot it was made from.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Size in GiB.
    #[serde(default)]
    pub size: Option<u64>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Container.
    #[serde(default)]
    pub container: Option<String>,
    /// Incremental or full.
    #[serde(default)]
    pub is_incremental: Option<bool>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Metadata; the gateway's `gateway_job_id` lives here.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `x-openstack-request-id` of the answer that showed this backup (its
    /// own read, or the listing page it came on), so that a job's error can
    /// name it.
    #[serde(skip)]
    pub request_id: Option<String>,
}

/// What to back up, as Cinder's create call takes it.
#[derive(Debug, Clone, Serialize)]
pub struct NewBackup {
    /// The snapshot's volume (Cinder insists it matches the snapshot's).
    pub volume_id: String,
    /// The snapshot to back up.
    pub snapshot_id: String,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Incremental backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// Force (ignored by Cinder for snapshot backups, passed on as asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Object-store container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Availability zone (needs microversion 3.51).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Metadata (needs microversion 3.43).
    pub metadata: BTreeMap<String, String>,
}

/// Cinder's `202` to a backup create.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The new backup's id.
    pub backup_id: String,
    /// Cinder's request id.
    pub request_id: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Marker for the next page, when Cinder says there is one.
    pub next_marker: Option<String>,
}

/// Filters Cinder applies to backup listings (it has no others: metadata is
/// refused with a 400).
#[derive(Debug, Clone, Default)]
pub struct BackupFilter {
    /// `status=`.
    pub status: Option<String>,
    /// `volume_id=`.
    pub volume_id: Option<String>,
    /// Stop after this many backups (a view for a caller); `None` reads
    /// every page (the worker's conclusions need complete listings).
    pub at_most: Option<usize>,
    /// `sort=`, e.g. `updated_at:desc`; Cinder's default (`created_at:desc`)
    /// when `None`.
    pub sort: Option<&'static str>,
    /// Backups per page; `--upstream-page-size` when `None`.
    pub page_size: Option<u32>,
}

/// The Cinder calls of the gateway, for one tenant (clouds.yaml entry) each.
#[async_trait]
pub trait Cinder: Send + Sync {
    /// The Keystone project id of the cloud entry (from its token).
    async fn project_id(&self, cloud: &str) -> Result<String, Error>;
    /// One snapshot.
    async fn show_snapshot(
        &self,
        cloud: &str,
        id: &str,
        ctx: &CallContext,
    ) -> Result<Snapshot, Error>;
    /// One page of the tenant's snapshots, newest first.
    async fn list_snapshots(
        &self,
        cloud: &str,
        limit: u32,
        marker: Option<&str>,
        ctx: &CallContext,
    ) -> Result<Page<Snapshot>, Error>;
    /// Creates a backup; `202` gives its id.
    async fn create_backup(
        &self,
        cloud: &str,
        backup: &NewBackup,
        ctx: &CallContext,
    ) -> Result<Accepted, Error>;
    /// One backup.
    async fn show_backup(&self, cloud: &str, id: &str, ctx: &CallContext) -> Result<Backup, Error>;
    /// Every backup matching the filter, all pages read.
    async fn list_backups(
        &self,
        cloud: &str,
        filter: &BackupFilter,
        ctx: &CallContext,
    ) -> Result<Vec<Backup>, Error>;
    /// The id of every backup matching the filter, all pages read: the
    /// summary listing, a fraction of the detailed one, for callers that
    /// need nothing else (the worker's look at the `creating` backups).
    async fn list_backup_ids(
        &self,
        cloud: &str,
        filter: &BackupFilter,
        ctx: &CallContext,
    ) -> Result<Vec<String>, Error>;
    /// What each cloud entry's Keystone and Cinder last answered.
    fn health(&self) -> BTreeMap<String, super::UpstreamHealth> {
        BTreeMap::new()
    }
}

/// [`Cinder`] over HTTP, with one [`Session`] per clouds.yaml entry.
pub struct OpenStackClient {
    sessions: BTreeMap<String, Session>,
    settings: Arc<UpstreamSettings>,
}

impl OpenStackClient {
    /// Builds a session for each cloud entry.
    pub fn new(
        clouds: BTreeMap<String, Cloud>,
        settings: UpstreamSettings,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let mut clients = HttpClients::new(settings.clone());
        let sessions = clouds
            .into_iter()
            .map(|(name, cloud)| {
                let http = clients.for_cloud(&cloud)?;
                Ok((name, Session::new(cloud, http, settings.clone())))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(OpenStackClient { sessions, settings })
    }

    fn session(&self, cloud: &str) -> Result<&Session, Error> {
        self.sessions
            .get(cloud)
            .ok_or_else(|| Error::UnknownCloud(cloud.to_owned()))
    }

    /// Fails unless the cloud's Cinder offers `needed`.
    async fn require(
        &self,
        session: &Session,
        needed: Microversion,
        feature: &'static str,
    ) -> Result<(), Error> {
        let max = session.max_version().await?;
        if max < needed {
            return Err(Error::MicroversionUnsupported {
                cloud: session.cloud.name.clone(),
                feature,
                needed: needed.to_string(),
                max: max.to_string(),
            });
        }
        Ok(())
    }

    /// One Cinder call: token, headers, one retry after a 401, error mapping.
    async fn call<T: DeserializeOwned>(
        &self,
        session: &Session,
        call: CinderCall<'_>,
        ctx: &CallContext,
    ) -> Result<(T, Option<String>), Error> {
        let CinderCall {
            method,
            path,
            query,
            body,
            version,
        } = call;
        let mut retried = false;
        loop {
            let token = session.token().await?;
            let url = format!("{}{path}", token.cinder_url);
            let mut request = session
                .http
                .request(method.clone(), &url)
                .header("Accept", "application/json")
                .header("X-Auth-Token", token.value.expose_secret())
                .query(query);
            if let Some(version) = version {
                request = request.header("OpenStack-API-Version", version.header_value());
            }
            if let Some(id) = ctx
                .request_id
                .as_deref()
                .filter(|id| is_openstack_request_id(id))
            {
                request = request.header("X-OpenStack-Request-ID", id);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = std::time::Instant::now();
            let sent = request.send().await;
            crate::metrics::metrics().upstream_sent(
                "cinder",
                operation_name(&method, path),
                &sent,
                started,
            );
            let response = match sent {
                Ok(response) => response,
                Err(e) => {
                    let error = transport_error(Service::Cinder, &e, self.settings.timeout);
                    session.health.failure(Service::Cinder, &error);
                    return Err(error);
                }
            };
            let status = response.status().as_u16();
            let request_id = request_id_of(&response);
            // Cinder's request id with every call, to find it in Cinder's
            // logs; a write at info, the reads (the worker's polling) at
            // debug.
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let upstream_request_id = request_id.as_deref().unwrap_or("");
            if method == Method::GET {
                tracing::debug!(cloud = %session.cloud.name, operation = operation_name(&method, path), status, upstream_request_id, elapsed_ms, "Cinder answered");
            } else {
                tracing::info!(cloud = %session.cloud.name, operation = operation_name(&method, path), status, upstream_request_id, elapsed_ms, "Cinder answered");
            }
            if matches!(status, 408 | 429 | 500..=599) {
                session.health.failure(
                    Service::Cinder,
                    &Error::Unavailable {
                        service: Service::Cinder,
                        message: format!(
                            "{method} {} answered {status}",
                            operation_name(&method, path)
                        ),
                        status: Some(status),
                        request_id: None,
                        finished: false,
                    },
                );
            } else {
                session.health.success(Service::Cinder);
            }
            if status == 401 && !retried {
                // The token expired early or was revoked: drop it (unless a
                // concurrent call already did) and try once with a new one.
                tracing::info!(cloud = %session.cloud.name, "Cinder refused the token; renewing it");
                session.drop_token(&token).await;
                retried = true;
                continue;
            }
            let bytes = read_body(Service::Cinder, response, self.settings.timeout).await?;
            return match status {
                200..=299 => serde_json::from_slice(&bytes)
                    .map(|value| (value, request_id.clone()))
                    .map_err(|e| Error::Unexpected {
                        service: Service::Cinder,
                        status: Some(status),
                        message: format!("{method} {path}: unreadable body: {e}"),
                        request_id,
                    }),
                // A proxy's "try later" (no Cinder body) is as passing as a 5xx.
                408 | 429 | 500..=599 => Err(Error::Unavailable {
                    service: Service::Cinder,
                    finished: fault_of(&bytes).is_some(),
                    message: match fault_of(&bytes) {
                        Some((_, message)) => {
                            format!("{method} {path} answered {status}: {message}")
                        }
                        None => format!("{method} {path} answered {status}"),
                    },
                    status: Some(status),
                    request_id,
                }),
                _ => Err(match fault_of(&bytes) {
                    Some((fault, message)) => Error::Cinder {
                        status,
                        fault,
                        message,
                        request_id,
                    },
                    None => Error::Unexpected {
                        service: Service::Cinder,
                        status: Some(status),
                        message: format!("{method} {path} answered {status} without an error body"),
                        request_id,
                    },
                }),
            };
        }
    }
}

/// One Cinder request before the token and common headers are added.
/// The metrics name of a Cinder call (paths hold ids: never a label).
fn operation_name(method: &Method, path: &str) -> &'static str {
    let mut segments = path.split('/').skip(1);
    match (method.as_str(), segments.next(), segments.next()) {
        ("GET", Some("snapshots"), None) => "list_snapshots",
        ("GET", Some("snapshots"), Some(_)) => "show_snapshot",
        ("POST", Some("backups"), None) => "create_backup",
        ("GET", Some("backups"), Some("detail")) => "list_backups",
        ("GET", Some("backups"), None) => "list_backup_ids",
        ("GET", Some("backups"), Some(_)) => "show_backup",
        _ => "other",
    }
}

struct CinderCall<'a> {
    method: Method,
    /// Path under the project endpoint, e.g. `/backups/detail`.
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<&'a Value>,
    /// Sent as `OpenStack-API-Version`; none means Cinder's 3.0.
    version: Option<Microversion>,
}

impl<'a> CinderCall<'a> {
    fn get(path: &'a str) -> Self {
        CinderCall {
            method: Method::GET,
            path,
            query: &[],
            body: None,
            version: None,
        }
    }

    fn post(path: &'a str, body: &'a Value) -> Self {
        CinderCall {
            method: Method::POST,
            body: Some(body),
            ..CinderCall::get(path)
        }
    }

    fn query(self, query: &'a [(&'a str, String)]) -> Self {
        CinderCall { query, ..self }
    }

    fn version(self, version: Microversion) -> Self {
        CinderCall {
            version: Some(version),
            ..self
        }
    }
}

/// Cinder only takes a global request id of the form `req-<uuid>`.
fn is_openstack_request_id(id: &str) -> bool {
    id.strip_prefix("req-")
        .is_some_and(|rest| uuid::Uuid::try_parse(rest).is_ok())
}

#[derive(Deserialize)]
struct SnapshotBody {
    snapshot: Snapshot,
}

#[derive(Deserialize)]
struct SnapshotsBody {
    snapshots: Vec<Snapshot>,
    #[serde(default)]
    snapshots_links: Vec<Value>,
}

#[derive(Deserialize)]
struct BackupBody {
    backup: Backup,
}

/// One page of a backup listing: detailed (`Backup`) or summary
/// (`BackupRef`).
#[derive(Deserialize)]
struct BackupsBody<T> {
    backups: Vec<T>,
    #[serde(default)]
    backups_links: Vec<Value>,
}

/// A backup of the summary listing, as far as the gateway reads it (its
/// name and links are skipped, never copied).
#[derive(Deserialize)]
struct BackupRef {
    id: String,
}

/// What paging through a listing needs of its items.
trait Listed {
    fn id(&self) -> &str;
    /// Records the request id of the page the item came on.
    fn listed_by(&mut self, _request_id: Option<&str>) {}
}

impl Listed for Backup {
    fn id(&self) -> &str {
        &self.id
    }

    fn listed_by(&mut self, request_id: Option<&str>) {
        self.request_id = request_id.map(str::to_owned);
    }
}

impl Listed for BackupRef {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize)]
struct CreatedBody {
    backup: CreatedBackup,
}

#[derive(Deserialize)]
struct CreatedBackup {
    id: String,
}

fn has_next(links: &[Value]) -> bool {
    links.iter().any(|l| l["rel"] == "next")
}

#[async_trait]
impl Cinder for OpenStackClient {
    fn health(&self) -> BTreeMap<String, super::UpstreamHealth> {
        self.sessions
            .iter()
            .map(|(cloud, session)| (cloud.clone(), session.health.snapshot()))
            .collect()
    }

    async fn project_id(&self, cloud: &str) -> Result<String, Error> {
        self.session(cloud)?.project_id().await
    }

    async fn show_snapshot(
        &self,
        cloud: &str,
        id: &str,
        ctx: &CallContext,
    ) -> Result<Snapshot, Error> {
        let session = self.session(cloud)?;
        let path = format!("/snapshots/{}", encode_segment(id));
        let (body, _): (SnapshotBody, _) = self.call(session, CinderCall::get(&path), ctx).await?;
        Ok(body.snapshot)
    }

    async fn list_snapshots(
        &self,
        cloud: &str,
        limit: u32,
        marker: Option<&str>,
        ctx: &CallContext,
    ) -> Result<Page<Snapshot>, Error> {
        let session = self.session(cloud)?;
        let mut query = vec![("limit", limit.to_string())];
        if let Some(marker) = marker {
            query.push(("marker", marker.to_owned()));
        }
        let (body, _): (SnapshotsBody, _) = self
            .call(session, CinderCall::get("/snapshots").query(&query), ctx)
            .await?;
        let next_marker = has_next(&body.snapshots_links)
            .then(|| body.snapshots.last().map(|s| s.id.clone()))
            .flatten();
        Ok(Page {
            items: body.snapshots,
            next_marker,
        })
    }

    async fn create_backup(
        &self,
        cloud: &str,
        backup: &NewBackup,
        ctx: &CallContext,
    ) -> Result<Accepted, Error> {
        let session = self.session(cloud)?;
        let version = if backup.availability_zone.is_some() {
            self.require(
                session,
                Microversion::BACKUP_AZ,
                "a backup's availability_zone",
            )
            .await?;
            Microversion::BACKUP_AZ
        } else {
            self.require(
                session,
                Microversion::BACKUP_METADATA,
                "backup metadata (the gateway's job id)",
            )
            .await?;
            Microversion::BACKUP_METADATA
        };
        let body = json!({ "backup": backup });
        let (created, request_id): (CreatedBody, _) = self
            .call(
                session,
                CinderCall::post("/backups", &body).version(version),
                ctx,
            )
            .await
            .map_err(outcome_unknown_if_accepted)?;
        Ok(Accepted {
            backup_id: created.backup.id,
            request_id,
        })
    }

    async fn show_backup(&self, cloud: &str, id: &str, ctx: &CallContext) -> Result<Backup, Error> {
        let session = self.session(cloud)?;
        self.require(
            session,
            Microversion::BACKUP_METADATA,
            "backup metadata (the gateway's job id)",
        )
        .await?;
        let path = format!("/backups/{}", encode_segment(id));
        let (body, request_id): (BackupBody, _) = self
            .call(
                session,
                CinderCall::get(&path).version(Microversion::BACKUP_METADATA),
                ctx,
            )
            .await?;
        Ok(Backup {
            request_id,
            ..body.backup
        })
    }

    async fn list_backups(
        &self,
        cloud: &str,
        filter: &BackupFilter,
        ctx: &CallContext,
    ) -> Result<Vec<Backup>, Error> {
        self.list_pages(cloud, "/backups/detail", filter, ctx).await
    }

    async fn list_backup_ids(
        &self,
        cloud: &str,
        filter: &BackupFilter,
        ctx: &CallContext,
    ) -> Result<Vec<String>, Error> {
        let backups: Vec<BackupRef> = self.list_pages(cloud, "/backups", filter, ctx).await?;
        Ok(backups.into_iter().map(|b| b.id).collect())
    }
}

impl OpenStackClient {
    /// Every backup of the listing at `path` matching the filter, page
    /// after page (a page may end short of Cinder's limit: its `next` link
    /// says whether more follow).
    async fn list_pages<T: DeserializeOwned + Listed>(
        &self,
        cloud: &str,
        path: &str,
        filter: &BackupFilter,
        ctx: &CallContext,
    ) -> Result<Vec<T>, Error> {
        let session = self.session(cloud)?;
        self.require(
            session,
            Microversion::BACKUP_METADATA,
            "backup metadata (the gateway's job id)",
        )
        .await?;
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let limit = filter
                .page_size
                .unwrap_or(self.settings.page_size)
                .min(self.settings.page_size);
            let mut query = vec![("limit", limit.to_string())];
            if let Some(sort) = filter.sort {
                query.push(("sort", sort.to_owned()));
            }
            if let Some(status) = &filter.status {
                query.push(("status", status.clone()));
            }
            if let Some(volume_id) = &filter.volume_id {
                query.push(("volume_id", volume_id.clone()));
            }
            if let Some(marker) = &marker {
                query.push(("marker", marker.clone()));
            }
            let (mut body, request_id): (BackupsBody<T>, _) = self
                .call(
                    session,
                    CinderCall::get(path)
                        .query(&query)
                        .version(Microversion::BACKUP_METADATA),
                    ctx,
                )
                .await?;
            for backup in &mut body.backups {
                backup.listed_by(request_id.as_deref());
            }
            let next = has_next(&body.backups_links)
                .then(|| body.backups.last().map(|b| b.id().to_owned()))
                .flatten();
            all.extend(body.backups);
            if let Some(at_most) = filter.at_most
                && all.len() >= at_most
            {
                all.truncate(at_most);
                return Ok(all);
            }
            match next {
                None => return Ok(all),
                Some(next) if Some(&next) == marker.as_ref() => {
                    // A listing that does not move on cannot be read
                    // completely, and the worker's conclusions need that.
                    return Err(Error::Unexpected {
                        service: Service::Cinder,
                        status: None,
                        message: format!("backup listing repeated the page after marker {next}"),
                        request_id: None,
                    });
                }
                Some(next) => marker = Some(next),
            }
        }
        Err(Error::Unexpected {
            service: Service::Cinder,
            status: None,
            message: format!("backup listing did not end after {MAX_PAGES} pages"),
            request_id: None,
        })
    }
}

/// A create that Cinder answered with a 2xx whose body cannot be read has
/// made a backup all the same: its outcome is unknown (the worker finds the
/// backup by its job id), not a refusal.
fn outcome_unknown_if_accepted(e: Error) -> Error {
    match e {
        Error::Unexpected {
            service,
            status: Some(status),
            message,
            request_id,
        } if (200..300).contains(&status) => Error::Unavailable {
            service,
            finished: true,
            message: format!("accepted, but the answer is unreadable: {message}"),
            status: Some(status),
            request_id,
        },
        other => other,
    }
}

/// Ids come from callers: keep them one path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
