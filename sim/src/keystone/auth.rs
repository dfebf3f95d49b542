//! `POST /v3/auth/tokens` request handling: reads the auth body, finds the
//! application credential or user it names, checks the secret and scope,
//! and makes the token. Errors follow Keystone 30 as recorded: a wrong
//! secret or a scope with an application credential is a bare 401
//! (exchange 02), an unknown application-credential id is a 404
//! (exchange 03), a missing part of the body a 400 (exchange 04).

use chrono::Utc;
use serde_json::Value;

use crate::errors::KeystoneError;
use crate::ids;
use crate::state::{State, Tenant, Token};

/// The only domain the simulator has; seeded users live in it.
pub(crate) const DOMAIN_ID: &str = "default";
/// Its name.
pub(crate) const DOMAIN_NAME: &str = "Default";

/// Checks the credentials of an auth body and makes a token (not yet
/// stored). Returns the token id (for `X-Subject-Token`) and the token.
pub(crate) fn authenticate(
    state: &mut State,
    request: &Value,
) -> Result<(String, Token), KeystoneError> {
    let auth = object(request.get("auth"), "auth", "request body")?;
    let identity = object(auth.get("identity"), "identity", "auth")?;
    let methods: Vec<&str> = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| KeystoneError::expecting("methods", "identity"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Keystone checks that every listed method has its payload (exchange 04)
    // before it looks at any credential.
    for method in &methods {
        if identity.get(*method).is_none() {
            return Err(KeystoneError::expecting(method, "identity"));
        }
    }
    let scope = auth.get("scope").filter(|s| !s.is_null());
    let mut token = if methods.contains(&"application_credential") {
        if scope.is_some() {
            // Application credentials carry their own scope; asking for
            // one is refused without saying why.
            return Err(KeystoneError::unauthorized());
        }
        by_app_credential(state, identity.get("application_credential"))?
    } else if methods.contains(&"password") {
        by_password(state, identity.get("password"), scope)?
    } else {
        // `token`, `totp` and the rest are not simulated.
        return Err(KeystoneError::unauthorized());
    };
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(state.token_ttl).unwrap_or(chrono::Duration::MAX);
    token.issued_at = now;
    token.expires_at = now
        .checked_add_signed(ttl)
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    for role in &token.roles {
        state.role_id(role);
    }
    Ok((ids::token(), token))
}

/// The JSON object at `value`, or 400 "Expecting to find `name` in `target`".
fn object<'a>(
    value: Option<&'a Value>,
    name: &str,
    target: &str,
) -> Result<&'a serde_json::Map<String, Value>, KeystoneError> {
    value
        .and_then(Value::as_object)
        .ok_or_else(|| KeystoneError::expecting(name, target))
}

fn string<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A token without times; [`authenticate`] sets them.
fn blank_token(tenant: &Tenant, user_id: &str, user_name: &str, roles: &[String]) -> Token {
    let epoch = chrono::DateTime::<Utc>::UNIX_EPOCH;
    Token {
        project_id: tenant.project_id.clone(),
        project_name: tenant.name.clone(),
        user_id: user_id.to_owned(),
        user_name: user_name.to_owned(),
        roles: roles.to_vec(),
        methods: Vec::new(),
        app_credential: None,
        issued_at: epoch,
        expires_at: epoch,
        audit_id: ids::audit_id(),
    }
}

/// Whether a `domain` object (`{"id"}` or `{"name"}`) names the default domain.
fn is_default_domain(domain: Option<&Value>) -> bool {
    let Some(domain) = domain.and_then(Value::as_object) else {
        return false;
    };
    match (string(domain, "id"), string(domain, "name")) {
        (Some(id), _) => id == DOMAIN_ID,
        (None, Some(name)) => name == DOMAIN_NAME,
        (None, None) => false,
    }
}

/// A `user` object names a user by `id`, or by `name` plus `domain`.
enum UserRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

fn user_ref<'a>(user: &'a serde_json::Map<String, Value>) -> Result<UserRef<'a>, KeystoneError> {
    if let Some(id) = string(user, "id") {
        return Ok(UserRef::Id(id));
    }
    let Some(name) = string(user, "name") else {
        return Err(KeystoneError::expecting("id or name", "user"));
    };
    if user.get("domain").is_none() {
        return Err(KeystoneError::expecting("domain", "user"));
    }
    if !is_default_domain(user.get("domain")) {
        // An unknown domain is an authentication failure, not a 404.
        return Err(KeystoneError::unauthorized());
    }
    Ok(UserRef::Name(name))
}

fn by_app_credential(state: &State, payload: Option<&Value>) -> Result<Token, KeystoneError> {
    let payload = object(payload, "application_credential", "identity")?;
    let secret = string(payload, "secret");
    let found = if let Some(id) = string(payload, "id") {
        let found = state.tenants.iter().find_map(|t| {
            t.app_credentials
                .iter()
                .find(|c| c.id == id)
                .map(|c| (t, c))
        });
        // Keystone 30 answers an unknown id with 404, not 401 (exchange 03).
        found.ok_or_else(|| {
            KeystoneError::not_found(format!("Could not find Application Credential: {id}."))
        })?
    } else {
        let Some(name) = string(payload, "name") else {
            return Err(KeystoneError::expecting(
                "id or name",
                "application credential",
            ));
        };
        let user = object(payload.get("user"), "user", "application credential")?;
        let user = user_ref(user)?;
        // By name, an unknown credential or user is a plain 401.
        state
            .tenants
            .iter()
            .find_map(|t| {
                t.app_credentials
                    .iter()
                    .find(|c| {
                        c.name == name
                            && match user {
                                UserRef::Id(id) => c.user_id == id,
                                UserRef::Name(user_name) => c.user_name == user_name,
                            }
                    })
                    .map(|c| (t, c))
            })
            .ok_or_else(KeystoneError::unauthorized)?
    };
    let Some(secret) = secret else {
        return Err(KeystoneError::expecting("secret", "application credential"));
    };
    let (tenant, credential) = found;
    if credential.secret != secret {
        return Err(KeystoneError::unauthorized());
    }
    let mut token = blank_token(
        tenant,
        &credential.user_id,
        &credential.user_name,
        &credential.roles,
    );
    token.methods = vec!["application_credential"];
    token.app_credential = Some((credential.id.clone(), credential.name.clone()));
    Ok(token)
}

fn by_password(
    state: &State,
    payload: Option<&Value>,
    scope: Option<&Value>,
) -> Result<Token, KeystoneError> {
    let payload = object(payload, "password", "identity")?;
    let user = object(payload.get("user"), "user", "password")?;
    let Some(password) = user.get("password").and_then(Value::as_str) else {
        return Err(KeystoneError::expecting("password", "user"));
    };
    let user = user_ref(user)?;
    let matches = |u: &crate::seed::UserSeed| match user {
        UserRef::Id(id) => u.id == id,
        UserRef::Name(name) => u.name == name,
    };
    // Users are seeded per project; the same user may appear in several.
    let Some(known) = state
        .tenants
        .iter()
        .flat_map(|t| &t.users)
        .find(|u| matches(u))
    else {
        return Err(KeystoneError::unauthorized());
    };
    if known.password != password {
        return Err(KeystoneError::unauthorized());
    }
    let tenant = match scope {
        Some(scope) => project_scope(state, scope)?,
        // Unscoped: the simulator scopes to the user's first project, as
        // Keystone does with a user's `default_project_id`.
        None => state
            .tenants
            .iter()
            .find(|t| t.users.iter().any(&matches))
            .ok_or_else(KeystoneError::unauthorized)?,
    };
    // No role assignment on the project: Keystone refuses with 401.
    let Some(member) = tenant.users.iter().find(|u| matches(u)) else {
        return Err(KeystoneError::unauthorized());
    };
    if member.password != password {
        return Err(KeystoneError::unauthorized());
    }
    let mut token = blank_token(tenant, &member.id, &member.name, &member.roles);
    token.methods = vec!["password"];
    Ok(token)
}

/// The project a `scope` names: `{"project": {"id"}}` or
/// `{"project": {"name", "domain": {"id"|"name"}}}`. Unknown projects are
/// 401, as Keystone hides which part of a scoped request was wrong.
fn project_scope<'a>(state: &'a State, scope: &Value) -> Result<&'a Tenant, KeystoneError> {
    let scope = scope
        .as_object()
        .ok_or_else(|| KeystoneError::expecting("project, domain or system", "scope"))?;
    let Some(project) = scope.get("project").and_then(Value::as_object) else {
        // Domain and system scopes are not simulated.
        return Err(KeystoneError::unauthorized());
    };
    let found = if let Some(id) = string(project, "id") {
        state.tenant(id)
    } else if let Some(name) = string(project, "name") {
        if project.get("domain").is_none() {
            return Err(KeystoneError::expecting("domain", "project"));
        }
        if !is_default_domain(project.get("domain")) {
            return Err(KeystoneError::unauthorized());
        }
        state.tenants.iter().find(|t| t.name == name)
    } else {
        return Err(KeystoneError::expecting("id or name", "project"));
    };
    found.ok_or_else(KeystoneError::unauthorized)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Seed, SimConfig};

    fn state() -> State {
        State::new(SimConfig::default(), Seed::demo())
    }

    #[test]
    fn app_credential_by_id_and_by_name() {
        let mut state = state();
        let body = json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": "demo-appcred-a", "secret": "demo-secret-a"}}}});
        let (id, token) = authenticate(&mut state, &body).expect("issued");
        assert!(!id.is_empty());
        assert_eq!(token.project_name, "tenant-a");
        assert!(token.expires_at > token.issued_at);

        let body = json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"name": "demo-b", "secret": "demo-secret-b",
                "user": {"name": "user-b", "domain": {"name": "Default"}}}}}});
        let (_, token) = authenticate(&mut state, &body).expect("issued");
        assert_eq!(token.project_name, "tenant-b");
    }

    #[test]
    fn refusals() {
        let mut state = state();
        let cases = [
            (
                json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "demo-appcred-a", "secret": "x"}}}}),
                401,
            ),
            (
                json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "nope", "secret": "x"}}}}),
                404,
            ),
            (
                json!({"auth": {"identity": {"methods": ["application_credential"]}}}),
                400,
            ),
            (
                json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "demo-appcred-a", "secret": "demo-secret-a"}},
                "scope": {"project": {"id": "x"}}}}),
                401,
            ),
            (
                json!({"auth": {"identity": {"methods": ["password"],
                "password": {"user": {"name": "user-a", "domain": {"name": "Default"},
                "password": "demo-password-a"}}},
                "scope": {"project": {"name": "tenant-b", "domain": {"id": "default"}}}}}),
                401,
            ),
            (json!([]), 400),
        ];
        for (body, status) in cases {
            let err = authenticate(&mut state, &body).expect_err("refused");
            assert_eq!(err.status.as_u16(), status, "{body}");
        }
    }

    #[test]
    fn password_scoped_by_name() {
        let mut state = state();
        let body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"id": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "password": "demo-password-b"}}},
            "scope": {"project": {"name": "tenant-b", "domain": {"name": "Default"}}}}});
        let (_, token) = authenticate(&mut state, &body).expect("issued");
        assert_eq!(token.methods, vec!["password"]);
        assert_eq!(token.project_name, "tenant-b");
    }
}
