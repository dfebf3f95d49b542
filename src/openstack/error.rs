//! Errors of the OpenStack client, typed by what the caller must do about
//! them (retry, report, fix the configuration). Messages carry no token and
//! no secret: request bodies are never quoted.

/// How a call that got no answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// No answer within the upstream time limit.
    TimedOut(std::time::Duration),
    /// The connection could not be made.
    ConnectFailed,
    /// The connection was cut before (all of) the answer arrived.
    Cut,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::TimedOut(limit) => write!(
                f,
                "did not answer within {}",
                crate::jobs::model::human(*limit)
            ),
            NoAnswer::ConnectFailed => f.write_str("could not be reached"),
            NoAnswer::Cut => f.write_str("cut the connection before answering"),
        }
    }
}

/// Which upstream service an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Keystone (identity).
    Keystone,
    /// Cinder (block storage).
    Cinder,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Keystone => "Keystone",
            Service::Cinder => "Cinder",
        })
    }
}

/// What can go wrong talking to Keystone or Cinder. Cloneable: a failed
/// token request is remembered and answered again to the callers that
/// arrive while its backoff lasts.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The clouds.yaml entry does not exist.
    #[error("cloud `{0}` is not in clouds.yaml")]
    UnknownCloud(String),
    /// Keystone refused the tenant's own credentials (401, or 404 for an
    /// unknown application credential, as the real Keystone 30 answers).
    #[error("Keystone refused the credentials of cloud `{cloud}` (HTTP {status})")]
    CredentialsRejected {
        /// clouds.yaml entry.
        cloud: String,
        /// Keystone's status.
        status: u16,
        /// Keystone's request id.
        request_id: Option<String>,
    },
    /// The token's catalog has no usable block-storage endpoint.
    #[error("the catalog of cloud `{cloud}` has no block-storage endpoint for interface `{interface}`{}", region.as_ref().map(|r| format!(" in region `{r}`")).unwrap_or_default())]
    NoEndpoint {
        /// clouds.yaml entry.
        cloud: String,
        /// Interface looked for.
        interface: String,
        /// Region looked for.
        region: Option<String>,
    },
    /// The service could not be reached, timed out, or answered 5xx: the
    /// outcome of the call is unknown and a later retry may succeed.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        /// Which service.
        service: Service,
        /// What happened (no secrets).
        message: String,
        /// Status, when the service answered 5xx.
        status: Option<u16>,
        /// Request id, when the service answered.
        request_id: Option<String>,
        /// True when the service itself answered (its own error body, or a
        /// success it could not be read): it is done with the request. A
        /// proxy's bare answer (502, 503, 504, 408, 429) says nothing of
        /// whether the service still works on it.
        finished: bool,
    },
    /// No answer arrived: the call timed out, the connection failed, or it
    /// was cut before the answer. The outcome is unknown. The message names
    /// no address (the log does).
    #[error("{service} {what}")]
    NoAnswer {
        /// Which service.
        service: Service,
        /// How the call ended.
        what: NoAnswer,
    },
    /// Cinder answered a 4xx with its error body.
    #[error("Cinder answered {status} {fault}: {message}")]
    Cinder {
        /// HTTP status.
        status: u16,
        /// Fault name (`itemNotFound`, `badRequest`, `overLimit`, ...).
        fault: String,
        /// Cinder's message.
        message: String,
        /// Cinder's `x-openstack-request-id`.
        request_id: Option<String>,
    },
    /// An answer the client cannot make sense of.
    #[error("{service} answered unexpectedly: {message}")]
    Unexpected {
        /// Which service.
        service: Service,
        /// HTTP status, if any.
        status: Option<u16>,
        /// What was wrong with it.
        message: String,
        /// Request id, when present.
        request_id: Option<String>,
    },
    /// The cloud's Cinder is older than a feature needs.
    #[error(
        "Cinder of cloud `{cloud}` supports microversions up to {max}; {feature} needs {needed}"
    )]
    MicroversionUnsupported {
        /// clouds.yaml entry.
        cloud: String,
        /// What needs it.
        feature: &'static str,
        /// The version needed.
        needed: String,
        /// The cloud's maximum.
        max: String,
    },
}

impl Error {
    /// True when the outcome is unknown or the failure passing: retrying the
    /// same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::NoAnswer { .. })
    }

    /// True when a failed call's outcome may still change: no answer came
    /// (a timeout or a cut connection), or only a proxy's. The service may
    /// still be working on the request.
    pub fn may_still_be_working(&self) -> bool {
        match self {
            Error::NoAnswer { what, .. } => *what != NoAnswer::ConnectFailed,
            Error::Unavailable { finished, .. } => !finished,
            _ => false,
        }
    }

    /// True when a create that failed so cannot have reached Cinder's
    /// backup API: it failed on the way (Keystone, the configuration, the
    /// cloud's version) or no connection was made. Such a failure leaves
    /// nothing to look for.
    pub fn cannot_have_created(&self) -> bool {
        match self {
            Error::UnknownCloud(_)
            | Error::CredentialsRejected { .. }
            | Error::NoEndpoint { .. }
            | Error::MicroversionUnsupported { .. } => true,
            Error::NoAnswer {
                what: NoAnswer::ConnectFailed,
                ..
            } => true,
            // A token is asked for before the POST, or after Cinder refused
            // the old one with 401 (which does nothing).
            Error::Unavailable { service, .. }
            | Error::NoAnswer { service, .. }
            | Error::Unexpected { service, .. } => *service == Service::Keystone,
            Error::Cinder { .. } => false,
        }
    }

    /// The upstream HTTP status, when the upstream answered.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Error::CredentialsRejected { status, .. } | Error::Cinder { status, .. } => {
                Some(*status)
            }
            Error::Unavailable { status, .. } | Error::Unexpected { status, .. } => *status,
            _ => None,
        }
    }

    /// The upstream request id, when the upstream answered.
    pub fn upstream_request_id(&self) -> Option<String> {
        match self {
            Error::CredentialsRejected { request_id, .. }
            | Error::Unavailable { request_id, .. }
            | Error::Cinder { request_id, .. }
            | Error::Unexpected { request_id, .. } => request_id.clone(),
            _ => None,
        }
    }

    /// Cinder's 400 for a snapshot that is not `available`: "Invalid
    /// snapshot: Snapshot to be backed up must be available, but the current
    /// status is ...".
    pub fn is_snapshot_not_available(&self) -> bool {
        matches!(self, Error::Cinder { status: 400, message, .. } if message.contains("must be available"))
    }

    /// Cinder's 400 when the token's project is not the path's: the
    /// gateway's fault, never the caller's.
    pub fn is_malformed_url(&self) -> bool {
        matches!(self, Error::Cinder { status: 400, message, .. } if message.contains("Malformed request url"))
    }
}
