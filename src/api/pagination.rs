//! Opaque page tokens: what a listing needs to continue, base64url-encoded
//! with a prefix naming the listing, so a token from one listing is refused
//! by another.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::error::ApiError;

/// Encodes `value` as a page token of `kind`.
pub fn encode(kind: &str, value: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

/// Decodes a page token of `kind`; a malformed or foreign token is a 400.
pub fn decode(kind: &str, token: &str) -> Result<String, ApiError> {
    let invalid =
        || ApiError::BadRequest("`page_token` is not a token this listing gave out".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(invalid)
}

/// A listing's page size: `limit`, or `default`, between 1 and `max`.
pub fn page_size(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

/// The position a page token of `kind` holds (an id of the listing's).
pub fn position<T: std::str::FromStr>(
    kind: &str,
    token: Option<&str>,
) -> Result<Option<T>, ApiError> {
    token
        .map(|t| decode(kind, t))
        .transpose()?
        .map(|id| {
            id.parse()
                .map_err(|_| ApiError::BadRequest("`page_token` is not valid".into()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_foreign_tokens() {
        let token = super::encode("jobs", "abc");
        assert_eq!(super::decode("jobs", &token).unwrap(), "abc");
        assert!(super::decode("snapshots", &token).is_err());
        assert!(super::decode("jobs", "!!").is_err());
    }
}
