//! Checks of what callers send, made before anything is recorded or sent:
//! the create request's fields the way Cinder would check them, and path
//! ids that Cinder would route to another resource.

use super::{Error, model::BackupOptions, submission::JOB_ID_METADATA_KEY};

/// Cinder's limit on names, descriptions, containers, zones and metadata.
pub const MAX_FIELD_CHARS: usize = 255;

/// Most metadata entries a create may ask for (the gateway adds its own,
/// `gateway_job_id`, to them).
pub const MAX_METADATA_KEYS: usize = 50;

/// What a metadata key may hold, as the API document states it: what
/// [`metadata_key_ok`] accepts.
pub const METADATA_KEY_PATTERN: &str = "^[A-Za-z0-9 ._:/-]+$";

/// True when `key` is 1 to 255 letters, digits, `-_:./` or spaces.
fn metadata_key_ok(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_FIELD_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' ' | '/'))
}

/// Refuses path ids that a URL would turn into dot segments: `.` and `..`
/// would name another resource of Cinder's, not a snapshot.
pub(super) fn check_snapshot_id(id: &str) -> Result<(), Error> {
    if matches!(id, "" | "." | "..") {
        return Err(Error::Invalid(format!("`{id}` is not a snapshot id")));
    }
    if names_another_resource(id) {
        // Cinder would answer its snapshot listing for `GET /snapshots/detail`:
        // no snapshot has such an id, so it is not found, without asking.
        return Err(Error::SnapshotNotFound {
            id: id.to_owned(),
            source: None,
        });
    }
    Ok(())
}

/// Ids that Cinder's router takes for a collection action under
/// `/snapshots/` rather than a snapshot (its `detail` listing). Cinder
/// makes snapshot ids itself (UUIDs), so no snapshot can have these.
fn names_another_resource(id: &str) -> bool {
    let stem = id.split('.').next().unwrap_or(id);
    stem.eq_ignore_ascii_case("detail")
}

/// Checks the create request's fields the way Cinder would, so that a bad
/// request is refused before anything is recorded or sent.
pub(super) fn validate_options(options: &BackupOptions) -> Result<(), Error> {
    let fields = [
        ("name", &options.name),
        ("description", &options.description),
        ("container", &options.container),
        ("availability_zone", &options.availability_zone),
    ];
    for (field, value) in fields {
        if let Some(value) = value
            && value.chars().count() > MAX_FIELD_CHARS
        {
            return Err(Error::Invalid(format!(
                "`{field}` is longer than {MAX_FIELD_CHARS} characters"
            )));
        }
    }
    if let Some(az) = &options.availability_zone
        && az.is_empty()
    {
        return Err(Error::Invalid(
            "`availability_zone` must not be empty".into(),
        ));
    }
    if options.metadata.len() > MAX_METADATA_KEYS {
        return Err(Error::Invalid(format!(
            "`metadata` has {} keys; at most {MAX_METADATA_KEYS} are allowed",
            options.metadata.len()
        )));
    }
    for (key, value) in &options.metadata {
        if key == JOB_ID_METADATA_KEY {
            return Err(Error::Invalid(format!(
                "metadata key `{JOB_ID_METADATA_KEY}` is reserved: the gateway puts the job id there"
            )));
        }
        if !metadata_key_ok(key) {
            return Err(Error::Invalid(format!(
                "metadata key `{}` must be 1 to 255 characters of letters, digits and - _ : . / or space",
                crate::problem::echo(key)
            )));
        }
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(Error::Invalid(format!(
                "metadata value of `{}` is longer than {MAX_FIELD_CHARS} characters",
                crate::problem::echo(key)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_malformed_metadata_is_refused() {
        let mut options = BackupOptions::default();
        options
            .metadata
            .insert(JOB_ID_METADATA_KEY.into(), "x".into());
        assert!(
            matches!(validate_options(&options), Err(Error::Invalid(m)) if m.contains("reserved"))
        );
        let mut options = BackupOptions::default();
        options.metadata.insert("bad*key".into(), "x".into());
        assert!(validate_options(&options).is_err());
        let options = BackupOptions {
            name: Some("n".repeat(256)),
            ..Default::default()
        };
        assert!(validate_options(&options).is_err());
        let mut options = BackupOptions {
            name: Some("n".repeat(255)),
            ..Default::default()
        };
        options
            .metadata
            .insert("team/app:env".into(), "prod".into());
        assert!(validate_options(&options).is_ok());
        let mut options = BackupOptions::default();
        for n in 0..MAX_METADATA_KEYS {
            options.metadata.insert(format!("k{n}"), "v".into());
        }
        assert!(validate_options(&options).is_ok());
        options.metadata.insert("one-more".into(), "v".into());
        assert!(
            matches!(validate_options(&options), Err(Error::Invalid(m)) if m.contains("at most 50"))
        );
    }

    #[test]
    fn ids_cinder_routes_elsewhere_are_not_found_and_dot_segments_invalid() {
        for id in ["detail", "DETAIL", "detail.json"] {
            assert!(
                matches!(
                    check_snapshot_id(id),
                    Err(Error::SnapshotNotFound { source: None, .. })
                ),
                "{id}"
            );
        }
        for id in ["", ".", ".."] {
            assert!(
                matches!(check_snapshot_id(id), Err(Error::Invalid(_))),
                "{id}"
            );
        }
        assert!(check_snapshot_id("000005a9-0000-4000-8000-a00000000001").is_ok());
        assert!(check_snapshot_id("details").is_ok());
        // Not a dot segment: Cinder is asked, and has no such snapshot.
        assert!(check_snapshot_id("...").is_ok());
    }
}
