//! Error answers in the two services' shapes. Cinder: `{"<faultName>":
//! {"code": N, "message": "..."}}` (docs/OPENSTACK-API.md §3); Keystone and
//! keystonemiddleware: `{"error": {"code", "title", "message"}}` (§1).
//! Headers are added by the request pipelines, not here.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// The text of every 401: Keystone hides the reason (exchanges 02, 60-62).
pub(crate) const UNAUTHORIZED_MESSAGE: &str = "The request you have made requires authentication.";

/// Keystone appends this to every validation error (exchange 04).
const KEYSTONE_400_SUFFIX: &str = "The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.";

/// A Cinder fault answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CinderError {
    pub(crate) status: StatusCode,
    pub(crate) fault: &'static str,
    pub(crate) message: String,
}

impl CinderError {
    fn new(status: StatusCode, fault: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            fault,
            message: message.into(),
        }
    }

    /// 400 `badRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "badRequest", message)
    }

    /// 404 `itemNotFound`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "itemNotFound", message)
    }

    /// 404 for a missing (or other project's) resource: `"<Kind> <id> could not be found."`.
    pub(crate) fn missing(kind: &str, id: &str) -> Self {
        Self::not_found(format!("{kind} {id} could not be found."))
    }

    /// 403 `forbidden` from the policy engine (exchange 76).
    pub(crate) fn policy(rule: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("Policy doesn't allow {rule} to be performed."),
        )
    }

    /// 413 `overLimit`; the pipeline adds `Retry-After: 0` (exchanges 67, 69).
    pub(crate) fn over_limit(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "overLimit", message)
    }

    /// 406 `computeFault` for an unsupported microversion (exchange 52).
    pub(crate) fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "computeFault", message)
    }

    /// 405 `badMethod` for a known path with another method.
    pub(crate) fn bad_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "badMethod",
            "The method specified is not allowed for this resource.",
        )
    }

    /// The answer Cinder's fault wrapper gives for `status` when nothing more
    /// specific is known (used by injected `Status` faults).
    pub(crate) fn for_status(status: u16) -> Self {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = code.canonical_reason().unwrap_or("Error");
        match code.as_u16() {
            400 => Self::bad_request(reason),
            403 => Self::new(code, "forbidden", reason),
            404 => Self::not_found("The resource could not be found."),
            405 => Self::bad_method(),
            409 => Self::new(code, "conflictingRequest", reason),
            413 => Self::over_limit(reason),
            501 => Self::new(code, "notImplemented", reason),
            503 => Self::new(
                code,
                "serviceUnavailable",
                "The service is unavailable at this time.",
            ),
            500 => Self::new(
                code,
                "computeFault",
                "The server has either erred or is incapable of performing the requested operation.",
            ),
            _ => Self::new(code, "computeFault", reason),
        }
    }

    /// The JSON body. `overLimit` carries `retryAfter` as a string, as recorded.
    pub(crate) fn body(&self) -> Value {
        let mut inner = json!({"code": self.status.as_u16(), "message": self.message});
        if self.fault == "overLimit"
            && let Some(map) = inner.as_object_mut()
        {
            map.insert("retryAfter".to_owned(), json!("0"));
        }
        json!({ self.fault: inner })
    }
}

/// A Keystone (or keystonemiddleware) error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeystoneError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl KeystoneError {
    /// 401 with Keystone's fixed text; the reason is never told.
    pub(crate) fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: UNAUTHORIZED_MESSAGE.to_owned(),
        }
    }

    /// 400 "Expecting to find `attribute` in `target`." (exchange 04).
    pub(crate) fn expecting(attribute: &str, target: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("Expecting to find {attribute} in {target}. {KEYSTONE_400_SUFFIX}"),
        }
    }

    /// 404 with a message.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// Keystone's answer for a bare status (injected faults).
    pub(crate) fn for_status(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match status.as_u16() {
            401 => UNAUTHORIZED_MESSAGE.to_owned(),
            500 => {
                "An unexpected error prevented the server from fulfilling your request.".to_owned()
            }
            _ => status.canonical_reason().unwrap_or("Error").to_owned(),
        };
        Self { status, message }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        json!({"error": {
            "code": self.status.as_u16(),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_limit_body_has_retry_after() {
        let body = CinderError::over_limit("x").body();
        assert_eq!(body["overLimit"]["retryAfter"], "0");
        assert_eq!(body["overLimit"]["code"], 413);
    }

    #[test]
    fn keystone_body_shape() {
        let body = KeystoneError::unauthorized().body();
        assert_eq!(body["error"]["title"], "Unauthorized");
        assert_eq!(body["error"]["code"], 401);
    }
}
