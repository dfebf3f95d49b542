//! Caller authentication: `Authorization: Bearer <JWT>`, verified with keys
//! from the configuration (`keys`), and the [`Caller`] extractor handlers
//! take, which also checks the operation's scope.
//!
//! jsonwebtoken's `Validation` defaults are lax (no `nbf`, 60 s leeway,
//! `iss`/`aud` skipped when absent, `iat` unchecked), so every check is set
//! explicitly here, and the header is checked before any key is looked up:
//! an algorithm outside the configured list, or a `crit` parameter (RFC 7515
//! 4.1.11: none is understood here), is refused.

pub mod keys;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{Method, request::Parts},
};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

pub use keys::{JwksCache, JwksLocation, KeySource};

use crate::api::{error::ApiError, limits::RateLimiter};

/// Longest token accepted: far above any real one, and it keeps a hostile
/// caller from making the gateway parse megabytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Who is calling: the tenant from the token's tenant claim, and its scopes.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant claim's value (mapped to a clouds.yaml entry).
    pub tenant: String,
    /// The token's `sub`, when present (for logs).
    pub subject: Option<String>,
    /// The token's scopes.
    pub scopes: BTreeSet<String>,
}

/// What a verifier checks, all from the configuration.
pub struct AuthSettings {
    /// Where the verification keys come from.
    pub keys: KeySource,
    /// The algorithms accepted; a token with another `alg` is refused.
    pub algorithms: Vec<Algorithm>,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The required `aud`, if any.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Longest `exp - iat` accepted, if limited (then `iat` is required).
    pub max_lifetime: Option<Duration>,
    /// The claim naming the tenant: a name, or a dotted path
    /// (`openstack.project`) into nested objects.
    pub tenant_claim: String,
    /// The claim holding the scopes: a space-separated string or an array.
    pub scope_claim: String,
    /// The scope every read (GET) needs.
    pub read_scope: String,
    /// The scope every write (create, cancel) needs.
    pub write_scope: String,
}

/// Verifies callers' JWTs.
pub struct JwtVerifier {
    settings: AuthSettings,
}

/// How a JWT check can fail. The messages say what to fix without echoing
/// the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token: send `Authorization: Bearer <JWT>`")]
    Missing,
    /// The token is expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet (`nbf`).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The signature, algorithm, issuer or audience is wrong, or the token is malformed.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token lacks the tenant claim.
    #[error("the token has no string `{0}` claim naming the tenant")]
    NoTenant(String),
    /// No verification key could be had (the identity provider is down and
    /// no key was ever fetched).
    #[error("the identity provider's keys are unavailable; retry later")]
    KeysUnavailable,
    /// A valid token without the scope the operation needs.
    #[error("the token lacks the scope `{0}` this operation needs")]
    InsufficientScope(String),
}

impl JwtVerifier {
    /// A verifier checking what `settings` say.
    pub fn new(settings: AuthSettings) -> Self {
        JwtVerifier { settings }
    }

    /// A verifier for HS256 tokens signed with `secret` (tests and tools).
    pub fn hs256(
        secret: &SecretString,
        tenant_claim: String,
        issuer: Option<&str>,
        audience: Option<&str>,
        leeway: Duration,
    ) -> Self {
        JwtVerifier::new(AuthSettings {
            keys: KeySource::secret(secret),
            algorithms: vec![Algorithm::HS256],
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            leeway,
            max_lifetime: None,
            tenant_claim,
            scope_claim: "scope".into(),
            read_scope: "backups:read".into(),
            write_scope: "backups:write".into(),
        })
    }

    /// The scope an operation of `method` needs.
    pub fn scope_for(&self, method: &Method) -> &str {
        if matches!(*method, Method::GET | Method::HEAD) {
            &self.settings.read_scope
        } else {
            &self.settings.write_scope
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }

    /// Checks a token.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let settings = &self.settings;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::Invalid(
                "malformed token header (or an `alg` this gateway never accepts)".into(),
            )
        })?;
        if header.crit.is_some() {
            return Err(AuthError::Invalid(
                "the token names critical header parameters (`crit`) this gateway does not understand".into(),
            ));
        }
        if !settings.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted here",
                header.alg
            )));
        }
        // Time claims must be numbers: a malformed one is said so, rather
        // than reported missing.
        let raw: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode(token)
            .map(|data| data.claims)
            .map_err(|_| AuthError::Invalid("malformed token payload".into()))?;
        for claim in ["exp", "nbf", "iat"] {
            // NumericDate as the verifier reads it: whole seconds since 1970.
            if raw.get(claim).is_some_and(|v| v.as_u64().is_none()) {
                return Err(AuthError::Invalid(format!(
                    "malformed `{claim}`: not a whole number of seconds since 1970"
                )));
            }
        }
        // jsonwebtoken takes an `iss` array when one element matches; a
        // token names one issuer.
        if raw.get("iss").is_some_and(|v| !v.is_string()) {
            return Err(AuthError::Invalid("malformed `iss`: not a string".into()));
        }
        let candidates = settings
            .keys
            .keys(header.kid.as_deref(), header.alg)
            .await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &settings.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.validate_aud = true;
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        // The first key whose signature holds decides; a bad signature under
        // one key tries the next (a token without `kid` during a rotation).
        let mut decoded: jsonwebtoken::errors::Result<_> = Err(ErrorKind::InvalidSignature.into());
        for key in &candidates {
            decoded = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation);
            if !matches!(&decoded, Err(e) if *e.kind() == ErrorKind::InvalidSignature) {
                break;
            }
        }
        let data = decoded.map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
            ErrorKind::InvalidAlgorithm => {
                AuthError::Invalid("the key type does not match the token's `alg`".into())
            }
            ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
            ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
            ErrorKind::MissingRequiredClaim(claim) => {
                AuthError::Invalid(format!("missing claim `{claim}`"))
            }
            _ => AuthError::Invalid("malformed token".into()),
        })?;
        let claims = data.claims;
        self.check_times(&claims)?;
        let tenant = claim_at(&claims, &settings.tenant_claim)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::NoTenant(settings.tenant_claim.clone()))?
            .to_owned();
        let scopes = match claim_at(&claims, &settings.scope_claim) {
            Some(Value::String(list)) => list.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => BTreeSet::new(),
        };
        Ok(Caller {
            tenant,
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            scopes,
        })
    }

    /// `iat` not in the future (past the leeway), and the lifetime within
    /// the configured maximum.
    fn check_times(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(i64::MAX);
        let iat = claims.get("iat").and_then(Value::as_f64);
        if let Some(iat) = iat
            && iat > (now.saturating_add(leeway)) as f64
        {
            return Err(AuthError::Invalid("`iat` is in the future".into()));
        }
        if let Some(max) = self.settings.max_lifetime {
            let iat = iat.ok_or_else(|| {
                AuthError::Invalid("missing claim `iat` (the token lifetime is limited)".into())
            })?;
            let exp = claims
                .get("exp")
                .and_then(Value::as_f64)
                .unwrap_or(f64::MAX);
            if exp - iat > max.as_secs_f64() {
                return Err(AuthError::Invalid(format!(
                    "the token lives longer than the {} s allowed",
                    max.as_secs()
                )));
            }
        }
        Ok(())
    }
}

/// The claim at a dotted path (`openstack.project`); a plain name first.
fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Sets `value` at a dotted claim path, making the objects on the way
/// (for minting demo and test tokens).
pub fn set_claim(claims: &mut Value, path: &str, value: Value) {
    let mut target = claims;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            target[part] = value;
            return;
        }
        if !target[part].is_object() {
            target[part] = Value::Object(Map::new());
        }
        target = &mut target[part];
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<JwtVerifier>: FromRef<S>,
    Arc<RateLimiter>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<JwtVerifier>::from_ref(state);
        let mut headers = parts
            .headers
            .get_all(axum::http::header::AUTHORIZATION)
            .iter();
        let header = headers.next();
        if headers.next().is_some() {
            return Err(ApiError::BadRequest(
                "send exactly one `Authorization` header".into(),
            ));
        }
        let header = header.and_then(|v| v.to_str().ok());
        let caller = verifier
            .verify_header(header)
            .await
            .map_err(ApiError::Unauthenticated)?;
        tracing::Span::current().record("tenant", crate::problem::echo(&caller.tenant).as_str());
        let needed = verifier.scope_for(&parts.method);
        if !caller.scopes.contains(needed) {
            return Err(ApiError::Unauthenticated(AuthError::InsufficientScope(
                needed.to_owned(),
            )));
        }
        Arc::<RateLimiter>::from_ref(state)
            .check(&caller.tenant)
            .map_err(ApiError::RateLimited)?;
        Ok(caller)
    }
}

/// Signs HS256 tokens: for `serve --demo` and tests, never used to verify.
pub fn sign_hs256(secret: &SecretString, claims: &Value) -> anyhow::Result<String> {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier() -> (JwtVerifier, SecretString) {
        let secret = SecretString::from("test-secret".to_owned());
        let v = JwtVerifier::hs256(
            &secret,
            "tenant".into(),
            Some("issuer"),
            Some("gw"),
            std::time::Duration::from_secs(5),
        );
        (v, secret)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[tokio::test]
    async fn accepts_a_good_token_and_reads_the_tenant() {
        let (v, secret) = verifier();
        let token = sign_hs256(&secret, &json!({"tenant": "acme", "sub": "u1", "exp": now() + 60, "iss": "issuer", "aud": "gw"})).unwrap();
        let caller = v
            .verify_header(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
        assert_eq!(caller.tenant, "acme");
        assert_eq!(caller.subject.as_deref(), Some("u1"));
    }

    #[tokio::test]
    async fn refuses_expired_future_wrong_key_wrong_audience_and_missing_claims() {
        let (v, secret) = verifier();
        let base = json!({"tenant": "acme", "exp": now() + 60, "iss": "issuer", "aud": "gw"});
        let with = |patch: Value| {
            let mut claims = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                if val.is_null() {
                    claims.as_object_mut().unwrap().remove(k);
                } else {
                    claims[k] = val.clone();
                }
            }
            sign_hs256(&secret, &claims).unwrap()
        };
        assert!(matches!(
            v.verify(&with(json!({"exp": now() - 60}))).await,
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            v.verify(&with(json!({"nbf": now() + 600}))).await,
            Err(AuthError::NotYetValid)
        ));
        assert!(matches!(
            v.verify(&with(json!({"aud": "other"}))).await,
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&with(json!({"iss": "other"}))).await,
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&with(json!({"exp": null}))).await,
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&with(json!({"tenant": null}))).await,
            Err(AuthError::NoTenant(_))
        ));
        let other = sign_hs256(&SecretString::from("other".to_owned()), &base).unwrap();
        assert!(matches!(v.verify(&other).await, Err(AuthError::Invalid(_))));
        assert!(matches!(
            v.verify_header(None).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            v.verify_header(Some("Basic abc")).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            v.verify("not.a.jwt").await,
            Err(AuthError::Invalid(_))
        ));
    }
}
