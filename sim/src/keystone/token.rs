//! The token body Keystone answers on issue and validation (exchanges 01,
//! 05): user and project with their domain, roles with ids, the catalog
//! naming this simulator's two listeners, and the application credential
//! used, if any.

use serde_json::{Value, json};

use super::auth::{DOMAIN_ID, DOMAIN_NAME};
use crate::state::{State, Token};
use crate::timefmt;

/// Region of every catalog endpoint.
const REGION: &str = "RegionOne";

/// `{"token": {...}}` for `token`.
pub(crate) fn render(token: &Token, state: &State) -> Value {
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let roles: Vec<Value> = token
        .roles
        .iter()
        .map(|name| {
            let id = state.role_ids.get(name).cloned().unwrap_or_default();
            json!({"id": id, "name": name})
        })
        .collect();
    let mut body = json!({
        "methods": token.methods,
        "user": {
            "domain": domain,
            "id": token.user_id,
            "name": token.user_name,
            "password_expires_at": null,
        },
        "audit_ids": [token.audit_id],
        "expires_at": timefmt::keystone(token.expires_at),
        "issued_at": timefmt::keystone(token.issued_at),
        "project": {
            "domain": domain,
            "id": token.project_id,
            "name": token.project_name,
        },
        "is_domain": false,
        "roles": roles,
        "catalog": catalog(state, &token.project_id),
    });
    if let Some((id, name)) = &token.app_credential
        && let Some(map) = body.as_object_mut()
    {
        map.insert(
            "application_credential".to_owned(),
            json!({"id": id, "name": name, "restricted": true}),
        );
    }
    json!({ "token": body })
}

/// The service catalog as the recorded Keystone lists it (exchange 01):
/// identity first, with its internal, admin and public endpoints, then
/// `block-storage` (`cinder`) and `volumev3` (`cinderv3`), each with one
/// public endpoint at `{cinder}/v3/{project_id}`.
fn catalog(state: &State, project_id: &str) -> Value {
    let (keystone_url, cinder_url) = state
        .urls
        .as_ref()
        .map(|u| (u.keystone.clone(), u.cinder.clone()))
        .unwrap_or_default();
    let volume_url = format!("{cinder_url}/v3/{project_id}");
    let services: [(&'static str, &str, &str); 3] = [
        ("identity", "keystone", &keystone_url),
        ("block-storage", "cinder", &volume_url),
        ("volumev3", "cinderv3", &volume_url),
    ];
    let entries: Vec<Value> = services
        .iter()
        .map(|(kind, name, url)| {
            // Keystone lists identity's interfaces internal, admin, public
            // (exchange 01); the order carries no meaning. The volume
            // services have only a public endpoint there.
            let interfaces: &[&str] = if *kind == "identity" {
                &["internal", "admin", "public"]
            } else {
                &["public"]
            };
            let endpoints: Vec<Value> = interfaces
                .iter()
                .map(|interface| {
                    let id = state
                        .catalog
                        .endpoints
                        .get(&(*kind, *interface))
                        .cloned()
                        .unwrap_or_default();
                    json!({
                        "id": id,
                        "interface": interface,
                        "region_id": REGION,
                        "url": url,
                        "region": REGION,
                    })
                })
                .collect();
            json!({
                "endpoints": endpoints,
                "id": state.catalog.services.get(kind).cloned().unwrap_or_default(),
                "type": kind,
                "name": name,
            })
        })
        .collect();
    Value::Array(entries)
}
