//! Replays every exchange recorded from the real Keystone 30 and Cinder 29
//! (`sim/tests/recordings/exchanges/`; format and comparison rules in
//! `sim/tests/recordings/README.md`) against a simulator started in-process,
//! in the recorded order with state carried over, and compares each answer
//! with the recorded one. Where they differ, the simulator is wrong.
//!
//! How a recording becomes a request:
//! - the simulator is seeded with the recorded tenants, credentials,
//!   volumes and snapshots (same ids, names, sizes, statuses, in the same
//!   newest-first order). Redacted secrets are seeded as their placeholders
//!   (`<app-cred-secret-a>`), so request bodies are sent as recorded, in
//!   their recorded key order (Cinder's messages print the body in it);
//! - the recorded hosts (`http://127.0.0.1:8776`, `:5000`) become the
//!   simulator's listeners, in requests and in expected answers;
//! - a redacted token becomes a real token of the simulator: the token of
//!   the path's project (tenant-a, tenant-b or admin) unless
//!   [`TOKEN_OVERRIDES`] names another caller;
//! - the id of each backup the real Cinder created (a 202's `backup.id`) is
//!   mapped to the id the simulator gave, in later requests and in the
//!   expected answers;
//! - what the recorder did between exchanges without recording it (wait
//!   for backups, lift quotas) is done by [`STEPS_AFTER`]: backups finish
//!   through `Sim::finish_pending`, never by time. The status timeline
//!   `backup-status-trace-3.0.json` is checked there too.
//!
//! What is compared, each difference a [`Mismatch`]:
//! - the status code;
//! - the headers of [`COMPARED_HEADERS`]: present in both or in neither,
//!   request ids of the form `req-<uuid>` (the two names carrying the same
//!   id), the others with the recorded value (hosts mapped); a caller's
//!   `X-OpenStack-Request-ID` must not be echoed when it was not;
//! - the body, recursively: the same keys, the same value types (null,
//!   boolean, integer, float, string, array, object), the same array
//!   lengths, and the same values once hosts and backup ids are mapped.
//!   Values that belong to one run only are compared by type: the keys of
//!   [`VOLATILE_KEYS`] (timestamps, audit ids, the id-derived container),
//!   and an `id` whose recorded value is neither seeded nor mapped (role,
//!   service and endpoint ids). Error bodies, messages included, are thus
//!   compared exactly, ids mapped rather than masked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openstack_sim::{
    AppCredentialSeed, Quotas, RunningSim, Seed, Sim, SimConfig, SnapshotSeed, TenantSeed,
    UserSeed, VolumeSeed,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::is_request_id;

/// Where the recordings are, in this crate's test data.
const EXCHANGES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/recordings/exchanges");

/// How many exchanges the recorder writes (`NN-<case>.json`, 01 to 77).
const EXPECTED_EXCHANGES: usize = 77;

/// The timeline file (not an exchange).
const TRACE_FILE: &str = "backup-status-trace-3.0.json";

/// The recorded listeners, replaced by the simulator's.
const RECORDED_CINDER: &str = "http://127.0.0.1:8776";
const RECORDED_KEYSTONE: &str = "http://127.0.0.1:5000";

// The recorded cloud (exchanges.md, its header and exchanges 01, 06, 27).
const PROJECT_A: &str = "292e8dd9652c4c1f9813511c0bb020db";
const PROJECT_B: &str = "126aa7413c9c45749d6643da8dee9d4c";
const PROJECT_ADMIN: &str = "56f01ff574f0407d8958449914d69e3b";
const USER_A: &str = "559f6a1c0eb043aa9ff8d520b73ff428";
const APPCRED_A: &str = "fac45e0ed6664525bd966f6d8a660f4c";
const VA1: &str = "37a51236-4b3d-43fa-9228-dcabfbed922d";
const VA2: &str = "3ce56a0e-aea0-4873-b8c5-cd8ac5bc0447";
const SA1: &str = "389e9158-c018-4e85-ad3c-cac25295c450";
const VB1: &str = "1b5c586f-3062-4c5c-9038-8ec25296642f";
const SB1: &str = "716daf8f-8cd8-48c7-bee8-63d6925b1e14";
/// tenant-a's three volumes from `seed.sh`, each with one snapshot
/// (`(volume, snapshot)`, newest first; exchange 06).
const SEEDED_A: [(&str, &str); 3] = [
    (
        "8eccd36a-cf3c-40c9-a479-38b93eee122e",
        "85f70069-0c68-484d-98ed-0ef6e0cc202a",
    ),
    (
        "02651ccf-de52-4a6d-a93f-23105ae76a19",
        "eb17546c-3a5a-4d73-8a52-f67c600a7b4a",
    ),
    (
        "27cce394-ae4e-44db-b493-fbb0130f26de",
        "01d987f2-7585-4dca-b4da-fca981e85b59",
    ),
];
/// tenant-b's three volumes from `seed.sh`. No exchange names them, only
/// their count (exchange 70: 4 volumes, 4 snapshots, 8 GiB with VB1), so
/// these ids are made up.
const SEEDED_B: [(&str, &str); 3] = [
    (
        "b0000000-0000-4000-8000-000000000003",
        "b5000000-0000-4000-8000-000000000003",
    ),
    (
        "b0000000-0000-4000-8000-000000000002",
        "b5000000-0000-4000-8000-000000000002",
    ),
    (
        "b0000000-0000-4000-8000-000000000001",
        "b5000000-0000-4000-8000-000000000001",
    ),
];

/// Who a redacted token belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// tenant-a's application credential (member + reader).
    TenantA,
    /// tenant-b's application credential.
    TenantB,
    /// The cloud admin, by password, scoped to the admin project.
    Admin,
    /// tenant-a's reader-only application credential (exchanges 76-77).
    ReaderA,
    /// Not a token (exchange 62 sent `gAAAAAB-not-a-real-token`).
    Garbage,
}

/// Exchanges whose token was not that of the path's project.
const TOKEN_OVERRIDES: &[(&str, Caller)] = &[
    ("err-bad-token", Caller::Garbage),
    ("err-tenant-b-token-on-tenant-a-path", Caller::TenantB),
    ("err-tenant-b-token-on-tenant-a-path-post", Caller::TenantB),
    ("err-reader-only-backup-create", Caller::ReaderA),
    ("reader-only-snapshots-list", Caller::ReaderA),
];

/// The garbage token the recorder sent (its length, 24, is the recorded one).
const GARBAGE_TOKEN: &str = "gAAAAAB-not-a-real-token";

/// What the recorder did after an exchange without recording it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waited until the running backups (or deletions) ended.
    FinishBackups,
    /// Polled the trace's backup until it ended (`backup-status-trace-3.0.json`).
    TraceThenFinish,
    /// Put tenant-b's backup quotas back to unlimited.
    LiftQuotasB,
}

/// The unrecorded steps, by the case they follow (`record_exchanges.py`).
const STEPS_AFTER: &[(&str, Step)] = &[
    ("backups-detail-status-creating", Step::TraceThenFinish),
    ("backup-create-3.43", Step::FinishBackups),
    ("backup-create-3.51", Step::FinishBackups),
    ("backup-create-3.51-bad-az", Step::FinishBackups),
    ("backup-create-full-body-3.0", Step::FinishBackups),
    (
        "backup-create-incremental-from-snapshot",
        Step::FinishBackups,
    ),
    ("err-quota-backup-gigabytes-exceeded", Step::LiftQuotasB),
    ("backup-show-deleting", Step::FinishBackups),
];

/// Exchanges the replay cannot cover, with the reason. None at present:
/// every recorded operation is one the simulator serves.
const UNCOVERABLE: &[(&str, &str)] = &[];

/// How a header is compared once present in both answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderRule {
    /// `req-<uuid>`.
    RequestId,
    /// Any value.
    Present,
    /// The recorded value, hosts mapped.
    Exact,
}

/// The headers compared; presence must match both ways.
const COMPARED_HEADERS: &[(&str, HeaderRule)] = &[
    ("x-openstack-request-id", HeaderRule::RequestId),
    ("x-compute-request-id", HeaderRule::RequestId),
    ("openstack-api-version", HeaderRule::Exact),
    ("vary", HeaderRule::Exact),
    ("x-subject-token", HeaderRule::Present),
    ("retry-after", HeaderRule::Exact),
    ("www-authenticate", HeaderRule::Exact),
    ("content-type", HeaderRule::Exact),
];

/// Body keys whose values belong to one run: compared by type only.
/// (`container` is `xx/yy/<backup id>`, derived from the id.)
const VOLATILE_KEYS: &[&str] = &[
    "created_at",
    "updated_at",
    "data_timestamp",
    "issued_at",
    "expires_at",
    "audit_ids",
    "container",
];

// ---------------------------------------------------------------- recordings

/// A request body as recorded.
#[derive(Debug, Clone)]
enum RecordedBody {
    /// JSON, as its recorded text (key order kept).
    Json(String),
    /// Not JSON: sent as is (exchange 55).
    Raw(String),
}

/// One recorded exchange.
#[derive(Debug)]
struct Exchange {
    file: String,
    case: String,
    method: String,
    url: String,
    request_headers: BTreeMap<String, String>,
    request_body: Option<RecordedBody>,
    status: u16,
    /// Lowercase names.
    response_headers: BTreeMap<String, String>,
    response_body: Value,
}

#[derive(Deserialize)]
struct FileShape<'a> {
    case: String,
    #[serde(borrow)]
    request: RequestShape<'a>,
    response: ResponseShape,
}

#[derive(Deserialize)]
struct RequestShape<'a> {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    #[serde(borrow)]
    body: &'a RawValue,
}

#[derive(Deserialize)]
struct ResponseShape {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// The status timeline of one backup after its create.
#[derive(Debug, Deserialize)]
struct Trace {
    backup_id: String,
    trace: Vec<TracePoint>,
}

#[derive(Debug, Deserialize)]
struct TracePoint {
    status: String,
}

/// The recordings folder; fails the test when it is missing.
fn exchanges_dir(path: &str) -> PathBuf {
    let dir = PathBuf::from(path);
    assert!(
        dir.is_dir(),
        "the recorded exchanges are missing: no folder {} (sim/tests/recordings/exchanges/*.json \
         in the repository); the replay cannot run without them.",
        dir.display()
    );
    dir
}

fn parse_exchange(file: &str, text: &str) -> Exchange {
    let shape: FileShape<'_> =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{file} is not an exchange: {e}"));
    let raw = shape.request.body.get();
    let request_body = if raw == "null" {
        None
    } else if raw.starts_with('"') {
        let text: String =
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("{file}: request body: {e}"));
        Some(RecordedBody::Raw(text))
    } else {
        Some(RecordedBody::Json(raw.to_owned()))
    };
    Exchange {
        file: file.to_owned(),
        case: shape.case,
        method: shape.request.method,
        url: shape.request.url,
        request_headers: shape.request.headers,
        request_body,
        status: shape.response.status,
        response_headers: shape
            .response
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        response_body: shape.response.body,
    }
}

/// Every `NN-<case>.json` in order, and the trace.
fn load(dir: &Path) -> (Vec<Exchange>, Trace) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json") && name.as_bytes()[0].is_ascii_digit())
        .collect();
    files.sort();
    let exchanges: Vec<Exchange> = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("reading {file}: {e}"));
            parse_exchange(file, &text)
        })
        .collect();
    for (i, exchange) in exchanges.iter().enumerate() {
        let number = format!("{:02}-", i + 1);
        assert!(
            exchange.file.starts_with(&number),
            "exchange files are not numbered 01, 02, ... without gaps: {} at position {}",
            exchange.file,
            i + 1
        );
    }
    let trace_path = dir.join(TRACE_FILE);
    let trace_text = std::fs::read_to_string(&trace_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", trace_path.display()));
    let trace: Trace =
        serde_json::from_str(&trace_text).unwrap_or_else(|e| panic!("{TRACE_FILE}: {e}"));
    (exchanges, trace)
}

// ---------------------------------------------------------------- seed

fn volume(id: &str, name: &str) -> VolumeSeed {
    VolumeSeed {
        id: id.to_owned(),
        name: name.to_owned(),
        size: 1,
        status: "available".to_owned(),
    }
}

fn snapshot(id: &str, name: &str, volume_id: &str) -> SnapshotSeed {
    SnapshotSeed {
        id: id.to_owned(),
        name: name.to_owned(),
        description: None,
        volume_id: volume_id.to_owned(),
        status: "available".to_owned(),
        metadata: BTreeMap::new(),
    }
}

fn credential(
    id: &str,
    name: &str,
    secret: &str,
    user: (&str, &str),
    roles: &[&str],
) -> AppCredentialSeed {
    AppCredentialSeed {
        id: id.to_owned(),
        name: name.to_owned(),
        secret: secret.to_owned(),
        user_id: user.0.to_owned(),
        user_name: user.1.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// One recorded tenant: the two fixture volumes of the recording (the
/// first with the snapshot) and the three `seed.sh` volumes, unlimited
/// quotas (`up.sh` lifts them).
fn tenant(
    name: &str,
    project_id: &str,
    app_credentials: Vec<AppCredentialSeed>,
    fixtures: &[(&str, &str)],
    fixture_snapshot: (&str, &str),
    seeded: &[(&str, &str)],
    stamp: &str,
) -> TenantSeed {
    let mut volumes: Vec<VolumeSeed> = fixtures.iter().map(|(id, name)| volume(id, name)).collect();
    let mut snapshots = vec![snapshot(
        fixture_snapshot.0,
        fixture_snapshot.1,
        fixtures[0].0,
    )];
    let count = seeded.len();
    for (i, (volume_id, snapshot_id)) in seeded.iter().enumerate() {
        let n = count - 1 - i;
        volumes.push(volume(volume_id, &format!("seed-{stamp}-{n}")));
        snapshots.push(snapshot(
            snapshot_id,
            &format!("seed-snap-{stamp}-{n}"),
            volume_id,
        ));
    }
    TenantSeed {
        name: name.to_owned(),
        project_id: project_id.to_owned(),
        app_credentials,
        users: Vec::new(),
        volumes,
        snapshots,
        quotas: Quotas::UNLIMITED,
    }
}

/// The recorded cloud as a seed.
fn recorded_seed() -> Seed {
    let user_a = (USER_A, "user-a");
    let user_b = ("b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1", "user-b");
    let tenant_a = tenant(
        "tenant-a",
        PROJECT_A,
        vec![
            credential(
                APPCRED_A,
                "harness-a",
                "<app-cred-secret-a>",
                user_a,
                &["member", "reader"],
            ),
            credential(
                "7eade7000000000000000000000000aa",
                "rec-reader-only",
                "<app-cred-secret-reader>",
                user_a,
                &["reader"],
            ),
        ],
        &[(VA1, "rec-vol-a1"), (VA2, "rec-vol-a2")],
        (SA1, "rec-snap-a1"),
        &SEEDED_A,
        "181932",
    );
    let tenant_b = tenant(
        "tenant-b",
        PROJECT_B,
        vec![credential(
            "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0",
            "harness-b",
            "<app-cred-secret-b>",
            user_b,
            &["member", "reader"],
        )],
        &[(VB1, "rec-vol-b1")],
        (SB1, "rec-snap-b1"),
        &SEEDED_B,
        "181932",
    );
    let admin = TenantSeed {
        name: "admin".to_owned(),
        project_id: PROJECT_ADMIN.to_owned(),
        app_credentials: Vec::new(),
        users: vec![UserSeed {
            id: "ad".repeat(16),
            name: "admin".to_owned(),
            password: "<admin-password>".to_owned(),
            roles: vec!["admin".to_owned(), "member".to_owned(), "reader".to_owned()],
        }],
        volumes: Vec::new(),
        snapshots: Vec::new(),
        quotas: Quotas::UNLIMITED,
    };
    let seed = Seed {
        tenants: vec![tenant_a, tenant_b, admin],
    };
    seed.check().expect("the recorded cloud is a valid seed");
    seed
}

/// Ids that are the same in the recordings and the simulator.
fn seeded_ids(seed: &Seed) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for tenant in &seed.tenants {
        ids.insert(tenant.project_id.clone());
        ids.extend(tenant.volumes.iter().map(|v| v.id.clone()));
        ids.extend(tenant.snapshots.iter().map(|s| s.id.clone()));
        for credential in &tenant.app_credentials {
            ids.insert(credential.id.clone());
            ids.insert(credential.user_id.clone());
        }
        ids.extend(tenant.users.iter().map(|u| u.id.clone()));
    }
    ids
}

// ---------------------------------------------------------------- comparison

/// What the recording says the answer is (hosts and ids already mapped).
#[derive(Debug, Clone)]
struct Expected {
    status: u16,
    /// Lowercase names.
    headers: BTreeMap<String, String>,
    body: Value,
}

/// What the simulator answered.
#[derive(Debug, Clone)]
struct Actual {
    status: u16,
    /// Lowercase names.
    headers: BTreeMap<String, String>,
    body: Value,
}

/// One difference between a recorded and a simulated answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mismatch {
    Status {
        expected: u16,
        actual: u16,
    },
    HeaderPresence {
        name: String,
        expected: Option<String>,
        actual: Option<String>,
    },
    HeaderValue {
        name: String,
        expected: String,
        actual: String,
    },
    HeaderForm {
        name: String,
        actual: String,
        why: &'static str,
    },
    MissingKey {
        path: String,
    },
    ExtraKey {
        path: String,
    },
    Type {
        path: String,
        expected: &'static str,
        actual: &'static str,
    },
    Length {
        path: String,
        expected: usize,
        actual: usize,
    },
    Value {
        path: String,
        expected: Value,
        actual: Value,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Status { expected, actual } => {
                write!(f, "status: recorded {expected}, simulator {actual}")
            }
            Mismatch::HeaderPresence {
                name,
                expected,
                actual,
            } => write!(
                f,
                "header {name}: recorded {expected:?}, simulator {actual:?}"
            ),
            Mismatch::HeaderValue {
                name,
                expected,
                actual,
            } => write!(
                f,
                "header {name}: recorded {expected:?}, simulator {actual:?}"
            ),
            Mismatch::HeaderForm { name, actual, why } => {
                write!(f, "header {name}: {actual:?} {why}")
            }
            Mismatch::MissingKey { path } => write!(f, "body {path}: missing in the simulator"),
            Mismatch::ExtraKey { path } => write!(f, "body {path}: not in the recording"),
            Mismatch::Type {
                path,
                expected,
                actual,
            } => write!(
                f,
                "body {path}: recorded a {expected}, simulator a {actual}"
            ),
            Mismatch::Length {
                path,
                expected,
                actual,
            } => write!(
                f,
                "body {path}: recorded {expected} items, simulator {actual}"
            ),
            Mismatch::Value {
                path,
                expected,
                actual,
            } => write!(f, "body {path}: recorded {expected}, simulator {actual}"),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a scalar under `key` is compared by type only.
fn volatile(key: Option<&str>, expected: &Value, known_ids: &BTreeSet<String>) -> bool {
    match key {
        Some(key) if VOLATILE_KEYS.contains(&key) => true,
        Some("id") => expected.as_str().is_some_and(|id| !known_ids.contains(id)),
        _ => false,
    }
}

fn compare_value(
    path: &str,
    key: Option<&str>,
    expected: &Value,
    actual: &Value,
    known_ids: &BTreeSet<String>,
    out: &mut Vec<Mismatch>,
) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, e_value) in e {
                let child = format!("{path}.{k}");
                match a.get(k) {
                    Some(a_value) => {
                        compare_value(&child, Some(k), e_value, a_value, known_ids, out);
                    }
                    None => out.push(Mismatch::MissingKey { path: child }),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(Mismatch::ExtraKey {
                    path: format!("{path}.{k}"),
                });
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(Mismatch::Length {
                    path: path.to_owned(),
                    expected: e.len(),
                    actual: a.len(),
                });
            }
            for (i, (e_item, a_item)) in e.iter().zip(a).enumerate() {
                // Items inherit the key: `audit_ids` elements stay volatile.
                compare_value(&format!("{path}[{i}]"), key, e_item, a_item, known_ids, out);
            }
        }
        _ if type_name(expected) != type_name(actual) => out.push(Mismatch::Type {
            path: path.to_owned(),
            expected: type_name(expected),
            actual: type_name(actual),
        }),
        _ if volatile(key, expected, known_ids) => {}
        _ if expected != actual => out.push(Mismatch::Value {
            path: path.to_owned(),
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => {}
    }
}

fn compare_headers(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
    out: &mut Vec<Mismatch>,
) {
    for (name, rule) in COMPARED_HEADERS {
        let (e, a) = (expected.get(*name), actual.get(*name));
        match (e, a) {
            (Some(e), Some(a)) => match rule {
                HeaderRule::RequestId if !is_request_id(a) => out.push(Mismatch::HeaderForm {
                    name: (*name).to_owned(),
                    actual: a.clone(),
                    why: "is not req-<uuid>",
                }),
                HeaderRule::Exact if e != a => out.push(Mismatch::HeaderValue {
                    name: (*name).to_owned(),
                    expected: e.clone(),
                    actual: a.clone(),
                }),
                _ => {}
            },
            (None, None) => {}
            _ => out.push(Mismatch::HeaderPresence {
                name: (*name).to_owned(),
                expected: e.cloned(),
                actual: a.cloned(),
            }),
        }
    }
    // Cinder writes one id under both names.
    let names = ["x-openstack-request-id", "x-compute-request-id"];
    if let (Some(e1), Some(e2), Some(a1), Some(a2)) = (
        expected.get(names[0]),
        expected.get(names[1]),
        actual.get(names[0]),
        actual.get(names[1]),
    ) && e1 == e2
        && a1 != a2
    {
        out.push(Mismatch::HeaderForm {
            name: names[1].to_owned(),
            actual: a2.clone(),
            why: "differs from x-openstack-request-id",
        });
    }
}

/// Everything that differs between a recorded answer and the simulator's.
/// `sent_request_id` is the caller's `X-OpenStack-Request-ID`, if any.
fn compare(
    expected: &Expected,
    actual: &Actual,
    known_ids: &BTreeSet<String>,
    sent_request_id: Option<&str>,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if expected.status != actual.status {
        out.push(Mismatch::Status {
            expected: expected.status,
            actual: actual.status,
        });
    }
    compare_headers(&expected.headers, &actual.headers, &mut out);
    if let Some(sent) = sent_request_id {
        let name = "x-openstack-request-id";
        let echoed = |headers: &BTreeMap<String, String>| {
            headers.get(name).map(String::as_str) == Some(sent)
        };
        if echoed(&expected.headers) != echoed(&actual.headers) {
            out.push(Mismatch::HeaderForm {
                name: name.to_owned(),
                actual: actual.headers.get(name).cloned().unwrap_or_default(),
                why: "echoes (or does not echo) the caller's X-OpenStack-Request-ID unlike the recording",
            });
        }
    }
    compare_value("$", None, &expected.body, &actual.body, known_ids, &mut out);
    out
}

// ---------------------------------------------------------------- replay

/// The simulator under replay and what the replay learned so far.
struct Replay {
    running: RunningSim,
    client: reqwest::Client,
    tokens: BTreeMap<&'static str, String>,
    /// Recorded backup id -> the simulator's.
    backup_ids: BTreeMap<String, String>,
    /// Ids compared by value (seeded ones, and the simulator's backup ids).
    known_ids: BTreeSet<String>,
}

fn caller_key(caller: Caller) -> &'static str {
    match caller {
        Caller::TenantA => "tenant-a",
        Caller::TenantB => "tenant-b",
        Caller::Admin => "admin",
        Caller::ReaderA => "reader-a",
        Caller::Garbage => "garbage",
    }
}

fn caller_for(case: &str, url: &str) -> Caller {
    if let Some((_, caller)) = TOKEN_OVERRIDES.iter().find(|(c, _)| *c == case) {
        return *caller;
    }
    if url.contains(&format!("/v3/{PROJECT_B}")) {
        Caller::TenantB
    } else if url.contains(&format!("/v3/{PROJECT_ADMIN}")) {
        Caller::Admin
    } else {
        Caller::TenantA
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl Replay {
    async fn start(seed: &Seed) -> Replay {
        let config = SimConfig {
            // Backups end only through `finish_pending`.
            backup_duration: Duration::from_secs(24 * 3600),
            ..SimConfig::default()
        };
        let sim = Sim::new(config, seed.clone());
        let running = sim.start().await.expect("simulator starts");
        let mut replay = Replay {
            running,
            client: reqwest::Client::new(),
            tokens: BTreeMap::new(),
            backup_ids: BTreeMap::new(),
            known_ids: seeded_ids(seed),
        };
        let app_credential = |id: &str, secret: &str| {
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": id, "secret": secret}}}})
        };
        let credentials = [
            ("tenant-a", app_credential(APPCRED_A, "<app-cred-secret-a>")),
            (
                "tenant-b",
                app_credential("b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0", "<app-cred-secret-b>"),
            ),
            (
                "reader-a",
                app_credential(
                    "7eade7000000000000000000000000aa",
                    "<app-cred-secret-reader>",
                ),
            ),
            // The recorder's admin token: password, scoped to the admin project.
            (
                "admin",
                json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"}, "password": "<admin-password>"}}},
                    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}),
            ),
        ];
        for (key, body) in credentials {
            let token = replay.issue(&body).await;
            replay.tokens.insert(key, token);
        }
        replay.tokens.insert("garbage", GARBAGE_TOKEN.to_owned());
        replay
    }

    fn sim(&self) -> &Sim {
        &self.running.sim
    }

    async fn issue(&self, body: &Value) -> String {
        let response = self
            .client
            .post(format!("{}/auth/tokens", self.running.keystone_url))
            .json(body)
            .send()
            .await
            .expect("token issue answers");
        assert_eq!(response.status(), StatusCode::CREATED, "token for {body}");
        response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("X-Subject-Token")
            .to_owned()
    }

    /// Recorded text with the simulator's hosts and backup ids.
    fn localize(&self, text: &str) -> String {
        let keystone_root = self
            .running
            .keystone_url
            .strip_suffix("/v3")
            .unwrap_or(&self.running.keystone_url);
        let mut out = text
            .replace(RECORDED_CINDER, &self.running.cinder_url)
            .replace(RECORDED_KEYSTONE, keystone_root);
        for (recorded, simulated) in &self.backup_ids {
            out = out.replace(recorded.as_str(), simulated);
        }
        out
    }

    fn localize_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.localize(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.localize_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.localize_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Sends one recorded request and compares the answer.
    async fn run(&mut self, exchange: &Exchange) -> Vec<Mismatch> {
        let url = self.localize(&exchange.url);
        let method = Method::from_bytes(exchange.method.as_bytes())
            .unwrap_or_else(|e| panic!("{}: method: {e}", exchange.file));
        let caller = caller_for(&exchange.case, &exchange.url);
        let mut request = self.client.request(method, &url);
        let mut sent_request_id = None;
        for (name, value) in &exchange.request_headers {
            let value = if value.starts_with("<redacted token") {
                self.tokens[caller_key(caller)].clone()
            } else {
                self.localize(value)
            };
            if name.eq_ignore_ascii_case("x-openstack-request-id") {
                sent_request_id = Some(value.clone());
            }
            request = request.header(name.as_str(), value);
        }
        request = match &exchange.request_body {
            Some(RecordedBody::Json(text)) => request.body(self.localize(text)),
            Some(RecordedBody::Raw(text)) => request.body(text.clone()),
            None => request,
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: no answer: {e}", exchange.file));
        let status = response.status().as_u16();
        let headers = header_map(response.headers());
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{}: reading the answer: {e}", exchange.file));
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };

        // A backup the real Cinder created: learn the simulator's id for it.
        if exchange.status == 202
            && status == 202
            && let (Some(recorded), Some(simulated)) = (
                exchange.response_body["backup"]["id"].as_str(),
                body["backup"]["id"].as_str(),
            )
        {
            self.backup_ids
                .insert(recorded.to_owned(), simulated.to_owned());
            self.known_ids.insert(simulated.to_owned());
        }

        let expected = Expected {
            status: exchange.status,
            headers: exchange
                .response_headers
                .iter()
                .map(|(k, v)| (k.clone(), self.localize(v)))
                .collect(),
            body: self.localize_value(&exchange.response_body),
        };
        let actual = Actual {
            status,
            headers,
            body,
        };
        compare(
            &expected,
            &actual,
            &self.known_ids,
            sent_request_id.as_deref(),
        )
    }

    /// The status of a backup, as the simulator has it now.
    fn backup_status(&self, project_id: &str, backup_id: &str) -> String {
        self.sim()
            .backups(project_id)
            .iter()
            .find(|b| b["id"] == backup_id)
            .and_then(|b| b["status"].as_str())
            .map_or_else(|| "HTTP 404".to_owned(), str::to_owned)
    }

    /// Does an unrecorded step; returns what went wrong, if anything.
    fn step(&self, step: Step, trace: &Trace) -> Option<String> {
        match step {
            Step::FinishBackups => self.sim().finish_pending(),
            Step::TraceThenFinish => {
                let Some(backup_id) = self.backup_ids.get(&trace.backup_id) else {
                    return Some(format!(
                        "{TRACE_FILE}: backup {} was never created by the simulator",
                        trace.backup_id
                    ));
                };
                let mut seen = vec![self.backup_status(PROJECT_A, backup_id)];
                self.sim().finish_pending();
                seen.push(self.backup_status(PROJECT_A, backup_id));
                seen.dedup();
                let mut recorded: Vec<String> =
                    trace.trace.iter().map(|p| p.status.clone()).collect();
                recorded.dedup();
                if seen != recorded {
                    return Some(format!(
                        "{TRACE_FILE}: recorded statuses {recorded:?}, simulator {seen:?}"
                    ));
                }
            }
            Step::LiftQuotasB => self.sim().set_quotas(PROJECT_B, Quotas::UNLIMITED),
        }
        None
    }
}

#[tokio::test]
async fn every_recorded_exchange_replays_against_the_simulator() {
    let dir = exchanges_dir(EXCHANGES_DIR);
    let (exchanges, trace) = load(&dir);
    assert_eq!(
        exchanges.len(),
        EXPECTED_EXCHANGES,
        "{} holds {} exchanges, the recorder writes {EXPECTED_EXCHANGES}",
        dir.display(),
        exchanges.len()
    );
    let cases: BTreeSet<&str> = exchanges.iter().map(|e| e.case.as_str()).collect();
    let named = TOKEN_OVERRIDES
        .iter()
        .map(|(c, _)| *c)
        .chain(STEPS_AFTER.iter().map(|(c, _)| *c))
        .chain(UNCOVERABLE.iter().map(|(c, _)| *c));
    for case in named {
        assert!(cases.contains(case), "no recorded exchange is named {case}");
    }

    let seed = recorded_seed();
    let mut replay = Replay::start(&seed).await;
    let mut failures = Vec::new();
    let mut replayed = 0;
    for exchange in &exchanges {
        if let Some((_, reason)) = UNCOVERABLE.iter().find(|(c, _)| *c == exchange.case) {
            eprintln!("not replayed: {} ({reason})", exchange.file);
            continue;
        }
        let mismatches = replay.run(exchange).await;
        replayed += 1;
        if !mismatches.is_empty() {
            let lines: Vec<String> = mismatches.iter().map(|m| format!("    {m}")).collect();
            failures.push(format!("{}:\n{}", exchange.file, lines.join("\n")));
        }
        for (_, step) in STEPS_AFTER.iter().filter(|(c, _)| *c == exchange.case) {
            failures.extend(replay.step(*step, &trace));
        }
    }
    eprintln!(
        "replayed {replayed} of {} recorded exchanges ({} listed as uncoverable) and {TRACE_FILE}",
        exchanges.len(),
        UNCOVERABLE.len()
    );
    assert_eq!(replayed + UNCOVERABLE.len(), exchanges.len());
    assert!(
        failures.is_empty(),
        "the simulator differs from the recordings in {} places:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The comparison can fail: it reports what differs, and only that.
#[test]
fn comparator_reports_status_type_key_and_value_differences() {
    let known: BTreeSet<String> = ["vol-1".to_owned()].into();
    let headers = |version: Option<&str>| {
        let mut h = BTreeMap::from([(
            "x-openstack-request-id".to_owned(),
            "req-2feef502-38ee-45f1-8dea-5f17a59ae31d".to_owned(),
        )]);
        if let Some(version) = version {
            h.insert(
                "openstack-api-version".to_owned(),
                format!("volume {version}"),
            );
        }
        h
    };
    let expected = Expected {
        status: 200,
        headers: headers(Some("3.0")),
        body: json!({"backup": {"id": "rec-1", "volume_id": "vol-1", "size": 1,
            "created_at": "2026-11-25T18:19:53.000000", "name": "n", "links": [1, 2]}}),
    };

    // The same answer, run-specific values aside, passes.
    let same = Actual {
        status: 200,
        headers: headers(Some("3.0")),
        body: json!({"backup": {"id": "sim-9", "volume_id": "vol-1", "size": 1,
            "created_at": "2030-01-01T00:00:00.000000", "name": "n", "links": [1, 2]}}),
    };
    assert_eq!(compare(&expected, &same, &known, None), Vec::new());

    let wrong = Actual {
        status: 404,
        headers: headers(None),
        body: json!({"backup": {"id": "sim-9", "volume_id": "vol-2", "size": "1",
            "created_at": "2030-01-01T00:00:00.000000", "links": [1], "extra": true}}),
    };
    let mismatches = compare(&expected, &wrong, &known, None);
    let expect = [
        Mismatch::Status {
            expected: 200,
            actual: 404,
        },
        Mismatch::HeaderPresence {
            name: "openstack-api-version".to_owned(),
            expected: Some("volume 3.0".to_owned()),
            actual: None,
        },
        Mismatch::Length {
            path: "$.backup.links".to_owned(),
            expected: 2,
            actual: 1,
        },
        Mismatch::MissingKey {
            path: "$.backup.name".to_owned(),
        },
        Mismatch::Type {
            path: "$.backup.size".to_owned(),
            expected: "integer",
            actual: "string",
        },
        Mismatch::Value {
            path: "$.backup.volume_id".to_owned(),
            expected: json!("vol-1"),
            actual: json!("vol-2"),
        },
        Mismatch::ExtraKey {
            path: "$.backup.extra".to_owned(),
        },
    ];
    for m in &expect {
        assert!(mismatches.contains(m), "{m} not reported in {mismatches:?}");
    }
    assert_eq!(mismatches.len(), expect.len(), "{mismatches:?}");

    // A request id of the wrong form, and an echoed caller id, are reported.
    let mut echoed = same.clone();
    echoed
        .headers
        .insert("x-openstack-request-id".to_owned(), "req-mine".to_owned());
    let mismatches = compare(&expected, &echoed, &known, Some("req-mine"));
    assert_eq!(mismatches.len(), 2, "{mismatches:?}");
}

/// Without the recordings the replay fails; it never passes vacuously.
#[test]
#[should_panic(expected = "the recorded exchanges are missing")]
fn missing_recordings_fail_the_replay() {
    exchanges_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-folder"));
}
