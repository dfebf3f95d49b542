//! The simulator's HTTP control endpoint, under `/_sim/` on Keystone's
//! listener (the `auth_url` a clouds.yaml names, so whoever can reach the
//! cloud can reach it): the call counters, the run-time settings, ending
//! pending backups and counting backups. It lets a benchmark or a test of
//! the `openstack-sim` binary steer it as an in-process test steers
//! [`Sim`]. Its calls are neither counted nor subject to faults or chaos:
//! it observes the cloud and must not disturb what it observes.
//!
//! It has no authentication at all: a test tool, for loopback only.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use crate::{Chaos, Sim};

/// The control routes, to nest under `/_sim`.
pub(crate) fn router(sim: Sim) -> Router {
    Router::new()
        .route("/calls", get(get_calls).delete(reset_calls))
        .route("/settings", get(get_settings).patch(update_settings))
        .route("/finish-pending", post(finish_pending))
        .route("/backups/count", get(count_backups))
        .method_not_allowed_fallback(bad_method)
        .fallback(not_found)
        .with_state(sim)
}

/// A refusal: `{"error": "..."}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// One row of `GET /_sim/calls`.
#[derive(Debug, Serialize)]
struct CallRow {
    service: &'static str,
    operation: &'static str,
    /// 0 for a call whose connection was cut without an answer.
    status: u16,
    count: u64,
}

/// `GET /_sim/calls`.
#[derive(Debug, Serialize)]
struct CallsResponse {
    /// By service, then operation, then status.
    calls: Vec<CallRow>,
    /// The sum of the counts.
    total: u64,
}

/// `GET /_sim/calls`: answered calls by service, operation and status.
async fn get_calls(State(sim): State<Sim>) -> Json<CallsResponse> {
    let calls: Vec<CallRow> = sim
        .calls_by_status()
        .into_iter()
        .map(|c| CallRow {
            service: c.service,
            operation: c.operation,
            status: c.status,
            count: c.count,
        })
        .collect();
    let total = calls.iter().map(|c| c.count).sum();
    Json(CallsResponse { calls, total })
}

/// `DELETE /_sim/calls`: every counter back to zero.
async fn reset_calls(State(sim): State<Sim>) -> StatusCode {
    sim.reset_calls();
    StatusCode::NO_CONTENT
}

/// `POST /_sim/finish-pending`: every `creating` or `deleting` backup ends now.
async fn finish_pending(State(sim): State<Sim>) -> StatusCode {
    sim.finish_pending();
    StatusCode::NO_CONTENT
}

/// `GET /_sim/backups/count`.
#[derive(Debug, Serialize)]
struct BackupCountResponse {
    creating: usize,
    available: usize,
    error: usize,
    deleting: usize,
    restoring: usize,
    total: usize,
}

/// `GET /_sim/backups/count`: backups by status, all projects.
async fn count_backups(State(sim): State<Sim>) -> Json<BackupCountResponse> {
    let counts = sim.backup_counts();
    Json(BackupCountResponse {
        creating: counts.creating,
        available: counts.available,
        error: counts.error,
        deleting: counts.deleting,
        restoring: counts.restoring,
        total: counts.total(),
    })
}

/// The run-time settings, as `GET /_sim/settings` shows them.
#[derive(Debug, Serialize)]
struct SettingsResponse {
    backup_duration_ms: u64,
    token_ttl_ms: u64,
    fail_reason: Option<String>,
    chaos: Option<ChaosView>,
}

/// [`Chaos`] with its latency in milliseconds.
#[derive(Debug, Serialize)]
struct ChaosView {
    error_rate: f64,
    error_status: u16,
    latency_ms: u64,
    latency_rate: f64,
    drop_before_rate: f64,
    drop_after_rate: f64,
    keystone: bool,
    seed: Option<u64>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn settings(sim: &Sim) -> SettingsResponse {
    let (backup_duration, token_ttl, fail_reason) = {
        let state = sim.state();
        (
            state.backup_duration,
            state.token_ttl,
            state.fail_reason.clone(),
        )
    };
    SettingsResponse {
        backup_duration_ms: millis(backup_duration),
        token_ttl_ms: millis(token_ttl),
        fail_reason,
        chaos: sim.chaos().map(|c| ChaosView {
            error_rate: c.error_rate,
            error_status: c.error_status,
            latency_ms: millis(c.latency),
            latency_rate: c.latency_rate,
            drop_before_rate: c.drop_before_rate,
            drop_after_rate: c.drop_after_rate,
            keystone: c.keystone,
            seed: c.seed,
        }),
    }
}

/// `GET /_sim/settings`.
async fn get_settings(State(sim): State<Sim>) -> Json<SettingsResponse> {
    Json(settings(&sim))
}

/// A `PATCH /_sim/settings` body: each field present is set. Nullable
/// fields are `Option<Option<_>>` (absent, null, value); a null for any
/// other field is a wrong type, not "leave it".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    #[serde(default, deserialize_with = "value")]
    backup_duration_ms: Option<u64>,
    #[serde(default, deserialize_with = "value")]
    token_ttl_ms: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    fail_reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    chaos: Option<Option<ChaosPatch>>,
}

/// The `chaos` object of a patch, merged over the chaos in force (over
/// [`Chaos::default`] when it is off), as a JSON merge patch (RFC 7386) is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChaosPatch {
    #[serde(default, deserialize_with = "value")]
    error_rate: Option<f64>,
    #[serde(default, deserialize_with = "value")]
    error_status: Option<u16>,
    #[serde(default, deserialize_with = "value")]
    latency_ms: Option<u64>,
    #[serde(default, deserialize_with = "value")]
    latency_rate: Option<f64>,
    #[serde(default, deserialize_with = "value")]
    drop_before_rate: Option<f64>,
    #[serde(default, deserialize_with = "value")]
    drop_after_rate: Option<f64>,
    #[serde(default, deserialize_with = "value")]
    keystone: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    seed: Option<Option<u64>>,
}

/// A field that, when present, holds a value (null refused).
fn value<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A field that, when present, holds a value or null.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl ChaosPatch {
    /// `base` with the fields of the patch, or why the patch is refused.
    fn apply(self, mut base: Chaos) -> Result<Chaos, String> {
        let rate = |name: &str, value: Option<f64>, slot: &mut f64| match value {
            Some(rate) if !(0.0..=1.0).contains(&rate) => Err(format!(
                "chaos.{name} must be a fraction between 0 and 1, not {rate}"
            )),
            Some(rate) => {
                *slot = rate;
                Ok(())
            }
            None => Ok(()),
        };
        rate("error_rate", self.error_rate, &mut base.error_rate)?;
        rate("latency_rate", self.latency_rate, &mut base.latency_rate)?;
        rate(
            "drop_before_rate",
            self.drop_before_rate,
            &mut base.drop_before_rate,
        )?;
        rate(
            "drop_after_rate",
            self.drop_after_rate,
            &mut base.drop_after_rate,
        )?;
        if let Some(status) = self.error_status {
            if !(400..=599).contains(&status) {
                return Err(format!(
                    "chaos.error_status must be an error status (400 to 599), not {status}"
                ));
            }
            base.error_status = status;
        }
        if let Some(ms) = self.latency_ms {
            base.latency = Duration::from_millis(ms);
        }
        if let Some(keystone) = self.keystone {
            base.keystone = keystone;
        }
        if let Some(seed) = self.seed {
            base.seed = seed;
        }
        Ok(base)
    }
}

/// Reads a patch body: a JSON object of known fields.
fn parse_patch(body: &[u8]) -> Result<SettingsPatch, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    // Serde would also read a struct from an array, by position.
    if !value.is_object() {
        return Err("the settings must be a JSON object".to_owned());
    }
    serde_json::from_value(value).map_err(|e| format!("invalid settings: {e}"))
}

/// `PATCH /_sim/settings`: sets the fields given and answers the settings
/// now in force. A body with an unknown field, a wrong type or a rate
/// outside 0..1 is refused whole: nothing changes.
async fn update_settings(State(sim): State<Sim>, body: Bytes) -> Response {
    let patch = match parse_patch(&body) {
        Ok(patch) => patch,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // Everything is checked before anything is set.
    let chaos = match patch.chaos {
        Some(Some(chaos)) => match chaos.apply(sim.chaos().unwrap_or_default()) {
            Ok(chaos) => Some(Some(chaos)),
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        },
        Some(None) => Some(None),
        None => None,
    };
    if let Some(ms) = patch.backup_duration_ms {
        sim.set_backup_duration(Duration::from_millis(ms));
    }
    if let Some(ms) = patch.token_ttl_ms {
        sim.set_token_ttl(Duration::from_millis(ms));
    }
    if let Some(reason) = patch.fail_reason {
        sim.fail_backups(reason);
    }
    if let Some(chaos) = chaos {
        sim.set_chaos(chaos);
    }
    Json(settings(&sim)).into_response()
}

/// The routes, for the answers to a request that matches none.
const ROUTES: &str = "GET and DELETE /_sim/calls, GET and PATCH /_sim/settings, \
                      POST /_sim/finish-pending, GET /_sim/backups/count";

/// A control path with a method it does not have.
async fn bad_method(method: Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here; the control routes are {ROUTES}"),
    )
}

/// A path under `/_sim/` that names no control route.
async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such control route; they are {ROUTES}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(body: &str) -> Result<SettingsPatch, String> {
        parse_patch(body.as_bytes())
    }

    #[test]
    fn absent_null_and_values_are_told_apart() {
        let empty = patch("{}").expect("valid");
        assert!(empty.backup_duration_ms.is_none() && empty.chaos.is_none());
        let off = patch(r#"{"chaos": null, "fail_reason": null}"#).expect("valid");
        assert!(matches!(off.chaos, Some(None)));
        assert_eq!(off.fail_reason, Some(None));
        assert!(patch(r#"{"backup_duration_ms": null}"#).is_err());
        assert!(patch(r#"{"backup_duration_ms": 1.5}"#).is_err());
        assert!(patch(r#"{"backup_duration_ms": -1}"#).is_err());
        assert!(patch(r#"{"bogus": 1}"#).is_err());
        assert!(patch(r#"{"chaos": {"bogus": 1}}"#).is_err());
        assert!(patch("[]").is_err());
        assert!(patch("[0]").is_err());
        assert!(patch("").is_err());
    }

    #[test]
    fn a_chaos_patch_merges_and_checks_its_rates() {
        let base = Chaos {
            error_rate: 0.2,
            seed: Some(3),
            ..Chaos::default()
        };
        let merged = patch(r#"{"chaos": {"latency_ms": 50, "latency_rate": 1, "seed": null}}"#)
            .expect("valid")
            .chaos
            .flatten()
            .expect("chaos")
            .apply(base.clone())
            .expect("in range");
        assert_eq!(merged.error_rate, 0.2);
        assert_eq!(merged.latency, Duration::from_millis(50));
        assert_eq!(merged.latency_rate, 1.0);
        assert_eq!(merged.seed, None);
        for bad in [
            r#"{"chaos": {"error_rate": 1.5}}"#,
            r#"{"chaos": {"drop_after_rate": -0.1}}"#,
            r#"{"chaos": {"error_status": 200}}"#,
        ] {
            let chaos = patch(bad).expect("parses").chaos.flatten().expect("chaos");
            assert!(chaos.apply(base.clone()).is_err(), "{bad}");
        }
    }
}
