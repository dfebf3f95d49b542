//! The `OpenStack-API-Version: volume 3.NN` request header: parsing and
//! range checks, with the answers Cinder gives (exchanges 52-54).

use std::fmt;

use axum::http::HeaderMap;

/// Header that carries the microversion (request and answer).
pub(crate) const HEADER: &str = "openstack-api-version";

/// A Cinder microversion `3.NN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion {
    /// Major version (always 3 for accepted requests).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Microversion {
    /// Oldest supported version, also what a request without the header gets.
    pub const MIN: Microversion = Microversion { major: 3, minor: 0 };
    /// Newest version of Cinder 2024.1 onward (still the max in 2026).
    pub const MAX: Microversion = Microversion {
        major: 3,
        minor: 71,
    };

    /// Whether this is `3.minor` or later.
    pub fn at_least(self, minor: u32) -> bool {
        self >= Microversion { major: 3, minor }
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a requested version cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VersionError {
    /// Not `Major.Minor`: 400, and Cinder adds no version headers (exchange 53).
    #[error("API Version String {0} is of invalid format. Must be of format MajorNum.MinorNum.")]
    Malformed(String),
    /// Outside `[MIN, max]`: 406 `computeFault`; the answer echoes the version (exchange 52).
    #[error(
        "Version {requested} is not supported by the API. Minimum is {min} and maximum is {max}.",
        min = Microversion::MIN
    )]
    Unsupported {
        /// The version as asked for.
        requested: String,
        /// The newest version this cloud serves.
        max: Microversion,
    },
}

/// The version a request asks for. No header, or a header without a
/// `volume` entry (e.g. `block-storage 3.5`), means 3.0 as Cinder does.
/// `max` is the newest version the simulated cloud serves.
pub(crate) fn from_headers(
    headers: &HeaderMap,
    max: Microversion,
) -> Result<Microversion, VersionError> {
    let mut requested = None;
    for value in headers.get_all(HEADER) {
        // A non-UTF-8 header cannot name the volume service.
        let Ok(text) = value.to_str() else { continue };
        for entry in text.split(',') {
            let mut words = entry.split_whitespace();
            if words
                .next()
                .is_some_and(|service| service.eq_ignore_ascii_case("volume"))
            {
                requested = Some(words.collect::<Vec<_>>().join(" "));
            }
        }
    }
    match requested {
        None => Ok(Microversion::MIN),
        Some(text) => parse(&text, max),
    }
}

/// Parses `latest` or `Major.Minor` (no leading zeros, as Cinder's regex
/// `^([1-9]\d*)\.([1-9]\d*|0)$`) and checks the range.
fn parse(text: &str, max: Microversion) -> Result<Microversion, VersionError> {
    if text.eq_ignore_ascii_case("latest") {
        return Ok(max);
    }
    let malformed = || VersionError::Malformed(text.to_owned());
    let (major, minor) = text.split_once('.').ok_or_else(malformed)?;
    let number = |s: &str, zero_ok: bool| -> Option<u32> {
        let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = s.starts_with('0') && !(zero_ok && s == "0");
        if !digits_only || leading_zero {
            return None;
        }
        s.parse().ok()
    };
    let major = number(major, false).ok_or_else(malformed)?;
    let minor = number(minor, true).ok_or_else(malformed)?;
    let version = Microversion { major, minor };
    if version < Microversion::MIN || version > max {
        return Err(VersionError::Unsupported {
            requested: text.to_owned(),
            max,
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(value).expect("ascii"));
        h
    }

    #[test]
    fn parses_what_cinder_parses() {
        assert_eq!(
            from_headers(&HeaderMap::new(), Microversion::MAX),
            Ok(Microversion::MIN)
        );
        assert_eq!(
            from_headers(&headers("volume 3.43"), Microversion::MAX).map(|v| v.minor),
            Ok(43)
        );
        assert_eq!(
            from_headers(&headers("volume latest"), Microversion::MAX),
            Ok(Microversion::MAX)
        );
        assert_eq!(
            from_headers(&headers("compute 2.1, volume 3.5"), Microversion::MAX).map(|v| v.minor),
            Ok(5)
        );
        assert_eq!(
            from_headers(&headers("block-storage 3.5"), Microversion::MAX),
            Ok(Microversion::MIN)
        );
        assert_eq!(
            from_headers(&headers("volume abc"), Microversion::MAX),
            Err(VersionError::Malformed("abc".into()))
        );
        assert_eq!(
            from_headers(&headers("volume 3.05"), Microversion::MAX),
            Err(VersionError::Malformed("3.05".into()))
        );
        let err =
            from_headers(&headers("volume 3.99"), Microversion::MAX).expect_err("out of range");
        assert_eq!(
            err.to_string(),
            "Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.71."
        );
        assert!(matches!(
            from_headers(&headers("volume 2.0"), Microversion::MAX),
            Err(VersionError::Unsupported { .. })
        ));
    }

    #[test]
    fn an_older_cloud_refuses_what_it_does_not_serve() {
        let older = Microversion {
            major: 3,
            minor: 40,
        };
        let err = from_headers(&headers("volume 3.43"), older).expect_err("too new");
        assert_eq!(
            err.to_string(),
            "Version 3.43 is not supported by the API. Minimum is 3.0 and maximum is 3.40."
        );
        assert_eq!(from_headers(&headers("volume latest"), older), Ok(older));
        assert_eq!(from_headers(&headers("volume 3.40"), older), Ok(older));
    }
}
