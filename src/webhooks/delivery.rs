//! Making deliveries, in every replica.
//!
//! A pass does two things. It turns new events into deliveries: for each
//! open subscription with events after its cursor, it reads them, keeps
//! those the subscription wants, and records one delivery per event while
//! moving the cursor, in one transaction that only the first replica to
//! try gets through (the cursor is compare-and-set). Then it claims
//! subscriptions with deliveries due that nobody is delivering to, as many
//! as it has room for (`--webhook-concurrency`), and hands each to a task
//! of its own that sends its due deliveries one after another, in the
//! order of their events, and lets the subscription go. One replica at a
//! time delivers to a subscription, and a slow or dead receiver holds up
//! only its own deliveries. A failed attempt ends its task's turn: that
//! delivery is due again after a backoff that doubles, until retries have
//! lasted `--webhook-retry-for` (then it has `failed`), and the
//! deliveries after it go at the next turn. A crash between an attempt and
//! its record makes the attempt again once the claim runs out (or at once,
//! by the same replica's next life): at least once, and `webhook-id` tells
//! a receiver it has seen it.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Url, header};
use tokio::task::JoinSet;

use super::{
    Webhooks,
    model::{AttemptOutcome, Delivery, DeliveryStatus, Subscription},
    signing,
    targets::{AllowListResolver, TargetError},
};
use crate::{
    jobs::{
        events::{EventFilter, EventKind},
        model::{later, now},
    },
    store::{self, ClaimedBatch},
};

/// Events read for one subscription at once.
const PAGE: u32 = 200;

/// Longest a pass waits for a change before it looks anyway (retries that
/// came due, other replicas' events whose announcement was lost).
const TICK: Duration = Duration::from_millis(500);

/// How often ended deliveries are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Deliveries purged per statement.
const PURGE_BATCH: u32 = 500;

/// Deliveries of one subscription sent in one turn.
const PER_TURN: u32 = 10;

/// How much longer than its attempts' time limits a turn's claim lasts.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// The `User-Agent` of deliveries.
const USER_AGENT: &str = concat!("backup-gateway/", env!("CARGO_PKG_VERSION"), " (webhooks)");

/// Makes deliveries (see the module's documentation).
#[derive(Clone)]
pub struct Dispatcher {
    webhooks: Arc<Webhooks>,
    client: reqwest::Client,
    /// This replica's name: whose claims are whose.
    replica: String,
}

impl Dispatcher {
    /// A dispatcher for this replica: its HTTP client resolves names only
    /// to allowed addresses, follows no redirect and uses no proxy.
    pub fn new(webhooks: Arc<Webhooks>, replica: String) -> anyhow::Result<Dispatcher> {
        let settings = webhooks.settings();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(AllowListResolver(settings.allow.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Dispatcher {
            webhooks,
            client,
            replica,
        })
    }

    /// Makes deliveries until `stop` turns true: a pass at every job
    /// change, when a turn ends, and at least every [`TICK`]. Turns under
    /// way when it stops are cut; their subscriptions are claimed again by
    /// this replica's next life at once, or by another once the claims
    /// run out.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let hooks = self.webhooks.jobs().store().webhooks();
        match hooks.unclaim_all(&self.replica).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                subscriptions = n,
                "let go of webhook claims of this replica's earlier life"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not let go of this replica's earlier webhook claims; they run out by themselves")
            }
        }
        let mut changes = self.webhooks.jobs().changes();
        let mut turns = JoinSet::new();
        let mut last_purge = Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            changes.mark_unchanged();
            while let Some(ended) = turns.try_join_next() {
                log_turn_end(ended);
            }
            self.pass(&mut turns).await;
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = Instant::now();
                self.purge().await;
            }
            tokio::select! {
                _ = changes.changed() => {}
                // A turn ended: its webhook may have more due, and there is
                // room for another.
                Some(ended) = turns.join_next(), if !turns.is_empty() => log_turn_end(ended),
                () = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One pass: new events into deliveries, then a turn started for each
    /// subscription with deliveries due, as many as there is room for.
    async fn pass(&self, turns: &mut JoinSet<()>) {
        if let Err(e) = self.record_new_events().await {
            tracing::warn!(error = %e, "could not turn new events into webhook deliveries; will try again");
        }
        let room = self
            .webhooks
            .settings()
            .concurrency
            .saturating_sub(turns.len());
        if room == 0 {
            return;
        }
        match self.claim(room).await {
            Ok((until, batches)) => {
                for batch in batches {
                    let dispatcher = self.clone();
                    turns.spawn(async move { dispatcher.take_turn(batch, until).await });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not claim webhook deliveries; will try again");
            }
        }
    }

    /// Records the deliveries of every subscription's new events.
    async fn record_new_events(&self) -> Result<(), store::Error> {
        let store = self.webhooks.jobs().store();
        for subscription in store.webhooks().behind().await? {
            // One subscription's failure never holds up the others.
            if let Err(e) = self.record_for(&subscription).await {
                tracing::warn!(webhook_id = %subscription.id, error = %e, "could not record webhook deliveries; will try again");
            }
        }
        Ok(())
    }

    /// Records the deliveries of one subscription's events after its
    /// cursor, a page at a time.
    async fn record_for(&self, subscription: &Subscription) -> Result<(), store::Error> {
        let store = self.webhooks.jobs().store();
        let filter = EventFilter {
            job_id: subscription.job_id,
            snapshot_id: None,
        };
        let mut cursor = subscription.cursor;
        loop {
            // Read first: every event up to it is visible below.
            let range = store.event_range(&subscription.project_id).await?;
            if range.purged_through > cursor {
                tracing::warn!(
                    webhook_id = %subscription.id,
                    after = cursor,
                    purged_through = range.purged_through,
                    "events were purged before they could be delivered (the gateway was stopped longer than --event-retention)"
                );
            }
            let events = store
                .events_after(&subscription.project_id, cursor, &filter, PAGE)
                .await?;
            let full = events.len() == PAGE as usize;
            let last_read = events.last().map_or(cursor, |e| e.seq);
            let to = if full || subscription.job_id.is_some() {
                // A full page, or a callback's (its job's events only).
                last_read
            } else {
                // Not past what the read could have scanned: a row it left
                // out (unreadable) still took a place in its page.
                range.last.min(last_read.max(cursor + i64::from(PAGE)))
            };
            if to == cursor {
                return Ok(());
            }
            let close = subscription.job_id.is_some()
                && events.iter().any(|e| {
                    matches!(
                        e.kind,
                        EventKind::Succeeded
                            | EventKind::Failed
                            | EventKind::Cancelled
                            | EventKind::Removed
                    )
                });
            let deliveries: Vec<Delivery> = events
                .into_iter()
                .filter(|e| subscription.wants(e.kind.event_type()))
                .map(|event| {
                    let (seq, kind, job_id) = (event.seq, event.kind, event.job_id);
                    let payload =
                        serde_json::to_string(&crate::api::events::JobEventView::from(event))
                            .unwrap_or_default();
                    Delivery::new(subscription.id, seq, kind.event_type(), job_id, payload)
                })
                .collect();
            let recorded = store
                .webhooks()
                .record_deliveries(subscription.id, cursor, to, close, &deliveries)
                .await?;
            if !recorded || !full || close {
                // Another replica came first, or there is nothing more.
                return Ok(());
            }
            cursor = to;
        }
    }

    /// Claims up to `room` subscriptions with deliveries due; the claims
    /// last until the time answered.
    async fn claim(
        &self,
        room: usize,
    ) -> Result<(chrono::DateTime<chrono::Utc>, Vec<ClaimedBatch>), store::Error> {
        let settings = self.webhooks.settings();
        let now = now();
        let until = later(
            now,
            settings.timeout.saturating_mul(PER_TURN) + CLAIM_MARGIN,
        );
        let batches = self
            .webhooks
            .jobs()
            .store()
            .webhooks()
            .claim_due(
                &self.replica,
                now,
                until,
                u32::try_from(room).unwrap_or(u32::MAX),
                PER_TURN,
            )
            .await?;
        Ok((until, batches))
    }

    /// One subscription's turn: its claimed deliveries in event order,
    /// until one fails, the claim (until `until`) no longer leaves time for
    /// an attempt, or an attempt cannot be recorded under it (the webhook
    /// was deleted, or the claim lost); then the subscription is let go.
    async fn take_turn(&self, batch: ClaimedBatch, until: chrono::DateTime<chrono::Utc>) {
        let timeout = self.webhooks.settings().timeout;
        for delivery in &batch.deliveries {
            if later(now(), timeout) >= until {
                break;
            }
            match self.deliver(&batch.subscription, delivery).await {
                Ok(DeliveryStatus::Succeeded) => {}
                Ok(_) => break,
                Err(Unrecorded::ClaimLost) => return,
                Err(Unrecorded::StoreFailed) => break,
            }
        }
        let hooks = self.webhooks.jobs().store().webhooks();
        if let Err(e) = hooks.unclaim(batch.subscription.id, &self.replica).await {
            tracing::warn!(webhook_id = %batch.subscription.id, error = %e, "could not let go of a webhook; its claim runs out by itself");
        }
    }

    /// Makes one attempt and records it; the delivery's status after it,
    /// or why it could not be recorded.
    async fn deliver(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
    ) -> Result<DeliveryStatus, Unrecorded> {
        let outcome = self.attempt(subscription, delivery).await;
        let metric = match outcome.status {
            DeliveryStatus::Succeeded => "delivered",
            DeliveryStatus::Pending => "failed",
            DeliveryStatus::Failed => "gave_up",
        };
        crate::metrics::metrics()
            .webhook_attempts
            .get_or_create(&crate::metrics::OutcomeLabels { outcome: metric })
            .inc();
        let error = outcome.error.as_deref().unwrap_or_default();
        match outcome.status {
            DeliveryStatus::Succeeded => {
                tracing::debug!(webhook_id = %subscription.id, delivery_id = %delivery.id, event = %delivery.event_type, "webhook delivered");
            }
            DeliveryStatus::Pending => {
                tracing::info!(webhook_id = %subscription.id, delivery_id = %delivery.id, attempt = delivery.attempts + 1, error, "webhook attempt failed; will retry");
            }
            DeliveryStatus::Failed => {
                tracing::warn!(webhook_id = %subscription.id, delivery_id = %delivery.id, attempts = delivery.attempts + 1, error, "webhook delivery failed: retries are over");
            }
        }
        match self
            .webhooks
            .jobs()
            .store()
            .webhooks()
            .record_attempt(delivery.id, &self.replica, &outcome, now())
            .await
        {
            Ok(true) => Ok(outcome.status),
            Ok(false) => {
                tracing::info!(webhook_id = %subscription.id, delivery_id = %delivery.id, "the webhook was deleted, or this replica's claim on it ended; its turn ends");
                Err(Unrecorded::ClaimLost)
            }
            Err(e) => {
                // The delivery stays due and is attempted again.
                tracing::warn!(delivery_id = %delivery.id, error = %e, "could not record a webhook attempt");
                Err(Unrecorded::StoreFailed)
            }
        }
    }

    /// Sends the delivery once; what came of it.
    async fn attempt(&self, subscription: &Subscription, delivery: &Delivery) -> AttemptOutcome {
        let settings = self.webhooks.settings();
        let at = now();
        let sent = self.send(delivery, subscription, at).await;
        let (status_code, error) = match sent {
            Ok(code) if (200..300).contains(&code) => {
                return AttemptOutcome {
                    status: DeliveryStatus::Succeeded,
                    at,
                    next_attempt_at: None,
                    status_code: Some(code),
                    error: None,
                };
            }
            Ok(code) if (300..400).contains(&code) => (
                Some(code),
                format!("the receiver answered {code}, a redirect; redirects are not followed"),
            ),
            Ok(code) => (Some(code), format!("the receiver answered {code}")),
            Err(why) => (None, why),
        };
        let pause = crate::jobs::backoff(
            delivery.attempts + 1,
            settings.retry_base,
            settings.retry_max,
        );
        let next = later(at, pause);
        let retries_end = later(delivery.created_at, settings.retry_for);
        let (status, next_attempt_at) = if next > retries_end {
            (DeliveryStatus::Failed, None)
        } else {
            (DeliveryStatus::Pending, Some(next))
        };
        AttemptOutcome {
            status,
            at,
            next_attempt_at,
            status_code,
            error: Some(error),
        }
    }

    /// POSTs the payload, signed; the receiver's status, or why there was
    /// none (in words fit for the tenant: no address of the gateway's
    /// network is named).
    async fn send(
        &self,
        delivery: &Delivery,
        subscription: &Subscription,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<u16, String> {
        let settings = self.webhooks.settings();
        let url = Url::parse(&subscription.url).map_err(|_| "the URL is not valid".to_owned())?;
        // An address in the URL is not resolved: checked here (the list
        // may have changed since the subscription was made).
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            settings.allow.check_ip(ip).map_err(|e| e.to_string())?;
        }
        let id = delivery.id.to_string();
        let timestamp = at.timestamp();
        let signature = signing::signature_header(
            &subscription.signing_secrets(at),
            &id,
            timestamp,
            delivery.payload.as_bytes(),
        );
        let answer = self
            .client
            .post(url)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(header::CONTENT_TYPE, "application/json")
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| describe(&e, settings.timeout))?;
        Ok(answer.status().as_u16())
    }

    /// Purges ended deliveries past retention.
    async fn purge(&self) {
        let before = crate::jobs::model::ago(self.webhooks.settings().retention);
        let store = self.webhooks.jobs().store();
        let mut total = 0;
        loop {
            match store.webhooks().purge_deliveries(before, PURGE_BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < u64::from(PURGE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not purge webhook deliveries; will try again");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(rows = total, "purged webhook deliveries by retention");
        }
    }
}

/// Why an attempt was not recorded.
enum Unrecorded {
    /// The webhook is gone, or the claim on it passed to another.
    ClaimLost,
    /// The store failed.
    StoreFailed,
}

/// Logs a turn that did not end by itself (it panicked).
fn log_turn_end(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(error = %e, "a webhook turn panicked; its claim runs out by itself");
    }
}

/// Why a request got no answer, in words fit for the tenant.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(target) = e.downcast_ref::<TargetError>() {
            return target.to_string();
        }
        source = e.source();
    }
    if error.is_timeout() {
        format!("no answer within {}", crate::jobs::model::human(timeout))
    } else if error.is_connect() {
        "could not connect to the receiver".to_owned()
    } else {
        "the request failed before an answer came (the connection was closed)".to_owned()
    }
}
