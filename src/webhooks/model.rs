//! Subscriptions and deliveries, as the store keeps them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::jobs::model::JobId;

/// A tenant's webhook subscription: where its events go, and the secrets
/// they are signed with (never shown by `Debug`).
#[derive(Clone, PartialEq)]
pub struct Subscription {
    /// Its id (a UUIDv7; a create's callback has its job's id).
    pub id: Uuid,
    /// The tenant's Keystone project.
    pub project_id: String,
    /// Where deliveries are sent.
    pub url: String,
    /// The tenant's note.
    pub description: String,
    /// Only these event types (`job.succeeded`...); `None`: all.
    pub event_types: Option<Vec<String>>,
    /// A create's `callback_url`: only this job's events.
    pub job_id: Option<JobId>,
    /// The secret deliveries are signed with (`whsec_...`).
    pub secret: String,
    /// The secret before the last rotation, also signed with until
    /// `previous_secret_until`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops being used.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// The last of the tenant's events turned into deliveries.
    pub cursor: i64,
    /// A callback whose job has ended: nothing more to deliver.
    pub closed: bool,
    /// A callback whose create is not answered yet: its deliveries are not
    /// due before then (or before the answer releases them).
    pub held_until: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("job_id", &self.job_id)
            .field("secret", &"***")
            .field("previous_secret_until", &self.previous_secret_until)
            .field("cursor", &self.cursor)
            .field("closed", &self.closed)
            .field("held_until", &self.held_until)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The secrets a delivery at `now` is signed with: the current one, and
    /// the previous one while it is still valid.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(previous);
        }
        secrets
    }

    /// Whether events of this type go to this subscription.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type))
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet: an attempt is due at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every attempt failed, for as long as retries last.
    Failed,
}

impl DeliveryStatus {
    /// The name the store and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "succeeded" => Ok(DeliveryStatus::Succeeded),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(format!(
                "`{other}` is not a delivery status (pending, succeeded or failed)"
            )),
        }
    }
}

/// One event on its way to one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Its id: the `webhook-id` of every attempt.
    pub id: Uuid,
    /// The subscription.
    pub subscription_id: Uuid,
    /// The event's number among the tenant's events.
    pub event_seq: i64,
    /// The event's type.
    pub event_type: String,
    /// The event's job.
    pub job_id: JobId,
    /// The request body: the event as JSON.
    pub payload: String,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the receiver last answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl Delivery {
    /// A delivery of an event, due now.
    pub fn new(
        subscription_id: Uuid,
        event_seq: i64,
        event_type: &str,
        job_id: JobId,
        payload: String,
    ) -> Self {
        let now = crate::jobs::model::now();
        Delivery {
            id: Uuid::now_v7(),
            subscription_id,
            event_seq,
            event_type: event_type.to_owned(),
            job_id,
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: Some(now),
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
        }
    }
}

/// What an attempt came to, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// When the next is due (still pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription() -> Subscription {
        Subscription {
            id: Uuid::now_v7(),
            project_id: "p1".into(),
            url: "https://hooks.example.com/".into(),
            description: String::new(),
            event_types: None,
            job_id: None,
            secret: "whsec_new".into(),
            previous_secret: Some("whsec_old".into()),
            previous_secret_until: None,
            cursor: 0,
            closed: false,
            created_at: crate::jobs::model::now(),
            held_until: None,
        }
    }

    #[test]
    fn a_rotated_out_secret_signs_until_its_overlap_ends() {
        let now = crate::jobs::model::now();
        let mut s = subscription();
        s.previous_secret_until = Some(now + chrono::Duration::seconds(1));
        assert_eq!(s.signing_secrets(now), ["whsec_new", "whsec_old"]);
        assert_eq!(
            s.signing_secrets(now + chrono::Duration::seconds(1)),
            ["whsec_new"],
            "the overlap has ended"
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!("{:?}", subscription());
        assert!(!shown.contains("whsec_"), "{shown}");
    }

    #[test]
    fn a_subscription_without_types_wants_every_event() {
        let mut s = subscription();
        assert!(s.wants("job.created"));
        s.event_types = Some(vec!["job.succeeded".into()]);
        assert!(s.wants("job.succeeded") && !s.wants("job.created"));
    }
}
