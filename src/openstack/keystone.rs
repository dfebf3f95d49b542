//! Keystone v3 token issue for one cloud entry.
//!
//! The token value arrives in the `X-Subject-Token` header and is kept as a
//! [`SecretString`]; the body gives the project, lifetime and catalog.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    catalog::{CatalogEntry, block_storage_endpoint},
    clouds::{Cloud, Credential, DomainRef, ProjectRef, UserRef},
    error::{Error, Service},
    http::{read_body, request_id_of, transport_error},
};

/// A Keystone token and what the gateway learnt with it.
pub struct Token {
    /// The token itself (`X-Auth-Token` for Cinder).
    pub value: SecretString,
    /// The project the token is scoped to: the tenant's key in the store.
    pub project_id: String,
    /// The Cinder endpoint chosen from the catalog.
    pub cinder_url: String,
    /// When the token arrived, by our clock.
    received: Instant,
    /// `expires_at - issued_at`: Keystone's clock is not ours, so only the
    /// difference of its two timestamps is trusted.
    lifetime: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("project_id", &self.project_id)
            .field("cinder_url", &self.cinder_url)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// True when less than a tenth of the token's lifetime is left, so
    /// that requests never race the expiry; a fraction rather than a fixed
    /// margin keeps short-lived tokens usable.
    pub fn needs_renewal(&self, now: Instant) -> bool {
        let used = now.saturating_duration_since(self.received);
        used + self.lifetime / 10 >= self.lifetime
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenFields,
}

#[derive(Deserialize)]
struct TokenFields {
    expires_at: DateTime<Utc>,
    issued_at: Option<DateTime<Utc>>,
    project: Option<ProjectField>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
struct ProjectField {
    id: String,
}

/// Asks Keystone for a token with the cloud's credential and picks the
/// Cinder endpoint from its catalog.
pub async fn issue_token(
    http: &reqwest::Client,
    cloud: &Cloud,
    interface: &str,
    region: Option<&str>,
    limit: Duration,
) -> Result<Token, Error> {
    let url = format!("{}/auth/tokens", cloud.auth_url);
    let started = std::time::Instant::now();
    let sent = http
        .post(&url)
        .header("Accept", "application/json")
        .json(&request_body(&cloud.credential))
        .send()
        .await;
    crate::metrics::metrics().upstream_sent("keystone", "token_issue", &sent, started);
    let response = sent.map_err(|e| transport_error(Service::Keystone, &e, limit))?;
    let status = response.status().as_u16();
    let request_id = request_id_of(&response);
    match status {
        201 | 200 => {}
        401 | 404 => {
            return Err(Error::CredentialsRejected {
                cloud: cloud.name.clone(),
                status,
                request_id,
            });
        }
        // A proxy's "try later" is as passing as a 5xx.
        408 | 429 | 500..=599 => {
            return Err(Error::Unavailable {
                service: Service::Keystone,
                message: format!("token issue answered {status}"),
                status: Some(status),
                request_id,
                finished: false,
            });
        }
        _ => {
            return Err(Error::Unexpected {
                service: Service::Keystone,
                status: Some(status),
                message: format!("token issue for cloud `{}` answered {status}", cloud.name),
                request_id,
            });
        }
    }
    let unexpected = |message: String| Error::Unexpected {
        service: Service::Keystone,
        status: Some(status),
        message,
        request_id: request_id.clone(),
    };
    let value = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(|v| SecretString::from(v.to_owned()))
        .ok_or_else(|| unexpected("no X-Subject-Token header".into()))?;
    let received = Instant::now();
    let body = read_body(Service::Keystone, response, limit).await?;
    let body: TokenBody =
        serde_json::from_slice(&body).map_err(|e| unexpected(format!("token body: {e}")))?;
    let project_id = body.token.project.map(|p| p.id).ok_or_else(|| {
        unexpected(format!(
            "the token of cloud `{}` is not project-scoped",
            cloud.name
        ))
    })?;
    let issued_at = body.token.issued_at.unwrap_or_else(Utc::now);
    let lifetime = (body.token.expires_at - issued_at)
        .to_std()
        .unwrap_or(Duration::ZERO);
    let region = cloud.region.as_deref().or(region);
    let interface = cloud.interface.as_deref().unwrap_or(interface);
    let cinder_url =
        block_storage_endpoint(&body.token.catalog, interface, region).ok_or_else(|| {
            Error::NoEndpoint {
                cloud: cloud.name.clone(),
                interface: interface.to_owned(),
                region: region.map(str::to_owned),
            }
        })?;
    Ok(Token {
        value,
        project_id,
        cinder_url,
        received,
        lifetime,
    })
}

fn user_json(user: &UserRef) -> Value {
    match user {
        UserRef::Id(id) => json!({ "id": id }),
        UserRef::Name { name, domain } => json!({ "name": name, "domain": domain_json(domain) }),
    }
}

fn domain_json(domain: &DomainRef) -> Value {
    match domain {
        DomainRef::Id(id) => json!({ "id": id }),
        DomainRef::Name(name) => json!({ "name": name }),
    }
}

/// The `auth` body. Application credentials carry their own project: a
/// `scope` with them is refused by Keystone (401), so none is sent.
fn request_body(credential: &Credential) -> Value {
    match credential {
        Credential::ApplicationCredentialId { id, secret } => json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": { "id": id, "secret": secret.expose_secret() }
        }}}),
        Credential::ApplicationCredentialName { name, user, secret } => {
            json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": { "name": name, "user": user_json(user), "secret": secret.expose_secret() }
            }}})
        }
        Credential::Password {
            user,
            password,
            project,
        } => {
            let mut user = user_json(user);
            user["password"] = json!(password.expose_secret());
            let project = match project {
                ProjectRef::Id(id) => json!({ "id": id }),
                ProjectRef::Name { name, domain } => {
                    json!({ "name": name, "domain": domain_json(domain) })
                }
            };
            json!({"auth": {
                "identity": { "methods": ["password"], "password": { "user": user } },
                "scope": { "project": project }
            }})
        }
    }
}
