//! `Idempotency-Key` on creates (IETF httpapi draft semantics): the same key
//! with the same request answers the job the first request recorded, never
//! a second backup; with another request it is refused (`422`); while the
//! first request is still being answered, `409`. Keys are per tenant and
//! kept for `--idempotency-ttl`. A request that recorded nothing (it was
//! refused, or failed before a job was written) frees its key, so a retry
//! runs anew.

use chrono::{DateTime, Utc};

use super::{
    error::Error,
    model::{BackupOptions, Job, ago, now},
    service::Jobs,
};
use crate::store::{KeyUse, Reservation};

/// Longest key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// What a create holding a key does next.
pub(super) enum KeyClaim {
    /// The key is this request's (reserved at this time): record the job.
    Fresh(DateTime<Utc>),
    /// The key's first request recorded this job: answer it again.
    Replay(Box<Job>),
}

/// The request a key is bound to: the path and the body as the gateway read
/// it (so `{}` and an empty body, or two key orders, are the same request).
pub(super) fn canonical_request(snapshot_id: &str, options: &BackupOptions) -> String {
    let body = serde_json::to_string(options).unwrap_or_default();
    format!("POST /snapshots/{snapshot_id}/backups {body}")
}

/// Reads an `Idempotency-Key` header value: a structured-field string
/// (`"..."`, as the draft specifies) or, as many clients send it, the bare
/// key. 1 to 255 visible ASCII characters.
pub fn parse_key(raw: &[u8]) -> Result<String, Error> {
    let invalid = || {
        Error::Invalid(format!(
            "`Idempotency-Key` must be 1 to {MAX_KEY_CHARS} visible ASCII characters, optionally in double quotes"
        ))
    };
    let text = std::str::from_utf8(raw).map_err(|_| invalid())?.trim();
    let key = match text.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(invalid)?,
        None => text,
    };
    let visible = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\';
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.chars().all(visible) {
        return Err(invalid());
    }
    Ok(key.to_owned())
}

impl Jobs {
    /// Reserves `key` for `request`, or decides how an earlier use of it
    /// is answered.
    pub(super) async fn claim_key(
        &self,
        project_id: &str,
        key: &str,
        request: &str,
    ) -> Result<KeyClaim, Error> {
        let at = now();
        let key_use = KeyUse {
            project_id,
            key,
            reserved_at: at,
        };
        let record = match self.store.reserve_key(key_use, request, at).await? {
            Reservation::Reserved => return Ok(KeyClaim::Fresh(at)),
            Reservation::Existing(record) => record,
        };
        if record.request != request {
            return Err(Error::IdempotencyKeyReused);
        }
        // A first request older than the request time limit is no longer
        // being answered: it was answered, or its process died.
        let abandoned = record.created_at < ago(self.settings.request_timeout);
        match record.job_id {
            Some(job_id) if record.answered || abandoned => {
                match self.store.get(job_id).await? {
                    Some(job) => Ok(KeyClaim::Replay(Box::new(job))),
                    // Purged with its job: the key has expired.
                    None => Err(Error::IdempotencyKeyInUse),
                }
            }
            None if abandoned => {
                // Take the abandoned reservation over (one taker wins); a new
                // time marks it as this request's.
                let taken_at = now().max(record.created_at + chrono::Duration::milliseconds(1));
                let taken = self
                    .store
                    .take_over_key(
                        KeyUse {
                            reserved_at: taken_at,
                            ..key_use
                        },
                        record.created_at,
                        taken_at,
                    )
                    .await?;
                if taken {
                    Ok(KeyClaim::Fresh(taken_at))
                } else {
                    Err(Error::IdempotencyKeyInUse)
                }
            }
            _ => Err(Error::IdempotencyKeyInUse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_structured_strings_or_bare_tokens() {
        assert_eq!(parse_key(b"\"abc-123\"").unwrap(), "abc-123");
        assert_eq!(parse_key(b"abc-123").unwrap(), "abc-123");
        for bad in [
            &b""[..],
            b"\"\"",
            b"\"abc",
            b"a b",
            b"caf\xc3\xa9",
            &[b'k'; 256],
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_canonical_request_ignores_key_order_and_absent_fields() {
        let a: BackupOptions =
            serde_json::from_str(r#"{"name":"n","metadata":{"b":"2","a":"1"},"force":null}"#)
                .unwrap();
        let b: BackupOptions =
            serde_json::from_str(r#"{"metadata":{"a":"1","b":"2"},"name":"n"}"#).unwrap();
        assert_eq!(canonical_request("s", &a), canonical_request("s", &b));
        assert_ne!(canonical_request("s", &a), canonical_request("t", &a));
    }
}
