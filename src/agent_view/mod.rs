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
//! What the answer shows is kept to what the agent needs, since anyone holding the webhook URL
//! can ask (JivoChat signs nothing): name, link, tags and open tasks, plus the identity field the
//! visitor was looked up by; the other one and the note text only when `agent_view_fields` says
//! so ([`card::for_agent`]). Each source may look up at most `agent_view_per_minute` visitors a
//! minute (cached answers included); past it the answer is the plain acknowledgement, counted
//! (`over_cap`), and the first refusal raises [`Alert::AgentViewCapped`]. Look-ups per source
//! are counted in `formbridge_agent_view_lookups_total{source}` for the jump alert.
//!
//! Every look-up request spends the location's one rate budget ([`Budgets`], shared with the
//! dispatcher) and never waits for it: without a free slot now the look-up is skipped. Its
//! requests also take a slot of the agent view's own share of that budget
//! ([`limit::lookup_share`], 10 % of the burst per window), so look-ups never take more than
//! that from dispatch (`share_spent` when the share is used up). Results
//! are cached briefly ([`CACHE_TTL`]) per location and visitor, and concurrent requests for one
//! visitor share one look-up, so a burst of `chat_updated` costs one. A look-up outlives a
//! request whose deadline passed: it finishes in the background (holding its budget slots until
//! GHL answers, as GHL counts them) and fills the cache for the next event.
//!
//! Emails and phones are never logged.

pub mod appointment;
pub mod cache;
pub mod card;
pub mod limit;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::alerts::{Alert, AlertSink};
use crate::body::ParsedBody;
use crate::domain::LocationId;
use crate::ghl::types::DuplicateContactQuery;
use crate::ghl::{GhlClient, GhlError, GhlResponse};
use crate::ghl_access::{Budget, Budgets, LocationLimiter};
use crate::runtime::SourceRuntime;
use crate::settings::{Settings, NOTE, OTHER_IDENTITY};
use crate::sources::{normalize_parsed, CrmCard};
use crate::submission::{Email, Phone};
use cache::{Cache, Entry};
use card::{Extras, LookedUpBy};
use limit::{Admit, PerMinute};

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
    /// The agent view's own share of the location's budget is used up for this window.
    #[error("the agent view's share of this location's GHL budget is used up for now")]
    ShareSpent,
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
    /// The agent view's share of the location's budget was used up: skipped, GHL not asked.
    ShareSpent,
    /// The source's `agent_view_per_minute` cap was reached: skipped, GHL not asked.
    OverCap,
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
            Outcome::ShareSpent => "share_spent",
            Outcome::OverCap => "over_cap",
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
            LookupError::ShareSpent => Outcome::ShareSpent,
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
    /// What it is looked up by: the email, else the phone.
    fn looked_up_by(&self) -> LookedUpBy {
        match self.email {
            Some(_) => LookedUpBy::Email,
            None => LookedUpBy::Phone,
        }
    }

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

/// The agent view of one process: its GHL client and the shared rate budgets, its own share of
/// each location's budget and cap per source, and the cache.
pub struct AgentView {
    client: GhlClient,
    budgets: Arc<Budgets>,
    app_url: url::Url,
    cache: Cache<Found, LookupError>,
    alerts: AlertSink,
    /// Requests per window of the agent view's share of each location's budget.
    share: u32,
    window: Duration,
    /// The share's limiter by location, created on first use.
    shares: Mutex<HashMap<String, Arc<LocationLimiter>>>,
    /// The per-minute cap by source, created on first use.
    caps: Mutex<HashMap<String, Arc<PerMinute>>>,
}

impl AgentView {
    /// An agent view calling GHL through `client`, spending `budgets` (at most its share of
    /// each), linking into the GHL app at `ghl.app_url`, raising its alerts on `alerts`.
    pub fn new(
        settings: &Settings,
        client: GhlClient,
        budgets: Arc<Budgets>,
        alerts: AlertSink,
    ) -> Self {
        Self {
            client,
            budgets,
            app_url: settings.ghl.app_url.clone(),
            cache: Cache::new(CACHE_TTL, CACHE_CAPACITY),
            alerts,
            share: limit::lookup_share(settings.ghl.rate_limit.burst),
            window: settings.ghl.rate_limit.window,
            shares: Mutex::default(),
            caps: Mutex::default(),
        }
    }

    /// The agent view's share of `location`'s budget.
    fn share(&self, location: &str) -> Arc<LocationLimiter> {
        lock(&self.shares)
            .entry(location.to_owned())
            .or_insert_with(|| LocationLimiter::new(self.share, self.window))
            .clone()
    }

    /// Admits one look-up of `runtime` under its per-minute cap; the first refusal after it
    /// was under the cap is logged and alerted.
    fn admit(&self, runtime: &SourceRuntime) -> bool {
        let per_minute = runtime.agent_view_per_minute();
        let cap = lock(&self.caps)
            .entry(runtime.name.as_str().to_owned())
            .or_insert_with(|| Arc::new(PerMinute::new(per_minute)))
            .clone();
        match cap.admit(Instant::now()) {
            Admit::Yes => true,
            Admit::No { first } => {
                if first {
                    tracing::warn!(source = %runtime.name, per_minute, "agent view: look-ups per minute reached the cap (sources.{}.agent_view_per_minute); answering without a card", runtime.name);
                    self.alerts.emit(Alert::AgentViewCapped {
                        source: runtime.name.as_str().to_owned(),
                        per_minute,
                    });
                }
                false
            }
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
        let extras = Extras {
            other_identity: runtime.agent_view_shows(OTHER_IDENTITY),
            note: runtime.agent_view_shows(NOTE),
        };
        found.and_then(|(card, by)| {
            runtime
                .kind
                .agent_view_answer(&card::for_agent(&card, by, extras))
        })
    }

    /// The visitor's card and what it was looked up by (or why there is none), from the cache
    /// or one look-up, within the source's per-minute cap.
    async fn find(
        self: &Arc<Self>,
        runtime: &Arc<SourceRuntime>,
        parsed: ParsedBody,
        raw: Bytes,
    ) -> (Outcome, Option<(Arc<CrmCard>, LookedUpBy)>) {
        let Some(location) = runtime.location_id.clone() else {
            return (Outcome::NoLocation, None);
        };
        let Some(visitor) = visitor(runtime, parsed, raw).await else {
            return (Outcome::NoVisitor, None);
        };
        metrics::counter!(crate::metrics::AGENT_VIEW_LOOKUPS, "source" => runtime.name.as_str().to_owned())
            .increment(1);
        if !self.admit(runtime) {
            return (Outcome::OverCap, None);
        }
        let by = visitor.looked_up_by();
        let with_by = |found: Found| found.map(|card| (card, by));
        let mut pending = match self.cache.entry(&visitor.key(&location)) {
            Entry::Fresh(found) => return (Outcome::Cached, with_by(found)),
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
            Some(Ok(Some(card))) => (Outcome::Shown, Some((card, by))),
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
        let budget = Spend {
            budget: self.budgets.budget(&LocationId::from(location)),
            share: self.share(location),
        };
        let query = visitor.query(location);
        let matched = call(&budget, || self.client.find_duplicate_contact(&query)).await?;
        let Some(contact) = matched.contact.filter(|c| !c.id.is_empty()) else {
            return Ok((None, true));
        };
        let (tasks, notes, appointments) = tokio::join!(
            call(&budget, || self.client.list_tasks(location, &contact.id)),
            call(&budget, || self.client.list_notes(location, &contact.id)),
            call(&budget, || self
                .client
                .contact_appointments(location, &contact.id)),
        );
        for e in [
            tasks.as_ref().err(),
            notes.as_ref().err(),
            appointments.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        {
            log_failure(location, e);
        }
        let found = card::Found {
            contact: &contact,
            tasks: tasks.as_ref().ok().map(|t| t.tasks.as_slice()),
            notes: notes.as_ref().ok().map(|n| n.notes.as_slice()),
            appointments: appointments.as_ref().ok().map(|a| a.events.as_slice()),
        };
        let card = card::card(&self.app_url, location, &found);
        let complete = tasks.is_ok() && notes.is_ok() && appointments.is_ok();
        Ok((Some(Arc::new(card)), complete))
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

/// What one look-up's requests spend: the location's budget, and the agent view's share of it.
struct Spend {
    budget: Budget,
    share: Arc<LocationLimiter>,
}

/// One GHL request under the agent view's share and the location's budget, only if a slot of
/// each is free now; the answer's rate-limit headers (and a 429's wait) adjust the budget for
/// everyone. The share's slot is taken first: when the budget then has none, that slot stays
/// spent for its window (never more requests than the share, at worst fewer).
async fn call<T, F, Fut>(spend: &Spend, request: F) -> Result<T, LookupError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<GhlResponse<T>, GhlError>>,
{
    let budget = &spend.budget;
    let share = spend.share.acquire(Duration::ZERO).await.map_err(|_| {
        tracing::debug!("agent view: its share of the rate budget is used up for now");
        LookupError::ShareSpent
    })?;
    let permit = budget.acquire(Duration::ZERO).await.map_err(|wait| {
        tracing::debug!(?wait, "agent view: no rate budget free now");
        LookupError::NoBudget
    })?;
    let result = request().await;
    permit.complete().await;
    drop(share);
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold limiters only; a panicked holder cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
