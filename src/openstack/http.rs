//! Small helpers shared by the Keystone and Cinder calls: request ids,
//! transport errors, and reading OpenStack's error bodies.

use std::time::Duration;

use serde_json::Value;

use super::error::{Error, NoAnswer, Service};

/// `x-openstack-request-id` of an answer.
pub fn request_id_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Largest upstream answer read: a page of 1,000 backups with metadata is
/// a few MiB; anything far bigger is not an answer the gateway can use, and
/// reading it whole would let a broken upstream exhaust memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A connection error, timeout or cut answer: the outcome is unknown.
/// reqwest's message names the URL (an internal address): it goes to the
/// log, never into the error, which callers and stored jobs may show.
pub fn transport_error(service: Service, e: &reqwest::Error, limit: Duration) -> Error {
    let what = if e.is_timeout() {
        NoAnswer::TimedOut(limit)
    } else if e.is_connect() {
        NoAnswer::ConnectFailed
    } else {
        NoAnswer::Cut
    };
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    tracing::warn!(%service, error = %message, "upstream call got no answer");
    Error::NoAnswer { service, what }
}

/// Reads an answer's body, at most [`MAX_BODY_BYTES`] of it.
pub async fn read_body(
    service: Service,
    mut response: reqwest::Response,
    limit: Duration,
) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(service, &e, limit))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::Unexpected {
                service,
                status: Some(response.status().as_u16()),
                message: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                request_id: request_id_of(&response),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads Cinder's `{"<faultName>": {"code": .., "message": ..}}` or
/// Keystone's `{"error": {"code", "title", "message"}}` body.
pub fn fault_of(body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let (fault, inner) = value.as_object()?.iter().next()?;
    let message = inner.get("message")?.as_str()?.to_owned();
    Some((fault.clone(), message))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn response(len: usize) -> reqwest::Response {
        let answer = axum::http::Response::builder()
            .status(200)
            .body(vec![b'x'; len])
            .expect("response");
        reqwest::Response::from(answer)
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit_and_refused_beyond() {
        let limit = Duration::from_secs(1);
        let read = read_body(Service::Cinder, response(1024), limit)
            .await
            .expect("read");
        assert_eq!(read.len(), 1024);

        let refused = read_body(Service::Cinder, response(MAX_BODY_BYTES + 1), limit).await;

        assert!(
            matches!(&refused, Err(Error::Unexpected { message, .. }) if message.contains("larger than")),
            "{refused:?}"
        );
    }
}
