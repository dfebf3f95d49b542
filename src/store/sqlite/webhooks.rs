//! The SQLite store's subscriptions and deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{BEGIN_WRITE, SqliteStore, millis, time};
use crate::store::{
    Error,
    webhooks::{ClaimedBatch, WebhookStore},
};
use crate::webhooks::model::{AttemptOutcome, Delivery, DeliveryStatus, Subscription};

/// The columns of a subscription, in [`SubscriptionRow`]'s order.
macro_rules! subscription_columns {
    () => {
        "id, project_id, url, description, event_types, job_id, secret, previous_secret, \
         previous_secret_until, cursor, closed, created_at, held_until"
    };
}

/// The condition on a subscription `s` that may be claimed at `?1`: open
/// to claims (no claim runs), with a delivery due.
macro_rules! claimable {
    () => {
        "(s.sending_until IS NULL OR s.sending_until < ?1) AND s.id IN (SELECT d.subscription_id \
           FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= ?1)"
    };
}

/// The columns of a delivery, in [`DeliveryRow`]'s order.
macro_rules! delivery_columns {
    () => {
        "id, subscription_id, event_seq, event_type, job_id, payload, status, attempts, \
         created_at, next_attempt_at, last_attempt_at, last_status_code, last_error"
    };
}

#[derive(FromRow)]
struct SubscriptionRow {
    id: String,
    project_id: String,
    url: String,
    description: String,
    event_types: Option<String>,
    job_id: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<i64>,
    cursor: i64,
    closed: i64,
    created_at: i64,
    held_until: Option<i64>,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = Error;

    fn try_from(row: SubscriptionRow) -> Result<Self, Error> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            Error::Corrupt(format!("webhook {}: {what}: {e}", row.id))
        };
        Ok(Subscription {
            id: row.id.parse().map_err(|e| corrupt("id", &e))?,
            event_types: row
                .event_types
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("event_types", &e))?,
            job_id: row
                .job_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| corrupt("job_id", &e))?,
            previous_secret_until: row.previous_secret_until.map(time).transpose()?,
            created_at: time(row.created_at)?,
            held_until: row.held_until.map(time).transpose()?,
            project_id: row.project_id,
            url: row.url,
            description: row.description,
            secret: row.secret,
            previous_secret: row.previous_secret,
            cursor: row.cursor,
            closed: row.closed != 0,
        })
    }
}

#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    subscription_id: String,
    event_seq: i64,
    event_type: String,
    job_id: String,
    payload: String,
    status: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: Option<i64>,
    last_attempt_at: Option<i64>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = Error;

    fn try_from(row: DeliveryRow) -> Result<Self, Error> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            Error::Corrupt(format!("webhook delivery {}: {what}: {e}", row.id))
        };
        Ok(Delivery {
            id: row.id.parse().map_err(|e| corrupt("id", &e))?,
            subscription_id: row
                .subscription_id
                .parse()
                .map_err(|e| corrupt("subscription_id", &e))?,
            job_id: row.job_id.parse().map_err(|e| corrupt("job_id", &e))?,
            status: row.status.parse().map_err(|e| corrupt("status", &e))?,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt("attempts", &e))?,
            created_at: time(row.created_at)?,
            next_attempt_at: row.next_attempt_at.map(time).transpose()?,
            last_attempt_at: row.last_attempt_at.map(time).transpose()?,
            last_status_code: row.last_status_code.and_then(|c| u16::try_from(c).ok()),
            event_seq: row.event_seq,
            event_type: row.event_type,
            payload: row.payload,
            last_error: row.last_error,
        })
    }
}

fn subscriptions(rows: Vec<SubscriptionRow>) -> Result<Vec<Subscription>, Error> {
    rows.into_iter().map(Subscription::try_from).collect()
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_subscription(&self, s: &Subscription) -> Result<(), Error> {
        let sql = concat!(
            "INSERT INTO webhook_subscriptions (",
            subscription_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        );
        sqlx::query(sql)
            .bind(s.id.to_string())
            .bind(&s.project_id)
            .bind(&s.url)
            .bind(&s.description)
            .bind(
                s.event_types
                    .as_ref()
                    .map(|t| serde_json::to_string(t).unwrap_or_default()),
            )
            .bind(s.job_id.map(|id| id.to_string()))
            .bind(&s.secret)
            .bind(&s.previous_secret)
            .bind(s.previous_secret_until.map(millis))
            .bind(s.cursor)
            .bind(i64::from(s.closed))
            .bind(millis(s.created_at))
            .bind(s.held_until.map(millis))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn subscription(
        &self,
        project_id: &str,
        id: Uuid,
    ) -> Result<Option<Subscription>, Error> {
        let sql = concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM webhook_subscriptions WHERE id = ?1 AND project_id = ?2"
        );
        let row: Option<SubscriptionRow> = sqlx::query_as(sql)
            .bind(id.to_string())
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Subscription::try_from).transpose()
    }

    async fn subscriptions(
        &self,
        project_id: &str,
        limit: u32,
        after: Option<Uuid>,
    ) -> Result<Vec<Subscription>, Error> {
        let sql = concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM webhook_subscriptions WHERE project_id = ?1 AND (?2 IS NULL OR id > ?2) \
             ORDER BY id LIMIT ?3"
        );
        let rows: Vec<SubscriptionRow> = sqlx::query_as(sql)
            .bind(project_id)
            .bind(after.map(|id| id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        subscriptions(rows)
    }

    async fn count_subscriptions(&self, project_id: &str) -> Result<u64, Error> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_subscriptions WHERE project_id = ?1 AND job_id IS NULL",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn delete_subscription(&self, project_id: &str, id: Uuid) -> Result<bool, Error> {
        let deleted =
            sqlx::query("DELETE FROM webhook_subscriptions WHERE id = ?1 AND project_id = ?2")
                .bind(id.to_string())
                .bind(project_id)
                .execute(&self.writer)
                .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn rotate_secret(
        &self,
        project_id: &str,
        id: Uuid,
        secret: &str,
        previous_until: DateTime<Utc>,
    ) -> Result<Option<Subscription>, Error> {
        let sql = concat!(
            "UPDATE webhook_subscriptions SET previous_secret = secret, secret = ?3, \
             previous_secret_until = ?4 WHERE id = ?1 AND project_id = ?2 RETURNING ",
            subscription_columns!()
        );
        let row: Option<SubscriptionRow> = sqlx::query_as(sql)
            .bind(id.to_string())
            .bind(project_id)
            .bind(secret)
            .bind(millis(previous_until))
            .fetch_optional(&self.writer)
            .await?;
        row.map(Subscription::try_from).transpose()
    }

    async fn release(
        &self,
        project_id: &str,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<Subscription>, Error> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let sql = concat!(
            "UPDATE webhook_subscriptions SET held_until = ?3 \
             WHERE id = ?1 AND project_id = ?2 RETURNING ",
            subscription_columns!()
        );
        let row: Option<SubscriptionRow> = sqlx::query_as(sql)
            .bind(id.to_string())
            .bind(project_id)
            .bind(millis(at))
            .fetch_optional(&mut *tx)
            .await?;
        let now = millis(at);
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = ?2 \
             WHERE subscription_id = ?1 AND status = 'pending' AND attempts = 0 AND next_attempt_at > ?2",
        )
        .bind(id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(Subscription::try_from).transpose()
    }

    async fn behind(&self) -> Result<Vec<Subscription>, Error> {
        let sql = concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM webhook_subscriptions s WHERE NOT s.closed AND ( \
               (s.job_id IS NULL AND EXISTS (SELECT 1 FROM job_event_counters c \
                 WHERE c.project_id = s.project_id AND c.last_seq > s.cursor)) \
               OR (s.job_id IS NOT NULL AND EXISTS (SELECT 1 FROM job_events e \
                 WHERE e.project_id = s.project_id AND e.job_id = s.job_id AND e.seq > s.cursor)))"
        );
        let rows: Vec<SubscriptionRow> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
        subscriptions(rows)
    }

    async fn record_deliveries(
        &self,
        subscription_id: Uuid,
        from: i64,
        to: i64,
        close: bool,
        deliveries: &[Delivery],
    ) -> Result<bool, Error> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let moved: Option<(Option<i64>,)> = sqlx::query_as(
            "UPDATE webhook_subscriptions SET cursor = ?3, closed = (closed OR ?4) \
             WHERE id = ?1 AND cursor = ?2 RETURNING held_until",
        )
        .bind(subscription_id.to_string())
        .bind(from)
        .bind(to)
        .bind(close)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((held_until,)) = moved else {
            return Ok(false);
        };
        for d in deliveries {
            let sql = concat!(
                "INSERT INTO webhook_deliveries (",
                delivery_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (subscription_id, event_seq) DO NOTHING"
            );
            sqlx::query(sql)
                .bind(d.id.to_string())
                .bind(d.subscription_id.to_string())
                .bind(d.event_seq)
                .bind(&d.event_type)
                .bind(d.job_id.to_string())
                .bind(&d.payload)
                .bind(d.status.as_str())
                .bind(i64::from(d.attempts))
                .bind(millis(d.created_at))
                .bind(
                    d.next_attempt_at
                        .map(|at| millis(at).max(held_until.unwrap_or(0))),
                )
                .bind(d.last_attempt_at.map(millis))
                .bind(d.last_status_code.map(i64::from))
                .bind(&d.last_error)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        subscriptions: u32,
        per_subscription: u32,
    ) -> Result<Vec<ClaimedBatch>, Error> {
        // Looked for on a reader first: an idle gateway writes nothing.
        let (due,): (i64,) = sqlx::query_as(concat!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_subscriptions s WHERE ",
            claimable!(),
            " LIMIT 1)"
        ))
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?;
        if due == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let sql = concat!(
            "UPDATE webhook_subscriptions SET sending_by = ?2, sending_until = ?3 \
             WHERE id IN (SELECT s.id FROM webhook_subscriptions s WHERE ",
            claimable!(),
            " ORDER BY (SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
               WHERE d.subscription_id = s.id AND d.status = 'pending') LIMIT ?4) \
             RETURNING ",
            subscription_columns!()
        );
        let rows: Vec<SubscriptionRow> = sqlx::query_as(sql)
            .bind(millis(now))
            .bind(holder)
            .bind(millis(until))
            .bind(i64::from(subscriptions))
            .fetch_all(&mut *tx)
            .await?;
        let mut batches = Vec::with_capacity(rows.len());
        for row in rows {
            let subscription = Subscription::try_from(row)?;
            let sql = concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries WHERE subscription_id = ?1 AND status = 'pending' \
                   AND next_attempt_at <= ?2 ORDER BY event_seq LIMIT ?3"
            );
            let rows: Vec<DeliveryRow> = sqlx::query_as(sql)
                .bind(subscription.id.to_string())
                .bind(millis(now))
                .bind(i64::from(per_subscription))
                .fetch_all(&mut *tx)
                .await?;
            let deliveries = rows
                .into_iter()
                .map(Delivery::try_from)
                .collect::<Result<_, _>>()?;
            batches.push(ClaimedBatch {
                subscription,
                deliveries,
            });
        }
        tx.commit().await?;
        Ok(batches)
    }

    async fn unclaim(&self, subscription_id: Uuid, holder: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE webhook_subscriptions SET sending_by = NULL, sending_until = NULL \
             WHERE id = ?1 AND sending_by = ?2",
        )
        .bind(subscription_id.to_string())
        .bind(holder)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn unclaim_all(&self, holder: &str) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE webhook_subscriptions SET sending_by = NULL, sending_until = NULL \
             WHERE sending_by = ?1",
        )
        .bind(holder)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn record_attempt(
        &self,
        id: Uuid,
        holder: &str,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let recorded = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?3, \
               next_attempt_at = ?4, last_attempt_at = ?5, last_status_code = ?6, last_error = ?7 \
             WHERE id = ?1 AND status = 'pending' AND EXISTS (SELECT 1 FROM webhook_subscriptions s \
               WHERE s.id = webhook_deliveries.subscription_id AND s.sending_by = ?2 \
                 AND s.sending_until >= ?8)",
        )
        .bind(id.to_string())
        .bind(holder)
        .bind(outcome.status.as_str())
        .bind(outcome.next_attempt_at.map(millis))
        .bind(millis(outcome.at))
        .bind(outcome.status_code.map(i64::from))
        .bind(&outcome.error)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(recorded.rows_affected() == 1)
    }

    async fn deliveries(
        &self,
        subscription_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Delivery>, Error> {
        let sql = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE subscription_id = ?1 \
               AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3) \
             ORDER BY id DESC LIMIT ?4"
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(sql)
            .bind(subscription_id.to_string())
            .bind(status.map(DeliveryStatus::as_str))
            .bind(before.map(|id| id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let deliveries = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE status != 'pending' AND created_at < ?1 LIMIT ?2)",
        )
        .bind(millis(before))
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?;
        let callbacks = sqlx::query(
            "DELETE FROM webhook_subscriptions WHERE id IN (SELECT s.id FROM webhook_subscriptions s \
             WHERE s.job_id IS NOT NULL AND s.created_at < ?1 \
               AND (s.closed OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.job_id)) \
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                 WHERE d.subscription_id = s.id AND (d.status = 'pending' OR d.created_at >= ?1)) \
             LIMIT ?2)",
        )
        .bind(millis(before))
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?;
        Ok(deliveries.rows_affected() + callbacks.rows_affected())
    }
}
