//! Backups: create (with Cinder's body schema and its checks in Cinder's
//! order), list, detail, show and delete, rendered per microversion.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::listing::{self, Row};
use super::{Call, Reply};
use crate::Microversion;
use crate::errors::CinderError;
use crate::pyrepr::{PyValue, str_repr};
use crate::state::{Backup, BackupStatus, State};
use crate::timefmt;

/// Filters Cinder's `resource_filters.json` allows on backups; `metadata`
/// is not one of them (exchange 36).
const FILTERS: &[&str] = &["name", "status", "volume_id"];

/// `self` and `bookmark` links of a backup.
fn links(base_url: &str, backup: &Backup) -> Value {
    json!([
        {"rel": "self", "href": format!("{base_url}/v3/{}/backups/{}", backup.project_id, backup.id)},
        {"rel": "bookmark", "href": format!("{base_url}/{}/backups/{}", backup.project_id, backup.id)},
    ])
}

/// A backup as show and detail render it at `version` (exchanges 15, 17,
/// 19, 22, 24, 29, 30): `metadata` from 3.43; for admins the project from
/// 3.18 and `user_id` from 3.56.
pub(crate) fn render_detail(
    b: &Backup,
    version: Microversion,
    base_url: &str,
    admin: bool,
) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    put("id", json!(b.id));
    put("status", json!(b.status.as_str()));
    put("size", json!(b.size));
    put("object_count", json!(b.object_count));
    put("availability_zone", json!(b.availability_zone));
    put("container", json!(b.container));
    put("created_at", json!(timefmt::cinder(b.created_at)));
    put("updated_at", json!(timefmt::cinder(b.updated_at)));
    put("name", json!(b.name));
    put("description", json!(b.description));
    put("fail_reason", json!(b.fail_reason));
    put("volume_id", json!(b.volume_id));
    put("links", links(base_url, b));
    put("is_incremental", json!(b.is_incremental));
    put("has_dependent_backups", json!(b.dependents > 0));
    put("snapshot_id", json!(b.snapshot_id));
    put("data_timestamp", json!(timefmt::cinder(b.data_timestamp)));
    if version.at_least(43) {
        put("metadata", json!(b.metadata));
    }
    if admin && version.at_least(18) {
        put("os-backup-project-attr:project_id", json!(b.project_id));
    }
    if admin && version.at_least(56) {
        put("user_id", json!(b.user_id));
    }
    Value::Object(out)
}

/// The summary of the 202 and of `GET /backups`: id, name, links (exchanges 12, 28).
fn render_summary(b: &Backup, base_url: &str) -> Value {
    json!({"id": b.id, "name": b.name, "links": links(base_url, b)})
}

/// Whether the caller may see a backup of `project_id`: its own project's,
/// or any as an admin. Another project's is "not found" (exchange 46).
fn visible(call: &Call<'_>, project_id: &str) -> bool {
    project_id == call.project_id || call.is_admin()
}

/// `GET /backups`: `{id, name, links}` per backup (exchange 28).
pub(super) fn list(call: &Call<'_>) -> Result<Reply, CinderError> {
    listed(call, false)
}

/// `GET /backups/detail`: full backups (exchanges 29-31, 35-40).
pub(super) fn detail(call: &Call<'_>) -> Result<Reply, CinderError> {
    listed(call, true)
}

/// A backup as sorting and paging see it.
fn row(b: &Backup) -> Row<'_> {
    Row {
        id: &b.id,
        name: b.name.as_deref().unwrap_or(""),
        status: b.status.as_str(),
        size: b.size,
        created_at: b.created_at,
        updated_at: b.updated_at,
        seq: b.seq,
    }
}

fn listed(call: &Call<'_>, detail: bool) -> Result<Reply, CinderError> {
    call.check_read("backup:get_all")?;
    let query = listing::parse(call, FILTERS)?;
    let state = call.sim.state();
    let project = (!query.all_tenants).then_some(call.project_id);
    // The worker lists `?status=creating` every cycle: an exact status
    // filter reads that status's index only, and one no backup can have
    // reads nothing. The filters below still all apply.
    let exact_status = query
        .filters
        .iter()
        .find(|(key, _)| key == "status")
        .map(|(_, value)| BackupStatus::parse(value));
    let candidates = match exact_status {
        Some(None) => Vec::new(),
        Some(Some(status)) => state.backups().select(project, Some(status)),
        None => state.backups().select(project, None),
    };
    let rows: Vec<Row<'_>> = candidates
        .into_iter()
        .filter(|b| {
            query.filters.iter().all(|(key, value)| {
                let actual = match key.trim_end_matches('~') {
                    "name" => b.name.as_deref().unwrap_or(""),
                    "status" => b.status.as_str(),
                    "volume_id" => b.volume_id.as_str(),
                    // `parse` keeps only the filters above.
                    _ => return true,
                };
                listing::text_matches(key, value, actual)
            })
        })
        .map(row)
        .collect();
    let marker = match query.marker() {
        Some(id) => Some(
            state
                .backup(id)
                .filter(|b| visible(call, &b.project_id))
                .map(row)
                .ok_or_else(|| CinderError::missing("Backup", id))?,
        ),
        None => None,
    };
    let page = listing::page(call, &query, rows, marker.as_ref(), state.max_page_limit);
    let items: Vec<Value> = page
        .ids
        .iter()
        .filter_map(|id| state.backup(id))
        .map(|b| {
            if detail {
                render_detail(b, call.version, call.base_url, call.is_admin())
            } else {
                render_summary(b, call.base_url)
            }
        })
        .collect();
    let mut body = Map::new();
    body.insert("backups".into(), Value::Array(items));
    if let Some(next) = &page.next {
        body.insert("backups_links".into(), listing::links_value(next));
    }
    if query.with_count {
        body.insert("count".into(), json!(page.count));
    }
    Ok(Reply::ok(Value::Object(body)))
}

/// `GET /backups/{id}` (exchanges 15, 17, 19, 22, 24, 46, 72, 73).
pub(super) fn show(call: &Call<'_>) -> Result<Reply, CinderError> {
    let state = call.sim.state();
    let backup = state
        .backup(call.id)
        .filter(|b| visible(call, &b.project_id))
        .ok_or_else(|| CinderError::missing("Backup", call.id))?;
    call.check_read("backup:get")?;
    Ok(Reply::ok(json!({
        "backup": render_detail(backup, call.version, call.base_url, call.is_admin())
    })))
}

/// `DELETE /backups/{id}`: 202, then `deleting` until the backup duration
/// has passed, then gone (exchanges 71-75).
pub(super) fn delete(call: &Call<'_>) -> Result<Reply, CinderError> {
    let mut state = call.sim.state();
    let backup = state
        .backup(call.id)
        .filter(|b| visible(call, &b.project_id))
        .ok_or_else(|| CinderError::missing("Backup", call.id))?;
    call.check_write("backup:delete")?;
    if !matches!(backup.status, BackupStatus::Available | BackupStatus::Error) {
        return Err(CinderError::bad_request(
            "Invalid backup: Backup status must be available or error",
        ));
    }
    if backup.dependents > 0 {
        return Err(CinderError::bad_request(
            "Invalid backup: Incremental backups exist for this backup.",
        ));
    }
    state.start_deleting(call.id, Utc::now());
    Ok(Reply::accepted(None))
}

/// A create request that passed the body schema.
#[derive(Debug, Default)]
struct CreateRequest {
    volume_id: String,
    snapshot_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    container: Option<String>,
    incremental: bool,
    force: bool,
    metadata: BTreeMap<String, String>,
    availability_zone: Option<String>,
}

/// `POST /backups`: the checks in Cinder's order (docs/OPENSTACK-API.md §4),
/// then a backup in `creating` and its source `backing-up`; 202 with the
/// summary (exchanges 12, 18, 21, 23, 42, 43).
pub(super) fn create(call: &Call<'_>) -> Result<Reply, CinderError> {
    let request = schema::check(call.body, call.version)?;
    let mut state = call.sim.state();

    let volume = state
        .volume(&request.volume_id)
        .filter(|v| visible(call, &v.project_id))
        .cloned()
        .ok_or_else(|| CinderError::missing("Volume", &request.volume_id))?;
    call.check_write("backup:create")?;

    let snapshot = match &request.snapshot_id {
        Some(snapshot_id) => {
            let snapshot = state
                .snapshot(snapshot_id)
                .filter(|s| visible(call, &s.project_id))
                .cloned()
                .ok_or_else(|| CinderError::missing("Snapshot", snapshot_id))?;
            if snapshot.volume_id != volume.id {
                return Err(CinderError::bad_request(format!(
                    "Invalid volume: Volume {} does not match with snapshot.volume_id {}.",
                    volume.id, snapshot.volume_id
                )));
            }
            if snapshot.status != "available" {
                return Err(CinderError::bad_request(format!(
                    "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"{}\".",
                    snapshot.status
                )));
            }
            Some(snapshot)
        }
        None => {
            // With a snapshot the volume's own status is not looked at.
            if volume.status != "available" && volume.status != "in-use" {
                return Err(CinderError::bad_request(format!(
                    "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"{}\".",
                    volume.status
                )));
            }
            if volume.status == "in-use" && !request.force {
                return Err(CinderError::bad_request(
                    "Invalid volume: Backing up an in-use volume must use the force flag.",
                ));
            }
            None
        }
    };

    check_quota(&state, call.project_id, volume.size)?;

    let parent_id = if request.incremental {
        Some(incremental_parent(
            &state,
            &volume.id,
            snapshot.as_ref().map(|s| s.created_at),
        )?)
    } else {
        None
    };

    let now = Utc::now();
    let outcome = state.outcome_for(request.availability_zone.as_deref());
    let user_id = call.token.map(|t| t.user_id.clone()).unwrap_or_default();
    let backup = Backup {
        id: Uuid::new_v4().to_string(),
        project_id: call.project_id.to_owned(),
        user_id,
        name: request.name,
        description: request.description,
        volume_id: volume.id.clone(),
        snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
        size: volume.size,
        status: BackupStatus::Creating,
        fail_reason: None,
        availability_zone: request.availability_zone,
        container: None,
        requested_container: request.container,
        object_count: 0,
        is_incremental: parent_id.is_some(),
        parent_id,
        dependents: 0,
        metadata: request.metadata,
        created_at: now,
        updated_at: now,
        // A snapshot's backup holds the data of the snapshot's time (exchange 15).
        data_timestamp: snapshot.as_ref().map_or(now, |s| s.created_at),
        seq: 0,
        outcome,
        volume_previous_status: None,
        delete_started: None,
    };
    let summary = render_summary(&backup, call.base_url);
    state.insert_backup(backup);
    Ok(Reply::accepted(Some(json!({ "backup": summary }))))
}

/// The backup quotas of the caller's project: count first, then
/// gigabytes charged with the volume's size (exchanges 67, 69).
fn check_quota(state: &State, project_id: &str, size: u64) -> Result<(), CinderError> {
    let Some(tenant) = state.tenant(project_id) else {
        return Ok(());
    };
    let quotas = tenant.quotas;
    let used = state.backup_usage(project_id);
    if quotas.backups >= 0 && used.backups + 1 > quotas.backups {
        return Err(CinderError::over_limit(format!(
            "BackupLimitExceeded: Maximum number of backups allowed ({}) exceeded",
            quotas.backups
        )));
    }
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    if quotas.backup_gigabytes >= 0 && used.gigabytes.saturating_add(size) > quotas.backup_gigabytes
    {
        return Err(CinderError::over_limit(format!(
            "VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds allowed Backup gigabytes quota. Requested {size}G, quota is {}G and {}G has been consumed.",
            quotas.backup_gigabytes, used.gigabytes
        )));
    }
    Ok(())
}

/// The parent of an incremental backup: the volume's latest available
/// backup, "latest" by `data_timestamp` as Cinder picks it, except that
/// for a snapshot backup only backups of older data count as newer than
/// any other (so, as recorded in exchange 43, any available backup of the
/// volume will do, even one of the same snapshot).
///
/// Among equals Cinder's `max` keeps the first in the order the database
/// returns the volume's backups, which is not creation order: in the
/// recording the incremental of exchange 43 (five backups of the same
/// snapshot, all equal) did not take the volume's first backup, since
/// exchange 71 deleted that one (a parent cannot be deleted). The
/// simulator takes the newest of equals, a deterministic choice that
/// agrees with the recording.
fn incremental_parent(
    state: &State,
    volume_id: &str,
    snapshot_created: Option<chrono::DateTime<Utc>>,
) -> Result<String, CinderError> {
    let of_volume: Vec<&Backup> = state.backups().of_volume(volume_id).collect();
    if of_volume.is_empty() {
        return Err(CinderError::bad_request(
            "Invalid backup: No backups available to do an incremental backup.",
        ));
    }
    let key = |b: &Backup| match snapshot_created {
        Some(at) if b.data_timestamp >= at => chrono::DateTime::<Utc>::MIN_UTC,
        _ => b.data_timestamp,
    };
    // Equal keys: the newest (highest `seq`) wins.
    let parent = of_volume
        .iter()
        .filter(|b| b.status == BackupStatus::Available)
        .max_by_key(|b| (key(b), b.seq))
        .ok_or_else(|| {
            CinderError::bad_request(
                "Invalid backup: The parent backup must be available for incremental backup.",
            )
        })?;
    Ok(parent.id.clone())
}

/// Cinder's JSON schema for the create body and the messages its
/// validator writes: `Invalid input for field/attribute <last path
/// element>. Value: <Python str of the value>. <jsonschema message>`, or
/// the bare message at the top level (exchanges 20, 45, 55-59). The first
/// error in schema order wins, as jsonschema's `validate` raises it.
mod schema {
    use super::*;

    /// `parameter_types.boolean`'s enum, as Python prints it.
    const BOOLEAN_ENUM: &str = "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f']";
    const TRUE_STRINGS: &[&str] = &[
        "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
    ];
    const FALSE_STRINGS: &[&str] = &[
        "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
    ];
    /// The metadata key pattern (`parameter_types.extra_specs`).
    const METADATA_KEY_PATTERN: &str = "^[a-zA-Z0-9-_:. /]{1,255}$";
    const MAX_LENGTH: usize = 255;

    /// A schema violation at a path of the body.
    struct Violation {
        /// The last element of the path; `None` at the top level.
        field: Option<String>,
        /// Python `str()` of the offending value.
        value: String,
        message: String,
    }

    impl Violation {
        fn at(field: &str, value: &PyValue, message: String) -> Violation {
            Violation {
                field: Some(field.to_owned()),
                value: value.py_str(),
                message,
            }
        }

        fn into_error(self) -> CinderError {
            match self.field {
                Some(field) => CinderError::bad_request(format!(
                    "Invalid input for field/attribute {field}. Value: {}. {}",
                    self.value, self.message
                )),
                None => CinderError::bad_request(self.message),
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Kind {
        Uuid,
        UuidOrNull,
        NullableString,
        Boolean,
        Metadata,
    }

    /// The properties of `backup` at a microversion, in schema order.
    fn properties(version: Microversion) -> Vec<(&'static str, Kind)> {
        let mut props = vec![
            ("volume_id", Kind::Uuid),
            ("container", Kind::NullableString),
            ("description", Kind::NullableString),
            ("incremental", Kind::Boolean),
            ("force", Kind::Boolean),
            ("name", Kind::NullableString),
            ("snapshot_id", Kind::UuidOrNull),
        ];
        if version.at_least(43) {
            props.push(("metadata", Kind::Metadata));
        }
        if version.at_least(51) {
            props.push(("availability_zone", Kind::NullableString));
        }
        props
    }

    fn not_of_type(value: &PyValue, types: &[&str]) -> String {
        let names: Vec<String> = types.iter().map(|t| str_repr(t)).collect();
        format!("{} is not of type {}", value.repr(), names.join(", "))
    }

    /// oslo's `is_uuid_like`: 32 hex digits, hyphens, braces and a
    /// `urn:uuid:` prefix allowed.
    fn is_uuid_like(text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        let bare = lower.strip_prefix("urn:uuid:").unwrap_or(&lower);
        let bare = bare
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .unwrap_or(bare);
        let hex: String = bare.chars().filter(|c| *c != '-').collect();
        hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
    }

    fn string_ok(value: &PyValue) -> Result<(), String> {
        match value {
            PyValue::Str(s) if s.chars().count() > MAX_LENGTH => {
                Err(format!("{} is too long", value.repr()))
            }
            PyValue::Str(_) | PyValue::Null => Ok(()),
            other => Err(not_of_type(other, &["string", "null"])),
        }
    }

    fn is_metadata_key(key: &str) -> bool {
        let len = key.chars().count();
        (1..=MAX_LENGTH).contains(&len)
            && key.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' ' | '/')
            })
    }

    fn check_property(name: &str, kind: Kind, value: &PyValue) -> Result<(), Violation> {
        let fail = |message: String| Violation::at(name, value, message);
        match kind {
            Kind::Uuid => match value {
                PyValue::Str(s) if is_uuid_like(s) => Ok(()),
                PyValue::Str(_) => Err(fail(format!("{} is not a 'uuid'", value.repr()))),
                other => Err(fail(not_of_type(other, &["string"]))),
            },
            Kind::UuidOrNull => match value {
                PyValue::Null => Ok(()),
                PyValue::Str(s) if is_uuid_like(s) => Ok(()),
                other => Err(fail(format!(
                    "{} is not valid under any of the given schemas",
                    other.repr()
                ))),
            },
            Kind::NullableString => string_ok(value).map_err(fail),
            Kind::Boolean => match value {
                PyValue::Bool(_) => Ok(()),
                PyValue::Str(s)
                    if TRUE_STRINGS.contains(&s.as_str())
                        || FALSE_STRINGS.contains(&s.as_str()) =>
                {
                    Ok(())
                }
                PyValue::Str(_) => Err(fail(format!(
                    "{} is not one of {BOOLEAN_ENUM}",
                    value.repr()
                ))),
                other => Err(fail(not_of_type(other, &["boolean", "string"]))),
            },
            Kind::Metadata => match value {
                PyValue::Null => Ok(()),
                PyValue::Dict(items) => {
                    // patternProperties first: each matching key's value ...
                    for (key, item) in items.iter().filter(|(k, _)| is_metadata_key(k)) {
                        match item {
                            PyValue::Str(s) if s.chars().count() > MAX_LENGTH => {
                                return Err(Violation::at(
                                    key,
                                    item,
                                    format!("{} is too long", item.repr()),
                                ));
                            }
                            PyValue::Str(_) => {}
                            other => {
                                return Err(Violation::at(
                                    key,
                                    item,
                                    not_of_type(other, &["string"]),
                                ));
                            }
                        }
                    }
                    // ... then additionalProperties for keys matching no pattern.
                    let mut extras: Vec<&str> = items
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .filter(|k| !is_metadata_key(k))
                        .collect();
                    if extras.is_empty() {
                        return Ok(());
                    }
                    extras.sort_unstable();
                    let verb = if extras.len() == 1 { "does" } else { "do" };
                    let joined: Vec<String> = extras.iter().map(|k| str_repr(k)).collect();
                    Err(fail(format!(
                        "{} {verb} not match any of the regexes: {}",
                        joined.join(", "),
                        str_repr(METADATA_KEY_PATTERN)
                    )))
                }
                other => Err(fail(not_of_type(other, &["object", "null"]))),
            },
        }
    }

    /// jsonschema's additionalProperties message.
    fn unexpected(extras: &[&str]) -> String {
        let verb = if extras.len() == 1 { "was" } else { "were" };
        let joined: Vec<String> = extras.iter().map(|k| str_repr(k)).collect();
        format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            joined.join(", ")
        )
    }

    fn check_backup(backup: &PyValue, version: Microversion) -> Result<(), Violation> {
        let PyValue::Dict(items) = backup else {
            return Err(Violation::at(
                "backup",
                backup,
                not_of_type(backup, &["object"]),
            ));
        };
        let props = properties(version);
        for (name, kind) in &props {
            if let Some(value) = backup.get(name) {
                check_property(name, *kind, value)?;
            }
        }
        if backup.get("volume_id").is_none() {
            return Err(Violation::at(
                "backup",
                backup,
                "'volume_id' is a required property".to_owned(),
            ));
        }
        let extras: Vec<&str> = items
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !props.iter().any(|(name, _)| name == k))
            .collect();
        if !extras.is_empty() {
            return Err(Violation::at("backup", backup, unexpected(&extras)));
        }
        Ok(())
    }

    fn check_top(body: &PyValue, version: Microversion) -> Result<(), Violation> {
        let top = |message: String| Violation {
            field: None,
            value: String::new(),
            message,
        };
        let PyValue::Dict(items) = body else {
            return Err(top(not_of_type(body, &["object"])));
        };
        match body.get("backup") {
            Some(backup) => check_backup(backup, version)?,
            None => return Err(top("'backup' is a required property".to_owned())),
        }
        let extras: Vec<&str> = items
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != "backup")
            .collect();
        if !extras.is_empty() {
            return Err(top(unexpected(&extras)));
        }
        Ok(())
    }

    fn text(backup: &PyValue, key: &str) -> Option<String> {
        backup.get(key).and_then(PyValue::as_str).map(str::to_owned)
    }

    fn flag(backup: &PyValue, key: &str) -> bool {
        match backup.get(key) {
            Some(PyValue::Bool(b)) => *b,
            Some(PyValue::Str(s)) => TRUE_STRINGS.contains(&s.as_str()),
            _ => false,
        }
    }

    /// Parses and checks a create body.
    pub(super) fn check(body: &[u8], version: Microversion) -> Result<CreateRequest, CinderError> {
        // Not JSON at all (exchange 55).
        let parsed =
            PyValue::parse(body).map_err(|_| CinderError::bad_request("Malformed request body"))?;
        check_top(&parsed, version).map_err(Violation::into_error)?;
        let Some(backup) = parsed.get("backup") else {
            return Err(CinderError::bad_request("'backup' is a required property"));
        };
        let metadata = match backup.get("metadata") {
            Some(PyValue::Dict(items)) => items
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(CreateRequest {
            volume_id: text(backup, "volume_id").unwrap_or_default(),
            snapshot_id: text(backup, "snapshot_id"),
            // Cinder strips surrounding blanks of names and descriptions.
            name: text(backup, "name").map(|s| s.trim().to_owned()),
            description: text(backup, "description").map(|s| s.trim().to_owned()),
            container: text(backup, "container"),
            incremental: flag(backup, "incremental"),
            force: flag(backup, "force"),
            metadata,
            availability_zone: text(backup, "availability_zone"),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn message(body: &str, minor: u32) -> String {
            let version = Microversion { major: 3, minor };
            match check(body.as_bytes(), version) {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.message,
            }
        }

        const VOLUME: &str = "37a51236-4b3d-43fa-9228-dcabfbed922d";
        const SNAPSHOT: &str = "389e9158-c018-4e85-ad3c-cac25295c450";

        #[test]
        fn messages_match_the_recordings() {
            // Exchange 55.
            assert_eq!(message("{\"backup\": {", 0), "Malformed request body");
            // Exchange 56.
            assert_eq!(
                message(&format!(r#"{{"volume_id": "{VOLUME}"}}"#), 0),
                "'backup' is a required property"
            );
            // Exchange 57.
            assert_eq!(
                message(
                    &format!(r#"{{"backup": {{"snapshot_id": "{SNAPSHOT}"}}}}"#),
                    0
                ),
                format!(
                    "Invalid input for field/attribute backup. Value: {{'snapshot_id': '{SNAPSHOT}'}}. 'volume_id' is a required property"
                )
            );
            // Exchange 58.
            assert_eq!(
                message(
                    &format!(
                        r#"{{"backup": {{"volume_id": "{VOLUME}", "snapshot_id": "not-a-uuid", "name": "rec-err"}}}}"#
                    ),
                    0
                ),
                "Invalid input for field/attribute snapshot_id. Value: not-a-uuid. 'not-a-uuid' is not valid under any of the given schemas"
            );
            // Exchange 59.
            assert_eq!(
                message(
                    &format!(
                        r#"{{"backup": {{"volume_id": "{VOLUME}", "snapshot_id": "{SNAPSHOT}", "name": "rec-err", "bogus": "x"}}}}"#
                    ),
                    0
                ),
                format!(
                    "Invalid input for field/attribute backup. Value: {{'volume_id': '{VOLUME}', 'snapshot_id': '{SNAPSHOT}', 'name': 'rec-err', 'bogus': 'x'}}. Additional properties are not allowed ('bogus' was unexpected)"
                )
            );
            // Exchange 20: metadata before 3.43 is an unexpected property.
            let with_metadata = format!(
                r#"{{"backup": {{"volume_id": "{VOLUME}", "snapshot_id": "{SNAPSHOT}", "name": "rec-bk-30-md", "metadata": {{"a": "b"}}}}}}"#
            );
            assert!(message(&with_metadata, 0).ends_with(
                "'metadata': {'a': 'b'}}. Additional properties are not allowed ('metadata' was unexpected)"
            ));
            assert_eq!(message(&with_metadata, 43), "ok");
            // Exchange 45.
            let long = "n".repeat(256);
            assert_eq!(
                message(
                    &format!(r#"{{"backup": {{"volume_id": "{VOLUME}", "name": "{long}"}}}}"#),
                    0
                ),
                format!(
                    "Invalid input for field/attribute name. Value: {long}. '{long}' is too long"
                )
            );
        }

        #[test]
        fn other_schema_rules() {
            let az = format!(
                r#"{{"backup": {{"volume_id": "{VOLUME}", "availability_zone": "nova"}}}}"#
            );
            assert!(message(&az, 50).contains("('availability_zone' was unexpected)"));
            assert_eq!(message(&az, 51), "ok");
            assert_eq!(
                message(
                    &format!(
                        r#"{{"backup": {{"volume_id": "{VOLUME}", "incremental": "maybe"}}}}"#
                    ),
                    0
                ),
                format!(
                    "Invalid input for field/attribute incremental. Value: maybe. 'maybe' is not one of {BOOLEAN_ENUM}"
                )
            );
            assert_eq!(
                message(
                    &format!(r#"{{"backup": {{"volume_id": "{VOLUME}", "force": 1}}}}"#),
                    0
                ),
                "Invalid input for field/attribute force. Value: 1. 1 is not of type 'boolean', 'string'"
            );
            assert_eq!(
                message(r#"{"backup": {"volume_id": "x"}}"#, 0),
                "Invalid input for field/attribute volume_id. Value: x. 'x' is not a 'uuid'"
            );
            assert_eq!(
                message(
                    &format!(
                        r#"{{"backup": {{"volume_id": "{VOLUME}", "metadata": {{"k": 1}}}}}}"#
                    ),
                    43
                ),
                "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'"
            );
            assert_eq!(
                message(
                    &format!(
                        r#"{{"backup": {{"volume_id": "{VOLUME}", "metadata": {{"a!": "b"}}}}}}"#
                    ),
                    43
                ),
                "Invalid input for field/attribute metadata. Value: {'a!': 'b'}. 'a!' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'"
            );
            assert_eq!(message("[]", 0), "[] is not of type 'object'");
            assert_eq!(
                message(
                    &format!(r#"{{"backup": {{"volume_id": "{VOLUME}"}}, "x": 1}}"#),
                    0
                ),
                "Additional properties are not allowed ('x' was unexpected)"
            );
            let ok = check(
                format!(r#"{{"backup": {{"volume_id": "{VOLUME}", "name": " n ", "incremental": "yes", "metadata": {{"k": "v"}}}}}}"#).as_bytes(),
                Microversion { major: 3, minor: 43 },
            )
            .expect("valid");
            assert_eq!(ok.name.as_deref(), Some("n"));
            assert!(ok.incremental);
            assert_eq!(ok.metadata.get("k").map(String::as_str), Some("v"));
        }
    }
}
