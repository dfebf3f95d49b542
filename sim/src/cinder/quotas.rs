//! `os-quota-sets/{target}`: show (with `?usage=True`, exchange 70) and the
//! admin's update, which refuses a limit below current usage (exchanges
//! 66, 68). Only the backup quotas are kept; the other resources are shown
//! unlimited (as the recorded cloud had them) and are never enforced.

use serde_json::{Map, Value, json};

use super::{Call, Reply};
use crate::errors::CinderError;
use crate::seed::Quotas;
use crate::state::State;

/// Resources of a quota set, in Cinder's order (exchange 66).
const RESOURCES: &[&str] = &[
    "volumes",
    "per_volume_gigabytes",
    "snapshots",
    "gigabytes",
    "backups",
    "backup_gigabytes",
    "volumes___DEFAULT__",
    "gigabytes___DEFAULT__",
    "snapshots___DEFAULT__",
    "groups",
];

/// Cinder's default `quota_groups`; the recorded cloud kept it.
const GROUPS_LIMIT: i64 = 10;

/// `(limit, in_use)` of each resource of a project.
fn usage(state: &State, project_id: &str, quotas: Quotas) -> Vec<(&'static str, i64, i64)> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let gib = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let volumes: Vec<_> = state.volumes_of(project_id).collect();
    let snapshots: Vec<_> = state.snapshots().of_project(project_id).collect();
    // `gigabytes` counts volumes and their snapshots (exchange 70: 4 + 4).
    let gigabytes = volumes.iter().map(|v| gib(v.size)).sum::<i64>()
        + snapshots
            .iter()
            .map(|s| state.volume(&s.volume_id).map_or(0, |v| gib(v.size)))
            .sum::<i64>();
    let backups = state.backup_usage(project_id);
    RESOURCES
        .iter()
        .map(|resource| {
            let (limit, in_use) = match *resource {
                "volumes" | "volumes___DEFAULT__" => (-1, count(volumes.len())),
                "snapshots" | "snapshots___DEFAULT__" => (-1, count(snapshots.len())),
                "gigabytes" | "gigabytes___DEFAULT__" => (-1, gigabytes),
                "backups" => (quotas.backups, backups.backups),
                "backup_gigabytes" => (quotas.backup_gigabytes, backups.gigabytes),
                "groups" => (GROUPS_LIMIT, 0),
                _ => (-1, 0),
            };
            (*resource, limit, in_use)
        })
        .collect()
}

/// The `quota_set` object: limits, or `{limit, in_use, reserved}` with usage.
fn render(rows: &[(&'static str, i64, i64)], with_usage: bool) -> Map<String, Value> {
    rows.iter()
        .map(|(resource, limit, in_use)| {
            let value = if with_usage {
                json!({"limit": limit, "in_use": in_use, "reserved": 0})
            } else {
                json!(limit)
            };
            ((*resource).to_owned(), value)
        })
        .collect()
}

/// The target project's quotas, 404 if the project does not exist.
fn target_quotas(state: &State, target: &str) -> Result<Quotas, CinderError> {
    state
        .tenant(target)
        .map(|t| t.quotas)
        .ok_or_else(|| CinderError::not_found(format!("Project {target} could not be found.")))
}

/// `GET /os-quota-sets/{target}`: a project reads its own; an admin any.
pub(super) fn show(call: &Call<'_>) -> Result<Reply, CinderError> {
    if call.id != call.project_id && !call.is_admin() {
        return Err(CinderError::policy("volume_extension:quotas:show"));
    }
    call.check_read("volume_extension:quotas:show")?;
    let with_usage = call
        .query
        .iter()
        .any(|(k, v)| k == "usage" && crate::query::truthy(v));
    let state = call.sim.state();
    let quotas = target_quotas(&state, call.id)?;
    let mut set = render(&usage(&state, call.id, quotas), with_usage);
    set.insert("id".to_owned(), json!(call.id));
    Ok(Reply::ok(json!({ "quota_set": set })))
}

/// A limit as Cinder's `validate_integer` reads it: a JSON integer or a
/// string of one, at least -1.
fn limit_value(key: &str, value: &Value) -> Result<i64, CinderError> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let parsed =
        parsed.ok_or_else(|| CinderError::bad_request(format!("{key} must be an integer.")))?;
    if parsed < -1 {
        return Err(CinderError::bad_request(format!("{key} must be >= -1")));
    }
    Ok(parsed)
}

/// `PUT /os-quota-sets/{target}` with `{"quota_set": {...}}` (admin).
pub(super) fn update(call: &Call<'_>) -> Result<Reply, CinderError> {
    call.check_admin("volume_extension:quotas:update")?;
    let body: Value = serde_json::from_slice(call.body)
        .map_err(|_| CinderError::bad_request("Malformed request body"))?;
    let Some(set) = body.get("quota_set").and_then(Value::as_object) else {
        return Err(CinderError::bad_request(
            "'quota_set' is a required property",
        ));
    };
    let bad: Vec<&str> = set
        .keys()
        .map(String::as_str)
        .filter(|k| !RESOURCES.contains(k))
        .collect();
    if !bad.is_empty() {
        return Err(CinderError::bad_request(format!(
            "Bad key(s) in quota set: {}",
            bad.join(",")
        )));
    }
    let mut state = call.sim.state();
    let mut quotas = target_quotas(&state, call.id)?;
    let used = state.backup_usage(call.id);
    for (key, value) in set {
        let limit = limit_value(key, value)?;
        let in_use = match key.as_str() {
            "backups" => used.backups,
            "backup_gigabytes" => used.gigabytes,
            // Other resources are not kept; their limits are accepted and dropped.
            _ => continue,
        };
        // A limit below what is already used is refused; -1 never is.
        if limit != -1 && limit < in_use {
            return Err(CinderError::bad_request(format!(
                "Quota {key} limit must be equal or greater than existing resources. Current usage is {in_use} and the requested limit is {limit}."
            )));
        }
        if key == "backups" {
            quotas.backups = limit;
        } else {
            quotas.backup_gigabytes = limit;
        }
    }
    if let Some(tenant) = state.tenant_mut(call.id) {
        tenant.quotas = quotas;
    }
    let set = render(&usage(&state, call.id, quotas), false);
    Ok(Reply::ok(json!({ "quota_set": set })))
}
