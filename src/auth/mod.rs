//! Caller authentication: `Authorization: Bearer <JWT>` verified with HS256
//! and a shared secret, and the [`Caller`] extractor handlers take.
//!
//! jsonwebtoken's `Validation` defaults are lax (no `nbf`, 60 s leeway,
//! `iss`/`aud` skipped when absent), so every check is set explicitly here.

use std::sync::Arc;

use axum::{extract::FromRef, extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::api::error::ApiError;

/// Who is calling: the tenant from the token's tenant claim.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant claim's value (mapped to a clouds.yaml entry).
    pub tenant: String,
    /// The token's `sub`, when present (for logs).
    pub subject: Option<String>,
}

/// Verifies callers' JWTs.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    tenant_claim: String,
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
    #[error("the token has no `{0}` claim naming the tenant")]
    NoTenant(String),
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn hs256(
        secret: &SecretString,
        tenant_claim: String,
        issuer: Option<&str>,
        audience: Option<&str>,
        leeway: std::time::Duration,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.validate_aud = true;
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        JwtVerifier {
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            validation,
            tenant_claim,
        }
    }

    /// Checks an `Authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token)
    }

    /// Checks a token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
            ErrorKind::InvalidAlgorithm => {
                AuthError::Invalid("algorithm not accepted (HS256 expected)".into())
            }
            ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
            ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
            ErrorKind::MissingRequiredClaim(claim) => {
                AuthError::Invalid(format!("missing claim `{claim}`"))
            }
            _ => AuthError::Invalid("malformed token".into()),
        })?;
        let claims = data.claims;
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::NoTenant(self.tenant_claim.clone()))?
            .to_owned();
        Ok(Caller {
            tenant,
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<JwtVerifier>::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = verifier
            .verify_header(header)
            .map_err(ApiError::Unauthenticated)?;
        tracing::Span::current().record("tenant", caller.tenant.as_str());
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

    #[test]
    fn accepts_a_good_token_and_reads_the_tenant() {
        let (v, secret) = verifier();
        let token = sign_hs256(&secret, &json!({"tenant": "acme", "sub": "u1", "exp": now() + 60, "iss": "issuer", "aud": "gw"})).unwrap();
        let caller = v.verify_header(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(caller.tenant, "acme");
        assert_eq!(caller.subject.as_deref(), Some("u1"));
    }

    #[test]
    fn refuses_expired_future_wrong_key_wrong_audience_and_missing_claims() {
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
            v.verify(&with(json!({"exp": now() - 60}))),
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            v.verify(&with(json!({"nbf": now() + 600}))),
            Err(AuthError::NotYetValid)
        ));
        assert!(matches!(
            v.verify(&with(json!({"aud": "other"}))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&with(json!({"iss": "other"}))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&with(json!({"exp": null}))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&with(json!({"tenant": null}))),
            Err(AuthError::NoTenant(_))
        ));
        let other = sign_hs256(&SecretString::from("other".to_owned()), &base).unwrap();
        assert!(matches!(v.verify(&other), Err(AuthError::Invalid(_))));
        assert!(matches!(v.verify_header(None), Err(AuthError::Missing)));
        assert!(matches!(
            v.verify_header(Some("Basic abc")),
            Err(AuthError::Missing)
        ));
        assert!(matches!(v.verify("not.a.jwt"), Err(AuthError::Invalid(_))));
    }
}
