//! The PostgreSQL store's subscriptions and deliveries. Replicas share
//! them: the cursor and claim rules of `WebhookStore` make each event one
//! delivery per subscription, and each attempt one replica's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, types::Json};
use uuid::Uuid;

use super::PostgresStore;
use crate::jobs::model::JobId;
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

/// The columns of a delivery, in [`DeliveryRow`]'s order.
macro_rules! delivery_columns {
    () => {
        "id, subscription_id, event_seq, event_type, job_id, payload, status, attempts, \
         created_at, next_attempt_at, last_attempt_at, last_status_code, last_error"
    };
}

#[derive(FromRow)]
struct SubscriptionRow {
    id: Uuid,
    project_id: String,
    url: String,
    description: String,
    event_types: Option<Json<Vec<String>>>,
    job_id: Option<Uuid>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<DateTime<Utc>>,
    cursor: i64,
    closed: bool,
    created_at: DateTime<Utc>,
    held_until: Option<DateTime<Utc>>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(row: SubscriptionRow) -> Self {
        Subscription {
            id: row.id,
            project_id: row.project_id,
            url: row.url,
            description: row.description,
            event_types: row.event_types.map(|t| t.0),
            job_id: row.job_id.map(JobId),
            secret: row.secret,
            previous_secret: row.previous_secret,
            previous_secret_until: row.previous_secret_until,
            cursor: row.cursor,
            closed: row.closed,
            created_at: row.created_at,
            held_until: row.held_until,
        }
    }
}

#[derive(FromRow)]
struct DeliveryRow {
    id: Uuid,
    subscription_id: Uuid,
    event_seq: i64,
    event_type: String,
    job_id: Uuid,
    payload: String,
    status: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = Error;

    fn try_from(row: DeliveryRow) -> Result<Self, Error> {
        Ok(Delivery {
            status: row
                .status
                .parse()
                .map_err(|e| Error::Corrupt(format!("webhook delivery {}: status: {e}", row.id)))?,
            id: row.id,
            subscription_id: row.subscription_id,
            event_seq: row.event_seq,
            event_type: row.event_type,
            job_id: JobId(row.job_id),
            payload: row.payload,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            created_at: row.created_at,
            next_attempt_at: row.next_attempt_at,
            last_attempt_at: row.last_attempt_at,
            last_status_code: row.last_status_code.and_then(|c| u16::try_from(c).ok()),
            last_error: row.last_error,
        })
    }
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn insert_subscription(&self, s: &Subscription) -> Result<(), Error> {
        let sql = concat!(
            "INSERT INTO webhook_subscriptions (",
            subscription_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        sqlx::query(sql)
            .bind(s.id)
            .bind(&s.project_id)
            .bind(&s.url)
            .bind(&s.description)
            .bind(s.event_types.as_ref().map(Json))
            .bind(s.job_id.map(|id| id.0))
            .bind(&s.secret)
            .bind(&s.previous_secret)
            .bind(s.previous_secret_until)
            .bind(s.cursor)
            .bind(s.closed)
            .bind(s.created_at)
            .bind(s.held_until)
            .execute(&self.pool)
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
            " FROM webhook_subscriptions WHERE id = $1 AND project_id = $2"
        );
        let row: Option<SubscriptionRow> = sqlx::query_as(sql)
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Subscription::from))
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
            " FROM webhook_subscriptions WHERE project_id = $1 AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<SubscriptionRow> = sqlx::query_as(sql)
            .bind(project_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Subscription::from).collect())
    }

    async fn count_subscriptions(&self, project_id: &str) -> Result<u64, Error> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_subscriptions WHERE project_id = $1 AND job_id IS NULL",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn delete_subscription(&self, project_id: &str, id: Uuid) -> Result<bool, Error> {
        let deleted =
            sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1 AND project_id = $2")
                .bind(id)
                .bind(project_id)
                .execute(&self.pool)
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
            "UPDATE webhook_subscriptions SET previous_secret = secret, secret = $3, \
             previous_secret_until = $4 WHERE id = $1 AND project_id = $2 RETURNING ",
            subscription_columns!()
        );
        let row: Option<SubscriptionRow> = sqlx::query_as(sql)
            .bind(id)
            .bind(project_id)
            .bind(secret)
            .bind(previous_until)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Subscription::from))
    }

    async fn release(
        &self,
        project_id: &str,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<Subscription>, Error> {
        let mut tx = self.pool.begin().await?;
        let sql = concat!(
            "UPDATE webhook_subscriptions SET held_until = $3 \
             WHERE id = $1 AND project_id = $2 RETURNING ",
            subscription_columns!()
        );
        let row: Option<SubscriptionRow> = sqlx::query_as(sql)
            .bind(id)
            .bind(project_id)
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $2 \
             WHERE subscription_id = $1 AND status = 'pending' AND attempts = 0 AND next_attempt_at > $2",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.map(Subscription::from))
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
        Ok(rows.into_iter().map(Subscription::from).collect())
    }

    async fn record_deliveries(
        &self,
        subscription_id: Uuid,
        from: i64,
        to: i64,
        close: bool,
        deliveries: &[Delivery],
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        // The row stays locked to the commit: a release of the hold comes
        // before (and is read here) or after (and moves these deliveries).
        let moved: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(
            "UPDATE webhook_subscriptions SET cursor = $3, closed = (closed OR $4) \
             WHERE id = $1 AND cursor = $2 RETURNING held_until",
        )
        .bind(subscription_id)
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
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (subscription_id, event_seq) DO NOTHING"
            );
            sqlx::query(sql)
                .bind(d.id)
                .bind(d.subscription_id)
                .bind(d.event_seq)
                .bind(&d.event_type)
                .bind(d.job_id.0)
                .bind(&d.payload)
                .bind(d.status.as_str())
                .bind(i32::try_from(d.attempts).unwrap_or(i32::MAX))
                .bind(d.created_at)
                .bind(
                    d.next_attempt_at
                        .map(|at| held_until.map_or(at, |held| at.max(held))),
                )
                .bind(d.last_attempt_at)
                .bind(d.last_status_code.map(i32::from))
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
        let mut tx = self.pool.begin().await?;
        // The outer condition is checked again on the row as another
        // replica left it: of two replicas claiming at once, one gets it.
        // Rows being claimed are skipped, not waited for.
        let sql = concat!(
            "UPDATE webhook_subscriptions SET sending_by = $2, sending_until = $3 \
             WHERE (sending_until IS NULL OR sending_until < $1) AND id IN ( \
               SELECT s.id FROM webhook_subscriptions s \
               WHERE (s.sending_until IS NULL OR s.sending_until < $1) \
                 AND s.id IN (SELECT d.subscription_id FROM webhook_deliveries d \
                   WHERE d.status = 'pending' AND d.next_attempt_at <= $1) \
               ORDER BY (SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
                 WHERE d.subscription_id = s.id AND d.status = 'pending') \
               LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING ",
            subscription_columns!()
        );
        let rows: Vec<SubscriptionRow> = sqlx::query_as(sql)
            .bind(now)
            .bind(holder)
            .bind(until)
            .bind(i64::from(subscriptions))
            .fetch_all(&mut *tx)
            .await?;
        let mut batches = Vec::with_capacity(rows.len());
        for row in rows {
            let subscription = Subscription::from(row);
            let sql = concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'pending' \
                   AND next_attempt_at <= $2 ORDER BY event_seq LIMIT $3"
            );
            let rows: Vec<DeliveryRow> = sqlx::query_as(sql)
                .bind(subscription.id)
                .bind(now)
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
             WHERE id = $1 AND sending_by = $2",
        )
        .bind(subscription_id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn unclaim_all(&self, holder: &str) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE webhook_subscriptions SET sending_by = NULL, sending_until = NULL \
             WHERE sending_by = $1",
        )
        .bind(holder)
        .execute(&self.pool)
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
            "UPDATE webhook_deliveries d SET attempts = attempts + 1, status = $3, \
               next_attempt_at = $4, last_attempt_at = $5, last_status_code = $6, last_error = $7 \
             WHERE d.id = $1 AND d.status = 'pending' AND EXISTS (SELECT 1 FROM webhook_subscriptions s \
               WHERE s.id = d.subscription_id AND s.sending_by = $2 AND s.sending_until >= $8)",
        )
        .bind(id)
        .bind(holder)
        .bind(outcome.status.as_str())
        .bind(outcome.next_attempt_at)
        .bind(outcome.at)
        .bind(outcome.status_code.map(i32::from))
        .bind(&outcome.error)
        .bind(now)
        .execute(&self.pool)
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
            " FROM webhook_deliveries WHERE subscription_id = $1 \
               AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(sql)
            .bind(subscription_id)
            .bind(status.map(DeliveryStatus::as_str))
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let deliveries = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE status != 'pending' AND created_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        let callbacks = sqlx::query(
            "DELETE FROM webhook_subscriptions WHERE id IN (SELECT s.id FROM webhook_subscriptions s \
             WHERE s.job_id IS NOT NULL AND s.created_at < $1 \
               AND (s.closed OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = s.job_id)) \
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                 WHERE d.subscription_id = s.id AND (d.status = 'pending' OR d.created_at >= $1)) \
             LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(deliveries.rows_affected() + callbacks.rows_affected())
    }
}
