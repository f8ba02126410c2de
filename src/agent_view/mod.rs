//! The agent view: the answer to a stored chat delivery that shows the chat's agent what GHL
//! knows of the visitor (JivoChat's `chat_accepted` / `chat_updated`).
//!
//! The delivery is stored first, exactly like any other (the durable 2xx promise does not
//! change). Then, within the source's `agent_view_timeout` counted from the delivery's arrival,
//! the visitor read by the source's own tool (email, else phone in E.164) is looked up in the
//! source's GHL location: `GET /contacts/search/duplicate` (GHL's own matching, without the
//! search index's lag), then the contact's tasks and notes. The tool turns the resulting
//! [`CrmCard`] into its answer. Anything else — an unknown visitor, no email or phone, no free
//! rate budget, GHL slow, failing or rate limiting — answers the tool's plain acknowledgement
//! in time, and is counted in `formbridge_agent_view_total{outcome}`.
//!
//! Every look-up request spends the location's one rate budget ([`Budgets`], shared with the
//! dispatcher) and never waits for it: without a free slot now the look-up is skipped. Results
//! are cached briefly ([`CACHE_TTL`]) per location and visitor, and concurrent requests for one
//! visitor share one look-up, so a burst of `chat_updated` costs one. A look-up outlives a
//! request whose deadline passed: it finishes in the background (holding its budget slots until
//! GHL answers, as GHL counts them) and fills the cache for the next event.
//!
//! Emails and phones are never logged.

pub mod cache;
pub mod card;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::body::ParsedBody;
use crate::dispatch::budget::{Budget, Budgets};
use crate::ghl::types::DuplicateContactQuery;
use crate::ghl::{GhlClient, GhlError, GhlResponse};
use crate::runtime::SourceRuntime;
use crate::settings::Settings;
use crate::sources::{normalize_parsed, CrmCard};
use crate::store::LocationId;
use crate::submission::{Email, Phone};
use cache::{Cache, Entry};

/// How long a look-up's result is reused for the same visitor of the same location: long
/// enough for a burst of `chat_updated` while the agent works, short enough that a tag or task
/// added in GHL shows on the next chat event soon after.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Most visitors kept in the cache (a few MB at most).
pub const CACHE_CAPACITY: usize = 10_000;

/// Why a look-up found nothing to show. Each says what happened, never who was looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The location's rate budget had no slot free at once.
    #[error("no GHL rate budget free now for this location")]
    NoBudget,
    /// GHL answered 429.
    #[error("GHL rate limit hit")]
    RateLimited,
    /// GHL failed or could not be reached.
    #[error("GHL call failed ({class}, status {status:?})")]
    Ghl {
        /// [`GhlError::class`].
        class: &'static str,
        /// The HTTP status, when an answer arrived.
        status: Option<u16>,
    },
}

/// How one agent-view answer ended: the `outcome` label of `formbridge_agent_view_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The visitor's card was looked up and shown.
    Shown,
    /// Answered from the cache (a card, or an unknown visitor) without asking GHL.
    Cached,
    /// GHL has no contact with this email or phone: plain acknowledgement.
    Unknown,
    /// The delivery carries neither an email nor a phone to look up.
    NoVisitor,
    /// The source has no GHL location.
    NoLocation,
    /// The location's rate budget had no free slot now: skipped, GHL not asked.
    NoBudget,
    /// The deadline passed first.
    Timeout,
    /// GHL answered 429.
    RateLimited,
    /// GHL failed (5xx, network, refused credentials …).
    GhlError,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Shown => "shown",
            Outcome::Cached => "cached",
            Outcome::Unknown => "unknown",
            Outcome::NoVisitor => "no_visitor",
            Outcome::NoLocation => "no_location",
            Outcome::NoBudget => "no_budget",
            Outcome::Timeout => "timeout",
            Outcome::RateLimited => "rate_limited",
            Outcome::GhlError => "ghl_error",
        }
    }
}

impl From<&LookupError> for Outcome {
    fn from(e: &LookupError) -> Self {
        match e {
            LookupError::NoBudget => Outcome::NoBudget,
            LookupError::RateLimited => Outcome::RateLimited,
            LookupError::Ghl { .. } => Outcome::GhlError,
        }
    }
}

/// What one look-up found: the visitor's card, or `None` for a visitor GHL does not know.
type Found = Option<Arc<CrmCard>>;

/// The visitor of a chat delivery, as the source's tool read it.
#[derive(Debug, Clone)]
struct Visitor {
    email: Option<Email>,
    phone: Option<Phone>,
}

impl Visitor {
    /// The cache key: the location and what is looked up (the email, else the phone).
    fn key(&self, location: &str) -> String {
        match (&self.email, &self.phone) {
            (Some(email), _) => format!("{location}\nemail:{email}"),
            (None, Some(phone)) => format!("{location}\nphone:{phone}"),
            (None, None) => format!("{location}\n"),
        }
    }

    /// GHL's duplicate look-up by the email, else the phone.
    fn query(&self, location: &str) -> DuplicateContactQuery {
        DuplicateContactQuery {
            location_id: location.to_owned(),
            email: self.email.as_ref().map(ToString::to_string),
            number: match &self.email {
                Some(_) => None,
                None => self.phone.as_ref().map(ToString::to_string),
            },
        }
    }
}

/// The agent view of one process: its GHL client and the shared rate budgets, and the cache.
pub struct AgentView {
    client: GhlClient,
    budgets: Arc<Budgets>,
    app_url: url::Url,
    cache: Cache<Found, LookupError>,
}

impl AgentView {
    /// An agent view calling GHL through `client`, spending `budgets`, linking into the GHL
    /// app at `ghl.app_url`.
    pub fn new(settings: &Settings, client: GhlClient, budgets: Arc<Budgets>) -> Self {
        Self {
            client,
            budgets,
            app_url: settings.ghl.app_url.clone(),
            cache: Cache::new(CACHE_TTL, CACHE_CAPACITY),
        }
    }

    /// The answer to a delivery of `runtime` that was just stored (`parsed` and `raw` are its
    /// body), when its tool shows this delivery's answer to an agent and the look-up succeeds
    /// by `arrived + agent_view_timeout`; `None` answers the tool's plain acknowledgement.
    pub async fn answer(
        self: &Arc<Self>,
        runtime: &Arc<SourceRuntime>,
        parsed: ParsedBody,
        raw: Bytes,
        arrived: Instant,
    ) -> Option<Value> {
        if !runtime.agent_view() || !runtime.kind.agent_view_wanted(&parsed) {
            return None;
        }
        let deadline = arrived + runtime.agent_view_timeout();
        let (outcome, found) =
            match tokio::time::timeout_at(deadline, self.find(runtime, parsed, raw)).await {
                Ok(found) => found,
                Err(_) => (Outcome::Timeout, None),
            };
        metrics::counter!(crate::metrics::AGENT_VIEW, "outcome" => outcome.label()).increment(1);
        tracing::debug!(source = %runtime.name, outcome = outcome.label(), "agent view answered");
        found.and_then(|card| runtime.kind.agent_view_answer(&card))
    }

    /// The visitor's card (or why there is none), from the cache or one look-up.
    async fn find(
        self: &Arc<Self>,
        runtime: &Arc<SourceRuntime>,
        parsed: ParsedBody,
        raw: Bytes,
    ) -> (Outcome, Found) {
        let Some(location) = runtime.location_id.clone() else {
            return (Outcome::NoLocation, None);
        };
        let Some(visitor) = visitor(runtime, parsed, raw).await else {
            return (Outcome::NoVisitor, None);
        };
        let mut pending = match self.cache.entry(&visitor.key(&location)) {
            Entry::Fresh(found) => return (Outcome::Cached, found),
            Entry::InFlight(pending) => pending,
            Entry::Start(filler, pending) => {
                let this = Arc::clone(self);
                // Its own task: it finishes (and fills the cache) even when this request's
                // deadline passes first.
                tokio::spawn(async move {
                    match this.look_up(&location, &visitor).await {
                        Ok((found, complete)) => filler.finish(Ok(found), complete),
                        Err(e) => {
                            log_failure(&location, &e);
                            filler.finish(Err(e), false);
                        }
                    }
                });
                pending
            }
        };
        let result = match pending.wait_for(Option::is_some).await {
            Ok(result) => result.clone(),
            // The look-up's task ended without a result (it panicked).
            Err(_) => return (Outcome::GhlError, None),
        };
        match result {
            Some(Ok(Some(card))) => (Outcome::Shown, Some(card)),
            Some(Ok(None)) | None => (Outcome::Unknown, None),
            Some(Err(e)) => (Outcome::from(&e), None),
        }
    }

    /// Looks the visitor up in `location`: the contact, then its tasks and notes (side by side).
    /// The card is complete (worth caching) when both could be read; without them it still
    /// shows the contact.
    async fn look_up(
        &self,
        location: &str,
        visitor: &Visitor,
    ) -> Result<(Found, bool), LookupError> {
        let budget = self.budgets.budget(&LocationId::from(location));
        let query = visitor.query(location);
        let matched = call(&budget, || self.client.find_duplicate_contact(&query)).await?;
        let Some(contact) = matched.contact.filter(|c| !c.id.is_empty()) else {
            return Ok((None, true));
        };
        let (tasks, notes) = tokio::join!(
            call(&budget, || self.client.list_tasks(location, &contact.id)),
            call(&budget, || self.client.list_notes(location, &contact.id)),
        );
        for e in [tasks.as_ref().err(), notes.as_ref().err()]
            .into_iter()
            .flatten()
        {
            log_failure(location, e);
        }
        let found = card::Found {
            contact: &contact,
            tasks: tasks.as_ref().ok().map(|t| t.tasks.as_slice()),
            notes: notes.as_ref().ok().map(|n| n.notes.as_slice()),
        };
        let card = card::card(&self.app_url, location, &found);
        Ok((Some(Arc::new(card)), tasks.is_ok() && notes.is_ok()))
    }
}

/// The visitor's email and phone as the source's tool reads them (off the async threads, like
/// every normalization); `None` when it has neither.
async fn visitor(runtime: &Arc<SourceRuntime>, parsed: ParsedBody, raw: Bytes) -> Option<Visitor> {
    let runtime = Arc::clone(runtime);
    let read = tokio::task::spawn_blocking(move || {
        normalize_parsed(
            &runtime.name,
            runtime.kind,
            &runtime.read_options(),
            &parsed,
            &raw,
            OffsetDateTime::now_utc(),
        )
    })
    .await;
    let submission = match read {
        Ok(Ok(submission)) => submission,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "agent view: the delivery cannot be read");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "agent view: reading the delivery failed");
            return None;
        }
    };
    let contact = submission.contact;
    (contact.email.is_some() || contact.phone.is_some()).then_some(Visitor {
        email: contact.email,
        phone: contact.phone,
    })
}

/// One GHL request under the location's budget, only if a slot is free now; the answer's
/// rate-limit headers (and a 429's wait) adjust the budget for everyone.
async fn call<T, F, Fut>(budget: &Budget, request: F) -> Result<T, LookupError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<GhlResponse<T>, GhlError>>,
{
    let permit = budget.acquire(Duration::ZERO).await.map_err(|wait| {
        tracing::debug!(?wait, "agent view: no rate budget free now");
        LookupError::NoBudget
    })?;
    let result = request().await;
    permit.complete().await;
    match result {
        Ok(answer) => {
            budget.observe(&answer.limits);
            Ok(answer.body)
        }
        Err(e) => {
            budget.observe(e.limits());
            if let Some(wait) = e.retry_after() {
                budget.pause_for(wait);
                return Err(LookupError::RateLimited);
            }
            Err(LookupError::Ghl {
                class: e.class(),
                status: e.status(),
            })
        }
    }
}

/// Logs a failed look-up: what failed and where, never who was looked up. Refused
/// credentials or access are a configuration fault (warn); the rest is counted in the metric.
fn log_failure(location: &str, error: &LookupError) {
    match error {
        LookupError::Ghl {
            class: "unauthorized" | "forbidden" | "config",
            ..
        } => {
            tracing::warn!(location_id = location, %error, "agent view: GHL refused the look-up; check the location's token and its contacts.readonly scope")
        }
        _ => tracing::debug!(location_id = location, %error, "agent view: look-up failed"),
    }
}
