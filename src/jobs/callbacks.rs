//! A create's `callback_url`: a webhook subscription of the one job, made
//! before the job is recorded (so that it sees the job's first event) and
//! removed again when the create records nothing. Its id is the job's; it
//! closes itself after the job's last event (see `webhooks::delivery`).
//!
//! Its deliveries are held until [`ANSWER_GRACE`] after the create is
//! answered, so that the caller has the secret to verify them with before
//! the first arrives; a create never answered (its process died) holds
//! them no longer than a request may last.

use std::time::Duration;

use super::{Error, model::Job, service::Jobs};

/// How long after a create's answer its callback's first delivery may go:
/// time for the caller to keep the secret the answer carries.
pub const ANSWER_GRACE: Duration = Duration::from_secs(1);
use crate::webhooks::{model::Subscription, signing};

impl Jobs {
    /// Opens the callback of `job`, if its request names one.
    pub(super) async fn open_callback(&self, job: &Job) -> Result<(), Error> {
        let Some(url) = &job.options.callback_url else {
            return Ok(());
        };
        let subscription = Subscription {
            id: job.id.0,
            project_id: job.project_id.clone(),
            url: url.clone(),
            description: String::new(),
            event_types: None,
            job_id: Some(job.id),
            secret: signing::new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            cursor: self.store.event_range(&job.project_id).await?.last,
            closed: false,
            created_at: job.created_at,
            held_until: Some(super::model::after(self.settings.request_timeout)),
        };
        self.store
            .webhooks()
            .insert_subscription(&subscription)
            .await?;
        Ok(())
    }

    /// Removes the callback of a create that recorded no job (what it has
    /// not delivered yet goes with it).
    pub(super) async fn drop_callback(&self, job: &Job) {
        if job.options.callback_url.is_none() {
            return;
        }
        if let Err(e) = self
            .store
            .webhooks()
            .delete_subscription(&job.project_id, job.id.0)
            .await
        {
            tracing::warn!(job_id = %job.id, error = %e, "could not remove the callback of a create that recorded nothing; it is purged later");
        }
    }

    /// Releases the deliveries of a job's callback, its create being
    /// answered: they may go [`ANSWER_GRACE`] from now. The callback, if
    /// its request named one.
    pub async fn release_callback(&self, job: &Job) -> Result<Option<Subscription>, Error> {
        if job.options.callback_url.is_none() {
            return Ok(None);
        }
        Ok(self
            .store
            .webhooks()
            .release(&job.project_id, job.id.0, super::model::after(ANSWER_GRACE))
            .await?)
    }
}
