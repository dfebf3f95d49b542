//! The webhook half of the store: subscriptions and their deliveries (see
//! the `webhooks` migrations for the rules the tables keep).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Error;
use crate::webhooks::model::{AttemptOutcome, Delivery, DeliveryStatus, Subscription};

/// A subscription claimed for delivering to, with its first due
/// deliveries.
#[derive(Debug, Clone)]
pub struct ClaimedBatch {
    /// The subscription as it is now (its URL and secrets).
    pub subscription: Subscription,
    /// Its due deliveries, in the order of their events.
    pub deliveries: Vec<Delivery>,
}

/// Durable storage of webhook subscriptions and deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Records a new subscription.
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), Error>;
    /// One of the tenant's subscriptions.
    async fn subscription(&self, project_id: &str, id: Uuid)
    -> Result<Option<Subscription>, Error>;
    /// The tenant's subscriptions in the order they were made, after
    /// `after` when given, at most `limit`.
    async fn subscriptions(
        &self,
        project_id: &str,
        limit: u32,
        after: Option<Uuid>,
    ) -> Result<Vec<Subscription>, Error>;
    /// How many subscriptions of its own (not a create's callback) the
    /// tenant has.
    async fn count_subscriptions(&self, project_id: &str) -> Result<u64, Error>;
    /// Removes one of the tenant's subscriptions and its deliveries; false
    /// if there is none.
    async fn delete_subscription(&self, project_id: &str, id: Uuid) -> Result<bool, Error>;
    /// Replaces the subscription's secret with `secret`; the one it
    /// replaces is still used until `previous_until`. The subscription as
    /// it is now; `None` if there is none.
    async fn rotate_secret(
        &self,
        project_id: &str,
        id: Uuid,
        secret: &str,
        previous_until: DateTime<Utc>,
    ) -> Result<Option<Subscription>, Error>;
    /// Shortens the hold of a callback whose create was answered to `at`:
    /// its deliveries held longer are due then. The subscription as it is
    /// now; `None` if there is none.
    async fn release(
        &self,
        project_id: &str,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<Subscription>, Error>;
    /// The open subscriptions with events after their cursor: their
    /// tenant's, or for a callback its job's.
    async fn behind(&self) -> Result<Vec<Subscription>, Error>;
    /// Records the deliveries of the subscription's events after `from`
    /// up to `to`, and moves its cursor to `to` (closing it when `close`),
    /// in one transaction, if its cursor is still `from`; false when
    /// another replica came first (nothing is written).
    async fn record_deliveries(
        &self,
        subscription_id: Uuid,
        from: i64,
        to: i64,
        close: bool,
        deliveries: &[Delivery],
    ) -> Result<bool, Error>;
    /// Claims for `holder` until `until` up to `subscriptions`
    /// subscriptions with deliveries due at `now` that nobody is
    /// delivering to (no claim runs), those due longest first, each with
    /// its first `per_subscription` due deliveries in event order. One
    /// statement takes the claims, so that one holder at a time delivers
    /// to a subscription.
    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        subscriptions: u32,
        per_subscription: u32,
    ) -> Result<Vec<ClaimedBatch>, Error>;
    /// Ends `holder`'s claim on a subscription.
    async fn unclaim(&self, subscription_id: Uuid, holder: &str) -> Result<(), Error>;
    /// Ends every claim of `holder` (an earlier life of it, which stopped
    /// while delivering); how many.
    async fn unclaim_all(&self, holder: &str) -> Result<u64, Error>;
    /// Records an attempt on a pending delivery of a subscription `holder`
    /// holds a claim on at `now`; false (nothing recorded) when it holds
    /// none (the claim ran out or the subscription is gone).
    async fn record_attempt(
        &self,
        id: Uuid,
        holder: &str,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;
    /// The subscription's deliveries, newest first, older than `before`
    /// when given, in `status` when given, at most `limit`.
    async fn deliveries(
        &self,
        subscription_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Delivery>, Error>;
    /// Deletes up to `batch` ended deliveries recorded before `before`, and
    /// the callbacks made before it that have nothing left to deliver or
    /// show (their job ended, or was never recorded, and no delivery of
    /// theirs is pending or recorded since); how many rows.
    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error>;
}
