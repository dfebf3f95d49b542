//! `GET /v3/{project_id}/volumes/{id}`: a volume as Cinder shows it, with
//! the keys each microversion adds. Another project's volume is missing.

use serde_json::{Map, Value, json};

use super::{Call, Reply};
use crate::errors::CinderError;
use crate::state::Volume;
use crate::timefmt;

/// `GET /volumes/{id}`.
pub(super) fn show(call: &Call<'_>) -> Result<Reply, CinderError> {
    let state = call.sim.state();
    let volume = state
        .volume(call.id)
        .filter(|v| v.project_id == call.project_id)
        .ok_or_else(|| CinderError::missing("Volume", call.id))?;
    call.check_read("volume:get")?;
    let zone = state
        .availability_zones
        .first()
        .cloned()
        .unwrap_or_else(|| "nova".to_owned());
    Ok(Reply::ok(json!({"volume": render(call, volume, &zone)})))
}

fn render(call: &Call<'_>, v: &Volume, zone: &str) -> Value {
    let link = |prefix: &str| {
        format!(
            "{}{prefix}/{}/volumes/{}",
            call.base_url, v.project_id, v.id
        )
    };
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    put("id", json!(v.id));
    put("status", json!(v.status));
    put("size", json!(v.size));
    put("availability_zone", json!(zone));
    put("created_at", json!(timefmt::cinder(v.created_at)));
    put("updated_at", json!(timefmt::cinder(v.updated_at)));
    put("attachments", json!([]));
    put("name", json!(v.name));
    put("description", Value::Null);
    put("volume_type", json!("__DEFAULT__"));
    put("snapshot_id", Value::Null);
    put("source_volid", Value::Null);
    put("metadata", json!({}));
    put(
        "links",
        json!([
            {"rel": "self", "href": link("/v3")},
            {"rel": "bookmark", "href": link("")},
        ]),
    );
    put("user_id", json!(v.user_id));
    put("bootable", json!("false"));
    put("encrypted", json!(false));
    put("replication_status", Value::Null);
    put("consistencygroup_id", Value::Null);
    put("multiattach", json!(false));
    put("os-vol-tenant-attr:tenant_id", json!(v.project_id));
    if call.version.at_least(13) {
        put("group_id", Value::Null);
    }
    if call.version.at_least(48) {
        put("shared_targets", json!(false));
        put("service_uuid", Value::Null);
    }
    if call.version.at_least(63) {
        put("volume_type_id", Value::Null);
    }
    if call.version.at_least(65) {
        put("consumes_quota", json!(true));
    }
    Value::Object(out)
}
