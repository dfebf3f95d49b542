//! Timestamp formats of the two services, as recorded: Cinder writes naive
//! UTC with six (always zero, `MySQL` `DATETIME`) fraction digits and no zone,
//! Keystone the same with a trailing `Z`.

use chrono::{DateTime, Utc};

/// `2026-11-25T18:19:53.000000` (Cinder; exchanges 08, 15).
pub(crate) fn cinder(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000000").to_string()
}

/// `2026-11-25T19:19:43.000000Z` (Keystone; exchange 01).
pub(crate) fn keystone(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000000Z").to_string()
}
