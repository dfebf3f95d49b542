//! Small helpers shared by the Keystone and Cinder calls: request ids,
//! transport errors, and reading OpenStack's error bodies.

use serde_json::Value;

use super::error::{Error, Service};

/// `x-openstack-request-id` of an answer.
pub fn request_id_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A connection error, timeout or cut answer: the outcome is unknown.
/// reqwest's message names the URL, which holds ids but no secret.
pub fn transport_error(service: Service, e: &reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::Unavailable {
        service,
        message,
        status: None,
        request_id: None,
    }
}

/// Reads Cinder's `{"<faultName>": {"code": .., "message": ..}}` or
/// Keystone's `{"error": {"code", "title", "message"}}` body.
pub fn fault_of(body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let (fault, inner) = value.as_object()?.iter().next()?;
    let message = inner.get("message")?.as_str()?.to_owned();
    Some((fault.clone(), message))
}
