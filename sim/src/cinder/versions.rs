//! Version discovery: `GET /` answers 300 and `GET /v3/` 200, both with
//! the one v3 entry naming the microversion range (exchanges 33-34).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Call, Reply};
use crate::Microversion;
use crate::errors::CinderError;

/// The version list, with links to this listener.
fn document(base_url: &str, max: Microversion) -> Value {
    json!({"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": max.to_string(),
        "min_version": Microversion::MIN.to_string(),
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("{base_url}/v3/")},
        ],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.volume+json;version=3",
        }],
    }]})
}

/// `GET /`: 300 Multiple Choices, no token needed (exchange 33).
pub(super) fn root(call: &Call<'_>) -> Result<Reply, CinderError> {
    Ok(Reply {
        status: StatusCode::MULTIPLE_CHOICES,
        body: Some(document(call.base_url, call.sim.state().max_microversion)),
    })
}

/// `GET /v3/`: 200 with the same body (exchange 34).
pub(super) fn v3(call: &Call<'_>) -> Result<Reply, CinderError> {
    Ok(Reply::ok(document(
        call.base_url,
        call.sim.state().max_microversion,
    )))
}
