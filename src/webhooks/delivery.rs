//! Making deliveries, in every replica.
//!
//! A pass does two things. It turns new events into deliveries: for each
//! open subscription whose tenant has events after its cursor, it reads
//! them, keeps those the subscription wants, and records one delivery per
//! event while moving the cursor, in one transaction that only the first
//! replica to try gets through (the cursor is compare-and-set). Then it
//! claims the deliveries that are due, for a while no other replica takes
//! them, and attempts them: one subscription's in the order of their
//! events, different subscriptions' at once. A delivery whose attempt
//! fails is due again after a backoff that doubles, until retries have
//! lasted `--webhook-retry-for`; then it has `failed`. A crash between an
//! attempt and its record makes the attempt again once the claim runs out:
//! at least once, and `webhook-id` tells a receiver it has seen it.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Url, header};
use tokio::{sync::Semaphore, task::JoinSet};
use uuid::Uuid;

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
    store::{self, ClaimedDelivery},
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

/// How much longer than an attempt's time limit a claim lasts.
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
    /// change and at least every [`TICK`]. Attempts under way when it stops
    /// are made again later (their claims run out).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut changes = self.webhooks.jobs().changes();
        let mut last_purge = Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            changes.mark_unchanged();
            self.pass().await;
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = Instant::now();
                self.purge().await;
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One pass: new events into deliveries, then the due deliveries
    /// attempted. How many attempts were made.
    pub async fn pass(&self) -> usize {
        if let Err(e) = self.record_new_events().await {
            tracing::warn!(error = %e, "could not turn new events into webhook deliveries; will try again");
        }
        match self.attempt_due().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim due webhook deliveries; will try again");
                0
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
            let to = if full {
                last_read
            } else {
                last_read.max(range.last)
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

    /// Claims the due deliveries and attempts them; how many.
    async fn attempt_due(&self) -> Result<usize, store::Error> {
        let settings = self.webhooks.settings();
        let now = now();
        let until = later(now, settings.timeout + CLAIM_MARGIN);
        let limit = u32::try_from(settings.concurrency.saturating_mul(4)).unwrap_or(u32::MAX);
        let claimed = self
            .webhooks
            .jobs()
            .store()
            .webhooks()
            .claim_due(&self.replica, now, until, limit)
            .await?;
        let count = claimed.len();
        // One subscription's in event order; subscriptions side by side.
        let mut by_subscription: BTreeMap<Uuid, Vec<ClaimedDelivery>> = BTreeMap::new();
        for claim in claimed {
            by_subscription
                .entry(claim.subscription.id)
                .or_default()
                .push(claim);
        }
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (_, mut claims) in by_subscription {
            claims.sort_by_key(|c| c.delivery.event_seq);
            let dispatcher = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                for claim in claims {
                    dispatcher.deliver(&claim).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(count)
    }

    /// Makes one attempt and records it.
    async fn deliver(&self, claim: &ClaimedDelivery) {
        let outcome = self.attempt(claim).await;
        let metric = match outcome.status {
            DeliveryStatus::Succeeded => "delivered",
            DeliveryStatus::Pending => "failed",
            DeliveryStatus::Failed => "gave_up",
        };
        crate::metrics::metrics()
            .webhook_attempts
            .get_or_create(&crate::metrics::OutcomeLabels { outcome: metric })
            .inc();
        let delivery = &claim.delivery;
        match outcome.status {
            DeliveryStatus::Succeeded => {
                tracing::debug!(webhook_id = %claim.subscription.id, delivery_id = %delivery.id, event = %delivery.event_type, "webhook delivered");
            }
            DeliveryStatus::Pending => {
                tracing::info!(webhook_id = %claim.subscription.id, delivery_id = %delivery.id, attempt = delivery.attempts + 1, error = outcome.error.as_deref().unwrap_or_default(), "webhook attempt failed; will retry");
            }
            DeliveryStatus::Failed => {
                tracing::warn!(webhook_id = %claim.subscription.id, delivery_id = %delivery.id, attempts = delivery.attempts + 1, error = outcome.error.as_deref().unwrap_or_default(), "webhook delivery failed: retries are over");
            }
        }
        if let Err(e) = self
            .webhooks
            .jobs()
            .store()
            .webhooks()
            .record_attempt(delivery.id, &self.replica, &outcome)
            .await
        {
            // The claim runs out and the delivery is attempted again.
            tracing::warn!(delivery_id = %delivery.id, error = %e, "could not record a webhook attempt");
        }
    }

    /// Sends the delivery once; what came of it.
    async fn attempt(&self, claim: &ClaimedDelivery) -> AttemptOutcome {
        let settings = self.webhooks.settings();
        let (delivery, subscription) = (&claim.delivery, &claim.subscription);
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
