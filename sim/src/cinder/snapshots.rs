//! Snapshots: list (`/snapshots`), detail (`/snapshots/detail`), show,
//! and the admin's `os-reset_status` action. Another project's snapshot is
//! missing, as a missing one is (exchanges 10, 11, 65); an admin sees all.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::listing::{self, Row};
use super::{Call, Reply};
use crate::errors::CinderError;
use crate::pyrepr::str_repr;
use crate::state::{Snapshot, State};
use crate::timefmt;

/// Filters Cinder's `resource_filters.json` allows on snapshots.
const FILTERS: &[&str] = &[
    "name",
    "status",
    "volume_id",
    "metadata",
    "availability_zone",
];

/// Whether the caller may see a snapshot of `project_id`.
fn visible(call: &Call<'_>, project_id: &str) -> bool {
    project_id == call.project_id || call.is_admin()
}

/// The size of a snapshot: its volume's.
fn size_of(state: &State, snapshot: &Snapshot) -> u64 {
    state.volume(&snapshot.volume_id).map_or(0, |v| v.size)
}

/// The keys of the summary list (exchange 06).
fn summary(state: &State, s: &Snapshot) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(s.id));
    out.insert("created_at".into(), json!(timefmt::cinder(s.created_at)));
    out.insert("updated_at".into(), json!(timefmt::cinder(s.updated_at)));
    out.insert("name".into(), json!(s.name));
    out.insert("description".into(), json!(s.description));
    out.insert("volume_id".into(), json!(s.volume_id));
    out.insert("status".into(), json!(s.status));
    out.insert("size".into(), json!(size_of(state, s)));
    out.insert("metadata".into(), json!(s.metadata));
    out
}

/// Show and detail: the summary plus the keys of later microversions and
/// the extended attributes (exchanges 07-09).
fn detailed(call: &Call<'_>, state: &State, s: &Snapshot) -> Value {
    let mut out = summary(state, s);
    if call.version.at_least(14) {
        out.insert("group_snapshot_id".into(), Value::Null);
    }
    if call.version.at_least(41) {
        out.insert("user_id".into(), json!(s.user_id));
    }
    if call.version.at_least(65) {
        out.insert("consumes_quota".into(), json!(true));
    }
    out.insert(
        "os-extended-snapshot-attributes:project_id".into(),
        json!(s.project_id),
    );
    out.insert(
        "os-extended-snapshot-attributes:progress".into(),
        json!("100%"),
    );
    Value::Object(out)
}

/// `GET /snapshots`.
pub(super) fn list(call: &Call<'_>) -> Result<Reply, CinderError> {
    listed(call, false)
}

/// `GET /snapshots/detail`.
pub(super) fn detail(call: &Call<'_>) -> Result<Reply, CinderError> {
    listed(call, true)
}

/// Whether a snapshot passes the request's filters.
fn passes(s: &Snapshot, filters: &[(String, String)], zone: &str) -> bool {
    filters.iter().all(|(key, value)| {
        let base = key.trim_end_matches('~');
        match base {
            "name" => listing::text_matches(key, value, &s.name),
            "status" => listing::text_matches(key, value, &s.status),
            "volume_id" => listing::text_matches(key, value, &s.volume_id),
            "availability_zone" => listing::text_matches(key, value, zone),
            "metadata" => metadata_matches(&s.metadata, value),
            // `parse` keeps only the filters above.
            _ => true,
        }
    })
}

/// `metadata={"k": "v"}`: every pair given must be on the snapshot. A value
/// that is not a JSON object of strings matches nothing.
fn metadata_matches(metadata: &BTreeMap<String, String>, filter: &str) -> bool {
    match serde_json::from_str::<BTreeMap<String, String>>(filter) {
        Ok(wanted) => wanted
            .iter()
            .all(|(k, v)| metadata.get(k).is_some_and(|have| have == v)),
        Err(_) => false,
    }
}

/// A snapshot as sorting and paging see it.
fn row<'a>(state: &State, s: &'a Snapshot) -> Row<'a> {
    Row {
        id: &s.id,
        name: &s.name,
        status: &s.status,
        size: size_of(state, s),
        created_at: s.created_at,
        updated_at: s.updated_at,
        seq: s.seq,
    }
}

fn listed(call: &Call<'_>, detail: bool) -> Result<Reply, CinderError> {
    call.check_read("volume:get_all_snapshots")?;
    let query = listing::parse(call, FILTERS)?;
    let state = call.sim.state();
    let zone = state
        .availability_zones
        .first()
        .map_or("nova", String::as_str);
    let snapshots = state.snapshots();
    let candidates: Box<dyn Iterator<Item = &Snapshot>> = if query.all_tenants {
        Box::new(snapshots.iter())
    } else {
        Box::new(snapshots.of_project(call.project_id))
    };
    let rows: Vec<Row<'_>> = candidates
        .filter(|s| passes(s, &query.filters, zone))
        .map(|s| row(&state, s))
        .collect();
    let marker = match query.marker() {
        Some(id) => Some(
            state
                .snapshot(id)
                .filter(|s| visible(call, &s.project_id))
                .map(|s| row(&state, s))
                .ok_or_else(|| CinderError::missing("Snapshot", id))?,
        ),
        None => None,
    };
    let page = listing::page(call, &query, rows, marker.as_ref(), state.max_page_limit);
    let items: Vec<Value> = page
        .ids
        .iter()
        .filter_map(|id| state.snapshot(id))
        .map(|s| {
            if detail {
                detailed(call, &state, s)
            } else {
                Value::Object(summary(&state, s))
            }
        })
        .collect();
    let mut body = Map::new();
    body.insert("snapshots".into(), Value::Array(items));
    if let Some(next) = &page.next {
        body.insert("snapshots_links".into(), listing::links_value(next));
    }
    if query.with_count {
        body.insert("count".into(), json!(page.count));
    }
    Ok(Reply::ok(Value::Object(body)))
}

/// `GET /snapshots/{id}` (exchanges 08-11).
pub(super) fn show(call: &Call<'_>) -> Result<Reply, CinderError> {
    let state = call.sim.state();
    let snapshot = state
        .snapshot(call.id)
        .filter(|s| visible(call, &s.project_id))
        .ok_or_else(|| CinderError::missing("Snapshot", call.id))?;
    call.check_read("volume:get_snapshot")?;
    Ok(Reply::ok(
        json!({"snapshot": detailed(call, &state, snapshot)}),
    ))
}

/// Statuses `os-reset_status` accepts (Cinder's snapshot status enum).
const RESETTABLE: &[&str] = &[
    "creating",
    "available",
    "backing-up",
    "deleting",
    "deleted",
    "error",
    "error_deleting",
    "restoring",
    "unmanaging",
    "updating",
];

/// `POST /snapshots/{id}/action` with `{"os-reset_status": {"status": S}}`:
/// admin only; 202 without a body (exchange 27).
pub(super) fn action(call: &Call<'_>) -> Result<Reply, CinderError> {
    let body: Value = serde_json::from_slice(call.body)
        .map_err(|_| CinderError::bad_request("Malformed request body"))?;
    let Some(reset) = body.get("os-reset_status") else {
        // Other snapshot actions are not simulated.
        let action = body
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        return Err(CinderError::bad_request(format!(
            "There is no such action: {action}"
        )));
    };
    let mut state = call.sim.state();
    let visible_snapshot = state
        .snapshot(call.id)
        .is_some_and(|s| visible(call, &s.project_id));
    if !visible_snapshot {
        return Err(CinderError::missing("Snapshot", call.id));
    }
    call.check_admin("volume_extension:snapshot_admin_actions:reset_status")?;
    let status = match reset.get("status") {
        Some(Value::String(s)) if RESETTABLE.contains(&s.to_ascii_lowercase().as_str()) => {
            s.to_ascii_lowercase()
        }
        Some(Value::String(s)) => {
            let allowed: Vec<String> = RESETTABLE.iter().map(|r| str_repr(r)).collect();
            return Err(CinderError::bad_request(format!(
                "Invalid input for field/attribute status. Value: {s}. {} is not one of [{}]",
                str_repr(s),
                allowed.join(", ")
            )));
        }
        _ => {
            return Err(CinderError::bad_request(
                "Invalid input for field/attribute os-reset_status. 'status' is a required property",
            ));
        }
    };
    if let Some(snapshot) = state.snapshot_mut(call.id) {
        snapshot.status = status;
        snapshot.updated_at = chrono::Utc::now();
    }
    Ok(Reply::accepted(None))
}
