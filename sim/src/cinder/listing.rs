//! What the list operations share: the query's paging, sorting and filter
//! parameters as Cinder reads them, filters refused or ignored by
//! microversion (exchanges 36-38), the page itself, and the `next` link
//! (exchanges 31, 39, 40).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Call;
use crate::errors::CinderError;

/// The parameters of a list request.
#[derive(Debug)]
pub(super) struct ListQuery {
    /// Filters to apply, `(key, value)`; a key ending in `~` is a "like" filter.
    pub(super) filters: Vec<(String, String)>,
    limit: Option<usize>,
    marker: Option<String>,
    offset: usize,
    sort: Vec<(SortKey, bool)>,
    /// `with_count=true` at 3.45 or later.
    pub(super) with_count: bool,
    /// An admin's `all_tenants=true`: every project's resources.
    pub(super) all_tenants: bool,
}

/// Columns a list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    CreatedAt,
    UpdatedAt,
    Id,
    Name,
    Status,
    Size,
}

impl ListQuery {
    /// The `marker` id. Cinder loads the marker by id alone, among the
    /// resources the caller may see (its project's, or any for an admin),
    /// without the list's filters: a marker that no longer matches them (a
    /// backup that left `creating` between two pages) still positions the
    /// next page. An unknown one is the resource's own 404 ("Backup <id>
    /// could not be found."), not a marker error (`_generate_paginate_query`
    /// in `cinder/db/api.py`).
    pub(super) fn marker(&self) -> Option<&str> {
        self.marker.as_deref()
    }
}

impl SortKey {
    fn parse(text: &str) -> Option<SortKey> {
        Some(match text {
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "id" => SortKey::Id,
            "name" | "display_name" => SortKey::Name,
            "status" => SortKey::Status,
            "size" => SortKey::Size,
            _ => return None,
        })
    }
}

/// One listed item, as far as sorting and paging need it.
#[derive(Debug, Clone)]
pub(super) struct Row<'a> {
    pub(super) id: &'a str,
    pub(super) name: &'a str,
    pub(super) status: &'a str,
    pub(super) size: u64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    /// Creation order, the tie-breaker of equal timestamps.
    pub(super) seq: u64,
}

/// A page of ids, the number of matches, and the `next` link if the page is full.
#[derive(Debug)]
pub(super) struct Page<'a> {
    pub(super) ids: Vec<&'a str>,
    pub(super) count: usize,
    pub(super) next: Option<String>,
}

fn parse_count(name: &str, text: &str) -> Result<usize, CinderError> {
    // Cinder's messages for `limit` and `offset` (`_get_limit_param`,
    // `_get_offset_param`).
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| CinderError::bad_request(format!("{name} param must be an integer")))?;
    usize::try_from(value)
        .map_err(|_| CinderError::bad_request(format!("{name} param must be positive")))
}

/// Reads the list parameters. `allowed` are the resource's filters;
/// unknown ones are ignored before 3.31 (exchange 37) and refused from
/// 3.31 for non-admins (exchange 38), `metadata` included (exchange 36).
/// "Like" filters (`name~=x`) exist from 3.34.
pub(super) fn parse(call: &Call<'_>, allowed: &[&str]) -> Result<ListQuery, CinderError> {
    let mut query = ListQuery {
        filters: Vec::new(),
        limit: None,
        marker: None,
        offset: 0,
        sort: Vec::new(),
        with_count: false,
        all_tenants: false,
    };
    let mut sort = None;
    let mut sort_key = None;
    let mut sort_dir = None;
    let mut invalid: Vec<&str> = Vec::new();
    for (key, value) in call.query {
        match key.as_str() {
            "limit" => query.limit = Some(parse_count("limit", value)?),
            "offset" => query.offset = parse_count("offset", value)?,
            "marker" => query.marker = Some(value.clone()),
            "sort" => sort = Some(value.as_str()),
            "sort_key" => sort_key = Some(value.as_str()),
            "sort_dir" => sort_dir = Some(value.as_str()),
            "with_count" if call.version.at_least(45) => {
                query.with_count = crate::query::truthy(value);
            }
            "all_tenants" => query.all_tenants = call.is_admin() && crate::query::truthy(value),
            _ => {
                let base = key.strip_suffix('~').filter(|_| call.version.at_least(34));
                let known = allowed.contains(&base.unwrap_or(key));
                if known {
                    query.filters.push((key.clone(), value.clone()));
                } else if !invalid.contains(&key.as_str()) {
                    invalid.push(key);
                }
            }
        }
    }
    if !invalid.is_empty() && call.version.at_least(31) && !call.is_admin() {
        return Err(CinderError::bad_request(format!(
            "Invalid filters {} are found in query options.",
            invalid.join(",")
        )));
    }
    query.sort = sort_params(sort, sort_key, sort_dir)?;
    Ok(query)
}

/// `sort=k1:dir,k2` or the deprecated `sort_key`/`sort_dir`, never both.
/// The result ends with `created_at` and `id` descending, Cinder's default
/// and tie-breakers.
fn sort_params(
    sort: Option<&str>,
    sort_key: Option<&str>,
    sort_dir: Option<&str>,
) -> Result<Vec<(SortKey, bool)>, CinderError> {
    if sort.is_some() && (sort_key.is_some() || sort_dir.is_some()) {
        return Err(CinderError::bad_request(
            "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
        ));
    }
    let mut keys = Vec::new();
    let invalid_dir = |dir: &str| {
        CinderError::bad_request(format!(
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'. Direction: {dir}"
        ))
    };
    let invalid_key = |key: &str| {
        CinderError::bad_request(format!("Invalid input received: Invalid sort key {key}"))
    };
    let descending = |dir: &str| match dir.trim().to_ascii_lowercase().as_str() {
        "desc" => Ok(true),
        "asc" => Ok(false),
        _ => Err(invalid_dir(dir)),
    };
    if let Some(sort) = sort {
        for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
            let key = SortKey::parse(key.trim()).ok_or_else(|| invalid_key(key))?;
            keys.push((key, descending(dir)?));
        }
    } else if sort_key.is_some() || sort_dir.is_some() {
        let key = sort_key.unwrap_or("created_at");
        let key = SortKey::parse(key.trim()).ok_or_else(|| invalid_key(key))?;
        keys.push((key, descending(sort_dir.unwrap_or("desc"))?));
    }
    for default in [SortKey::CreatedAt, SortKey::Id] {
        if !keys.iter().any(|(k, _)| *k == default) {
            keys.push((default, true));
        }
    }
    Ok(keys)
}

fn compare(a: &Row<'_>, b: &Row<'_>, key: SortKey) -> Ordering {
    match key {
        // Equal timestamps fall back to creation order, as newest-first
        // listings of the same second stay stable.
        SortKey::CreatedAt => (a.created_at, a.seq).cmp(&(b.created_at, b.seq)),
        SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        SortKey::Id => a.id.cmp(b.id),
        SortKey::Name => a.name.cmp(b.name),
        SortKey::Status => a.status.cmp(b.status),
        SortKey::Size => a.size.cmp(&b.size),
    }
}

/// Sorts the matching rows and cuts the page: after `marker` (the row of
/// the `marker` id, which the caller loads by id alone, see
/// [`ListQuery::marker`]), skipping `offset`, at most `limit` capped by
/// `max_page_limit`. A full page gets a `next` link.
pub(super) fn page<'a>(
    call: &Call<'_>,
    query: &ListQuery,
    mut rows: Vec<Row<'a>>,
    marker: Option<&Row<'_>>,
    max_page_limit: usize,
) -> Page<'a> {
    let order = |a: &Row<'_>, b: &Row<'_>| {
        query
            .sort
            .iter()
            .map(|(key, desc)| {
                let order = compare(a, b, *key);
                if *desc { order.reverse() } else { order }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    rows.sort_by(order);
    let count = rows.len();
    // The rows that sort after the marker's values, as Cinder's paginated
    // query selects them: the marker itself need not be among the rows.
    let start = marker.map_or(0, |m| rows.partition_point(|r| order(r, m).is_le()));
    let limit = query.limit.unwrap_or(max_page_limit).min(max_page_limit);
    let ids: Vec<&'a str> = rows
        .iter()
        .skip(start)
        .skip(query.offset)
        .take(limit)
        .map(|r| r.id)
        .collect();
    let next = match ids.last() {
        Some(last) if limit > 0 && ids.len() == limit => Some(next_link(call, last)),
        _ => None,
    };
    Page { ids, count, next }
}

/// The request's URL with `marker` set to the last id, the other
/// parameters kept in order (Cinder copies them, exchanges 31, 39, 40).
fn next_link(call: &Call<'_>, last_id: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = call
        .query
        .iter()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.push(("marker", last_id));
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
        .collect();
    format!("{}{}?{}", call.base_url, call.path, encoded.join("&"))
}

/// Python's `urllib.parse.quote_plus`.
fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Whether a row passes a `name`/`status`-style filter: exact, or for
/// `key~` a substring match (Cinder's "like" filters).
pub(super) fn text_matches(filter_key: &str, filter_value: &str, actual: &str) -> bool {
    if filter_key.ends_with('~') {
        actual.contains(filter_value)
    } else {
        actual == filter_value
    }
}

/// The links list of a list answer (`backups_links`, `snapshots_links`).
pub(super) fn links_value(next: &str) -> Value {
    json!([{"rel": "next", "href": next}])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_plus_like_python() {
        assert_eq!(quote_plus("a b/c~d"), "a+b%2Fc~d");
        assert_eq!(quote_plus("{\"k\": 1}"), "%7B%22k%22%3A+1%7D");
    }

    #[test]
    fn sort_defaults_and_conflicts() {
        let keys = sort_params(Some("name:asc"), None, None).expect("valid");
        assert_eq!(
            keys,
            vec![
                (SortKey::Name, false),
                (SortKey::CreatedAt, true),
                (SortKey::Id, true)
            ]
        );
        assert!(sort_params(Some("name"), Some("id"), None).is_err());
        assert!(sort_params(Some("bogus"), None, None).is_err());
        assert!(sort_params(Some("name:sideways"), None, None).is_err());
    }
}
