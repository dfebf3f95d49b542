//! Webhooks: a tenant's job events pushed to URLs it names, signed as the
//! Standard Webhooks specification says, at least once, retried with
//! backoff, and each delivery readable.
//!
//! A subscription is either the tenant's own (`POST /webhooks`: every
//! event, or the types it names) or a create's `callback_url` (that job's
//! events only; its id is the job's). Deliveries are made from the event
//! log (see [`delivery`]), so they survive restarts and any replica makes
//! them. Targets are limited to the operator's allow-list ([`targets`]).
//!
//! This module holds the rules; `api::webhooks` maps them to HTTP.

pub mod delivery;
pub mod model;
pub mod signing;
pub mod targets;

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::jobs::{Error, Jobs, events::EventKind};
use model::{Delivery, DeliveryStatus, Subscription};
use targets::{AllowList, TargetError};

/// How webhooks behave, from the configuration.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where deliveries may go.
    pub allow: Arc<AllowList>,
    /// How long a delivery is retried, from its first attempt's due time.
    pub retry_for: Duration,
    /// The pause after a first failed attempt; it doubles per attempt.
    pub retry_base: Duration,
    /// The longest pause between attempts.
    pub retry_max: Duration,
    /// Longest time to connect to a receiver.
    pub connect_timeout: Duration,
    /// Longest time an attempt may take, connection included.
    pub timeout: Duration,
    /// How long a rotated-out secret is still signed with.
    pub secret_overlap: Duration,
    /// Most subscriptions of its own a tenant may have.
    pub max_per_tenant: u32,
    /// Most attempts under way at once in this replica.
    pub concurrency: usize,
    /// How long ended deliveries are kept.
    pub retention: Duration,
}

/// The webhook operations of the API.
pub struct Webhooks {
    jobs: Arc<Jobs>,
    settings: WebhookSettings,
}

/// What a new subscription asks for.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    /// Where deliveries go.
    pub url: String,
    /// The tenant's note.
    pub description: Option<String>,
    /// Only these event types; `None`: all.
    pub event_types: Option<Vec<String>>,
    /// The caller's own secret; `None`: the gateway makes one.
    pub secret: Option<String>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The id to continue after (or before), when there are more.
    pub next: Option<Uuid>,
}

/// Longest description of a subscription.
const MAX_DESCRIPTION_CHARS: usize = 255;

impl Webhooks {
    /// The webhook operations over the job service's store and tenants.
    pub fn new(jobs: Arc<Jobs>, settings: WebhookSettings) -> Arc<Webhooks> {
        Arc::new(Webhooks { jobs, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// The job service.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// Checks a URL a caller names as a delivery target (400 when it is not
    /// one the gateway may call).
    pub async fn check_target(&self, field: &str, url: &str) -> Result<String, Error> {
        if url.is_empty() {
            return Err(Error::Invalid(format!("`{field}` is required")));
        }
        self.settings
            .allow
            .check_url(url)
            .await
            .map(String::from)
            .map_err(|e| match e {
                TargetError::Invalid(why) => Error::Invalid(format!(
                    "`{field}` is not a URL deliveries can go to: {why}"
                )),
                other => Error::TargetNotAllowed(other.to_string()),
            })
    }

    /// Records a subscription of the caller's tenant: it gets the events
    /// that happen from now on.
    pub async fn create(&self, tenant: &str, new: NewSubscription) -> Result<Subscription, Error> {
        if let Some(description) = &new.description
            && description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Err(Error::Invalid(format!(
                "`description` must be at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        if let Some(types) = &new.event_types {
            check_event_types(types)?;
        }
        if let Some(secret) = &new.secret {
            signing::check_secret(secret).map_err(Error::Invalid)?;
        }
        let project_id = self.jobs.project_of(tenant).await?;
        let url = self.check_target("url", &new.url).await?;
        let store = self.jobs.store().webhooks();
        if store.count_subscriptions(&project_id).await? >= u64::from(self.settings.max_per_tenant)
        {
            return Err(Error::TooManyWebhooks(self.settings.max_per_tenant));
        }
        let subscription = Subscription {
            id: Uuid::now_v7(),
            cursor: self.jobs.store().event_range(&project_id).await?.last,
            project_id,
            url,
            description: new.description.unwrap_or_default(),
            event_types: new.event_types.map(|mut types| {
                types.sort();
                types.dedup();
                types
            }),
            job_id: None,
            secret: new.secret.unwrap_or_else(signing::new_secret),
            previous_secret: None,
            previous_secret_until: None,
            closed: false,
            created_at: crate::jobs::model::now(),
            held_until: None,
        };
        store.insert_subscription(&subscription).await?;
        tracing::info!(webhook_id = %subscription.id, "webhook subscription created");
        Ok(subscription)
    }

    /// One subscription of the caller's tenant.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Subscription, Error> {
        let project_id = self.jobs.project_of(tenant).await?;
        self.get_in(&project_id, id).await
    }

    async fn get_in(&self, project_id: &str, id: &str) -> Result<Subscription, Error> {
        let not_found = || Error::WebhookNotFound(id.to_owned());
        let uuid: Uuid = id.parse().map_err(|_| not_found())?;
        self.jobs
            .store()
            .webhooks()
            .subscription(project_id, uuid)
            .await?
            .ok_or_else(not_found)
    }

    /// The tenant's subscriptions, oldest first.
    pub async fn list(
        &self,
        tenant: &str,
        limit: u32,
        after: Option<Uuid>,
    ) -> Result<Page<Subscription>, Error> {
        let project_id = self.jobs.project_of(tenant).await?;
        let mut items = self
            .jobs
            .store()
            .webhooks()
            .subscriptions(&project_id, limit + 1, after)
            .await?;
        let next = page(&mut items, limit, |s| s.id);
        Ok(Page { items, next })
    }

    /// Removes a subscription and its deliveries: nothing more is sent.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), Error> {
        let project_id = self.jobs.project_of(tenant).await?;
        let subscription = self.get_in(&project_id, id).await?;
        self.jobs
            .store()
            .webhooks()
            .delete_subscription(&project_id, subscription.id)
            .await?;
        tracing::info!(webhook_id = %subscription.id, "webhook subscription deleted");
        Ok(())
    }

    /// Gives the subscription a new secret (the caller's, or a new random
    /// one); the one it replaces is still signed with for
    /// `--webhook-secret-overlap`. Naming the current secret changes
    /// nothing (a retried rotation).
    pub async fn rotate_secret(
        &self,
        tenant: &str,
        id: &str,
        secret: Option<String>,
    ) -> Result<Subscription, Error> {
        if let Some(secret) = &secret {
            signing::check_secret(secret).map_err(Error::Invalid)?;
        }
        let project_id = self.jobs.project_of(tenant).await?;
        let current = self.get_in(&project_id, id).await?;
        let secret = secret.unwrap_or_else(signing::new_secret);
        if secret == current.secret {
            // A retry of a rotation whose answer was lost: already done,
            // and the secret it replaced stays as it was.
            return Ok(current);
        }
        let until = crate::jobs::model::after(self.settings.secret_overlap);
        let rotated = self
            .jobs
            .store()
            .webhooks()
            .rotate_secret(&project_id, current.id, &secret, until)
            .await?
            .ok_or_else(|| Error::WebhookNotFound(id.to_owned()))?;
        tracing::info!(webhook_id = %rotated.id, "webhook secret rotated");
        Ok(rotated)
    }

    /// A subscription's deliveries, newest first.
    pub async fn deliveries(
        &self,
        tenant: &str,
        id: &str,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Page<Delivery>, Error> {
        let project_id = self.jobs.project_of(tenant).await?;
        let subscription = self.get_in(&project_id, id).await?;
        let mut items = self
            .jobs
            .store()
            .webhooks()
            .deliveries(subscription.id, status, limit + 1, before)
            .await?;
        let next = page(&mut items, limit, |d| d.id);
        Ok(Page { items, next })
    }
}

/// Cuts a listing read with one item more than `limit` to `limit`; the id
/// of its last item when there are more.
fn page<T>(items: &mut Vec<T>, limit: u32, id: impl Fn(&T) -> Uuid) -> Option<Uuid> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(id)
    } else {
        None
    }
}

/// Checks a subscription's event types: known types, at least one.
fn check_event_types(types: &[String]) -> Result<(), Error> {
    if types.is_empty() {
        return Err(Error::Invalid(
            "`event_types` must name at least one type (leave it out for every type)".into(),
        ));
    }
    for name in types {
        if !EventKind::ALL.iter().any(|k| k.event_type() == name) {
            return Err(Error::Invalid(format!(
                "`event_types`: `{}` is not an event type (one of {})",
                crate::problem::echo(name),
                EventKind::ALL.map(EventKind::event_type).join(", ")
            )));
        }
    }
    Ok(())
}
