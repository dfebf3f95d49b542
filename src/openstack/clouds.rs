//! `clouds.yaml` loading, in openstacksdk's format.
//!
//! Only what the gateway needs is read: the Keystone URL, the credential
//! (application credential by id, by name + user, or password), the region,
//! the interface and TLS settings. Unknown keys are ignored, as openstacksdk
//! does, so the same file can serve the `openstack` CLI too.

use std::{collections::BTreeMap, fmt, path::Path, path::PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// One `clouds:` entry, checked and normalised.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// The entry's name in clouds.yaml.
    pub name: String,
    /// Keystone v3 URL, always ending in `/v3`.
    pub auth_url: String,
    /// How to authenticate.
    pub credential: Credential,
    /// `region_name`, if the entry has one.
    pub region: Option<String>,
    /// `interface`, if the entry has one.
    pub interface: Option<String>,
    /// `verify: false` turns off TLS certificate checks (discouraged).
    pub verify: bool,
    /// `cacert`: extra CA bundle to trust.
    pub cacert: Option<PathBuf>,
}

/// A user named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq)]
pub enum UserRef {
    /// `user_id`.
    Id(String),
    /// `username` with `user_domain_name` or `user_domain_id`.
    Name { name: String, domain: DomainRef },
}

/// A domain named by id or name.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainRef {
    /// `*_domain_id`.
    Id(String),
    /// `*_domain_name`.
    Name(String),
}

/// A project named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectRef {
    /// `project_id`.
    Id(String),
    /// `project_name` with `project_domain_name` or `project_domain_id`.
    Name { name: String, domain: DomainRef },
}

/// The ways a tenant can authenticate. Secrets are [`SecretString`]s, so the
/// derived `Debug` prints `[REDACTED]` in their place.
#[derive(Clone)]
pub enum Credential {
    /// `v3applicationcredential` with `application_credential_id`.
    ApplicationCredentialId { id: String, secret: SecretString },
    /// `v3applicationcredential` with `application_credential_name` and a user.
    ApplicationCredentialName {
        name: String,
        user: UserRef,
        secret: SecretString,
    },
    /// `password` (or `v3password`), scoped to a project.
    Password {
        user: UserRef,
        password: SecretString,
        project: ProjectRef,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ApplicationCredentialId { id, .. } => f
                .debug_struct("ApplicationCredentialId")
                .field("id", id)
                .field("secret", &"[REDACTED]")
                .finish(),
            Credential::ApplicationCredentialName { name, user, .. } => f
                .debug_struct("ApplicationCredentialName")
                .field("name", name)
                .field("user", user)
                .field("secret", &"[REDACTED]")
                .finish(),
            Credential::Password { user, project, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("project", project)
                .field("password", &"[REDACTED]")
                .finish(),
        }
    }
}

/// Why a clouds.yaml could not be used. Messages name the entry and key,
/// never a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum CloudsError {
    /// The file could not be read (the reason is in the message, not a
    /// source: the error prints once).
    #[error("cannot read {path}: {reason}")]
    Read {
        path: String,
        reason: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("{path} is not a valid clouds.yaml: {message}")]
    Parse { path: String, message: String },
    /// An entry lacks something or holds something unsupported.
    #[error("clouds.yaml entry `{cloud}`: {message}")]
    Entry { cloud: String, message: String },
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    clouds: BTreeMap<String, RawCloud>,
}

#[derive(Deserialize)]
struct RawCloud {
    auth_type: Option<String>,
    #[serde(default)]
    auth: RawAuth,
    region_name: Option<String>,
    interface: Option<String>,
    verify: Option<bool>,
    cacert: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    auth_url: Option<String>,
    application_credential_id: Option<String>,
    application_credential_name: Option<String>,
    application_credential_secret: Option<String>,
    user_id: Option<String>,
    username: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    password: Option<String>,
    project_id: Option<String>,
    project_name: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
}

/// Reads and checks every entry of a clouds.yaml file.
pub fn load(path: &Path) -> Result<BTreeMap<String, Cloud>, CloudsError> {
    let text = std::fs::read_to_string(path).map_err(|reason| CloudsError::Read {
        path: path.display().to_string(),
        reason,
    })?;
    parse(&text).map_err(|e| match e {
        CloudsError::Parse { message, .. } => CloudsError::Parse {
            path: path.display().to_string(),
            message,
        },
        other => other,
    })
}

/// Reads the named entries of a clouds.yaml file and only those: other
/// entries (an admin's, or kinds of authentication the gateway does not
/// use) may be anything openstacksdk accepts. A missing name is an error
/// that lists the entries there are.
pub fn load_entries<'a>(
    path: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, Cloud>, CloudsError> {
    let text = std::fs::read_to_string(path).map_err(|reason| CloudsError::Read {
        path: path.display().to_string(),
        reason,
    })?;
    let mut raw = parse_raw(&text).map_err(|e| match e {
        CloudsError::Parse { message, .. } => CloudsError::Parse {
            path: path.display().to_string(),
            message,
        },
        other => other,
    })?;
    let mut clouds = BTreeMap::new();
    for name in names {
        let Some(entry) = raw.clouds.remove(name) else {
            if clouds.contains_key(name) {
                continue;
            }
            return Err(CloudsError::Entry {
                cloud: name.to_owned(),
                message: format!(
                    "not in {} (it has: {})",
                    path.display(),
                    raw.clouds
                        .keys()
                        .chain(clouds.keys())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        clouds.insert(name.to_owned(), convert(name, entry)?);
    }
    Ok(clouds)
}

/// Parses clouds.yaml text (see [`load`]).
pub fn parse(text: &str) -> Result<BTreeMap<String, Cloud>, CloudsError> {
    parse_raw(text)?
        .clouds
        .into_iter()
        .map(|(name, raw)| {
            let cloud = convert(&name, raw)?;
            Ok((name, cloud))
        })
        .collect()
}

fn parse_raw(text: &str) -> Result<RawFile, CloudsError> {
    yaml_serde::from_str(text).map_err(|e| CloudsError::Parse {
        path: "clouds.yaml".into(),
        // The parser's message can quote the offending line, which may hold
        // a secret: keep only where it is.
        message: e
            .location()
            .map(|l| format!("syntax error at line {}, column {}", l.line(), l.column()))
            .unwrap_or_else(|| "not a mapping with a `clouds:` key".into()),
    })
}

fn convert(name: &str, raw: RawCloud) -> Result<Cloud, CloudsError> {
    let err = |message: String| CloudsError::Entry {
        cloud: name.to_owned(),
        message,
    };
    let auth = raw.auth;
    let auth_url = auth
        .auth_url
        .clone()
        .ok_or_else(|| err("auth.auth_url is missing".into()))?;
    let auth_type =
        raw.auth_type
            .as_deref()
            .unwrap_or(if auth.application_credential_secret.is_some() {
                "v3applicationcredential"
            } else {
                "password"
            });
    let user = |auth: &RawAuth| -> Option<UserRef> {
        if let Some(id) = &auth.user_id {
            return Some(UserRef::Id(id.clone()));
        }
        let name = auth.username.clone()?;
        let domain = domain(&auth.user_domain_id, &auth.user_domain_name)?;
        Some(UserRef::Name { name, domain })
    };
    let credential = match auth_type {
        "v3applicationcredential" | "applicationcredential" => {
            let secret = auth
                .application_credential_secret
                .clone()
                .ok_or_else(|| err("auth.application_credential_secret is missing".into()))?;
            let secret = SecretString::from(secret);
            if let Some(id) = auth.application_credential_id.clone() {
                Credential::ApplicationCredentialId { id, secret }
            } else if let Some(cred_name) = auth.application_credential_name.clone() {
                let user = user(&auth).ok_or_else(|| {
                    err("application_credential_name needs user_id, or username with user_domain_name or user_domain_id".into())
                })?;
                Credential::ApplicationCredentialName {
                    name: cred_name,
                    user,
                    secret,
                }
            } else {
                return Err(err(
                    "auth needs application_credential_id or application_credential_name".into(),
                ));
            }
        }
        "password" | "v3password" => {
            let user = user(&auth).ok_or_else(|| {
                err("password auth needs user_id, or username with user_domain_name or user_domain_id".into())
            })?;
            let password = auth
                .password
                .clone()
                .ok_or_else(|| err("auth.password is missing".into()))?;
            let project = if let Some(id) = auth.project_id.clone() {
                ProjectRef::Id(id)
            } else {
                let name = auth
                    .project_name
                    .clone()
                    .ok_or_else(|| err("password auth needs project_id or project_name".into()))?;
                let domain = domain(&auth.project_domain_id, &auth.project_domain_name)
                    .or_else(|| domain(&auth.user_domain_id, &auth.user_domain_name))
                    .ok_or_else(|| {
                        err("project_name needs project_domain_name or project_domain_id".into())
                    })?;
                ProjectRef::Name { name, domain }
            };
            Credential::Password {
                user,
                password: SecretString::from(password),
                project,
            }
        }
        other => {
            return Err(err(format!(
                "auth_type `{other}` is not supported (use v3applicationcredential or password)"
            )));
        }
    };
    Ok(Cloud {
        name: name.to_owned(),
        auth_url: normalise_auth_url(&auth_url),
        credential,
        region: raw.region_name,
        interface: raw.interface,
        verify: raw.verify.unwrap_or(true),
        cacert: raw.cacert,
    })
}

fn domain(id: &Option<String>, name: &Option<String>) -> Option<DomainRef> {
    match (id, name) {
        (Some(id), _) => Some(DomainRef::Id(id.clone())),
        (None, Some(name)) => Some(DomainRef::Name(name.clone())),
        (None, None) => None,
    }
}

/// keystoneauth accepts an `auth_url` with or without the version; the
/// token call needs `/v3`.
fn normalise_auth_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with("/v3") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
clouds:
  tenant-a:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://127.0.0.1:5000
      application_credential_id: abc
      application_credential_secret: s3cret-a
    region_name: RegionOne
  by-name:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://127.0.0.1:5000/v3/
      application_credential_name: nightly
      application_credential_secret: s3cret-b
      username: user-a
      user_domain_name: Default
  admin:
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: admin
      password: pw
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    identity_api_version: 3
"#;

    #[test]
    fn reads_all_three_credential_forms() {
        let clouds = parse(FILE).expect("valid file");
        let a = &clouds["tenant-a"];
        assert_eq!(a.auth_url, "http://127.0.0.1:5000/v3");
        assert_eq!(a.region.as_deref(), Some("RegionOne"));
        assert!(
            matches!(&a.credential, Credential::ApplicationCredentialId { id, .. } if id == "abc")
        );
        let b = &clouds["by-name"];
        assert_eq!(b.auth_url, "http://127.0.0.1:5000/v3");
        assert!(matches!(
            &b.credential,
            Credential::ApplicationCredentialName { name, user: UserRef::Name { name: u, domain: DomainRef::Name(d) }, .. }
                if name == "nightly" && u == "user-a" && d == "Default"
        ));
        assert!(
            matches!(&clouds["admin"].credential, Credential::Password { project: ProjectRef::Name { name, .. }, .. } if name == "admin")
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let clouds = parse(FILE).expect("valid file");
        let printed = format!("{clouds:?}");
        for secret in ["s3cret-a", "s3cret-b", "pw\""] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
    }

    #[test]
    fn errors_name_the_entry_and_hide_the_line() {
        let e = parse("clouds:\n  x:\n    auth:\n      application_credential_secret: hunter2\n")
            .expect_err("no auth_url");
        assert!(e.to_string().contains("`x`"));
        let e = parse("clouds: [\"hunter2\"").expect_err("bad yaml");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn only_the_named_entries_are_read() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clouds.yaml");
        let text = format!("{FILE}  sso:\n    auth_type: v3oidcpassword\n    profile: somewhere\n");
        std::fs::write(&path, text).expect("write");
        let clouds = load_entries(&path, ["tenant-a"]).expect("the unusable entry is not read");
        assert_eq!(clouds.keys().collect::<Vec<_>>(), vec!["tenant-a"]);
        let e = load_entries(&path, ["nope"]).expect_err("missing");
        assert!(e.to_string().contains("tenant-a"), "{e}");
    }
}
