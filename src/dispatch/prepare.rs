//! Preparation: normalize each new delivery and build its plan, in arrival order, so that
//! every event has its contact key before any later event can be claimed. Each event is
//! prepared on a blocking thread within `dispatch.prepare_timeout`, under the same body limits
//! as the ingress, so no delivery can hold up the async workers or the events after it.

use std::sync::Arc;
use std::time::Duration;

use crate::alerts::{Alert, AlertSink};
use crate::body::BodyLimits;
use crate::domain::plan::Step;
use crate::domain::{ContactKey, LocationId};
use crate::mapping::build_plan;
use crate::runtime::SourceRuntimes;
use crate::settings::Settings;
use crate::sources::normalize;
use crate::store::{Event, LeadIndex, Preparation, Queue, StoreError};

/// The config key of the per-event preparation budget, named in dead-letter reasons.
const BUDGET_KEY: &str = "dispatch.prepare_timeout";

/// The CPU-bound work of preparing one event.
type Work = Arc<dyn Fn(&Event) -> Preparation + Send + Sync>;

/// Turns stored deliveries into plans with the current configuration.
pub struct Preparer {
    work: Work,
    /// Longest time one event's preparation may take.
    budget: Duration,
    /// Where dead letters are reported.
    alerts: AlertSink,
    /// The sources, until [`Preparer::indexing`] takes them.
    sources: Option<Arc<SourceRuntimes>>,
    /// Where the keys of each prepared event go ("find a lead"), with the sources (for their
    /// default country); none in tests of preparation alone.
    index: Option<(Arc<dyn LeadIndex>, Arc<SourceRuntimes>)>,
}

/// How a batch's events ended, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Prepared,
    Unmappable,
    OverBudget,
}

impl Preparer {
    /// Prepares events of the sources in `runtimes`, each within `dispatch.prepare_timeout`.
    pub fn new(settings: &Settings, runtimes: Arc<SourceRuntimes>, alerts: AlertSink) -> Self {
        let budget = settings.dispatch.prepare_timeout;
        let planner = Planner {
            runtimes: runtimes.clone(),
            limits: settings.server.body_limits(),
        };
        Self {
            alerts,
            index: None,
            ..Self::with_work(budget, Arc::new(move |event| planner.prepare(event)))
        }
        .with_sources(runtimes)
    }

    fn with_sources(mut self, runtimes: Arc<SourceRuntimes>) -> Self {
        self.sources = Some(runtimes);
        self
    }

    /// Records the keys of each prepared event in `index` (the admin's "find a lead").
    pub fn indexing(mut self, index: Arc<dyn LeadIndex>) -> Self {
        if let Some(sources) = self.sources.take() {
            self.index = Some((index, sources));
        }
        self
    }

    /// Indexes what was prepared (one statement per batch); a failure is logged (the search
    /// misses these events until they are replayed; the queue goes on).
    async fn index(&self, results: &[(crate::domain::EventId, Preparation)], sources: &[String]) {
        let Some((index, runtimes)) = &self.index else {
            return;
        };
        let keys: Vec<_> = results
            .iter()
            .zip(sources)
            .filter_map(|((id, prep), source)| {
                let json = match prep {
                    Preparation::Ready { submission, .. }
                    | Preparation::NothingToDo { submission, .. } => submission,
                    Preparation::Failed { submission, .. } => submission.as_ref()?,
                };
                let submission =
                    <crate::submission::Submission as serde::Deserialize>::deserialize(json)
                        .ok()?;
                let country = runtimes
                    .get(source)
                    .and_then(|s| s.read_options().default_country.map(str::to_owned))
                    .unwrap_or_else(|| "US".to_owned());
                Some((*id, super::lead_keys::lead_keys(&submission, &country)))
            })
            .collect();
        if let Err(e) = index.index_leads(&keys).await {
            tracing::warn!(error = %e, "cannot index prepared events for the admin search");
        }
    }

    fn with_work(budget: Duration, work: Work) -> Self {
        Self {
            work,
            budget,
            alerts: AlertSink::off(),
            index: None,
            sources: None,
        }
    }

    /// Prepares up to `batch` unprepared events; returns how many it handled.
    pub async fn run_once(&self, store: &dyn Queue, batch: u32) -> Result<usize, StoreError> {
        let events = store.unprepared(batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let handled = events.len();
        let mut results = Vec::with_capacity(handled);
        let mut outcomes = Vec::with_capacity(handled);
        let mut sources = Vec::with_capacity(handled);
        for event in events {
            let id = event.summary.id;
            let source = event.summary.source.clone();
            sources.push(source.clone());
            let (prep, outcome) = self.prepare_within_budget(event).await;
            results.push((id, prep));
            outcomes.push((outcome, source));
        }
        store.save_preparations(&results).await?;
        self.index(&results, &sources).await;
        for ((id, prep), (outcome, source)) in results.iter().zip(outcomes) {
            match prep {
                Preparation::Failed { error, .. } => {
                    let reason = match outcome {
                        Outcome::OverBudget => "prepare_timeout",
                        Outcome::Prepared | Outcome::Unmappable => "unmappable",
                    };
                    metrics::counter!(crate::metrics::DEAD_LETTERS, "reason" => reason)
                        .increment(1);
                    tracing::warn!(event_id = %id, %error, "event dead-lettered: cannot be mapped");
                    self.alerts.emit(Alert::DeadLetter {
                        event_id: id.0,
                        source,
                        error: error.clone(),
                    });
                }
                Preparation::NothingToDo { .. } => {
                    metrics::counter!(crate::metrics::DISPATCH, "outcome" => "nothing_to_do")
                        .increment(1);
                    tracing::debug!(event_id = %id, "event needs nothing in GHL");
                }
                Preparation::Ready { .. } => {}
            }
        }
        Ok(handled)
    }

    /// Prepares `event` on a blocking thread. Past the budget the event is failed and the next
    /// one goes on; the abandoned thread ends on its own (normalization is linear in a body
    /// already bounded in size) and its result is dropped.
    async fn prepare_within_budget(&self, event: Event) -> (Preparation, Outcome) {
        let work = self.work.clone();
        let task = tokio::task::spawn_blocking(move || work(&event));
        match tokio::time::timeout(self.budget, task).await {
            Ok(Ok(prep)) => {
                let outcome = match prep {
                    Preparation::Failed { .. } => Outcome::Unmappable,
                    _ => Outcome::Prepared,
                };
                (prep, outcome)
            }
            Ok(Err(e)) => (
                Preparation::Failed {
                    submission: None,
                    error: format!("preparing the delivery failed unexpectedly ({e}); this is a formbridge bug: please report it with this event's body, then replay"),
                },
                Outcome::Unmappable,
            ),
            Err(_) => (
                Preparation::Failed {
                    submission: None,
                    error: format!(
                        "preparing the delivery took longer than {} ({BUDGET_KEY}); it is too large or too complex to map. Lower the server.max_* limits so such bodies are refused at ingress, or raise {BUDGET_KEY}, then replay",
                        humantime::format_duration(self.budget)
                    ),
                },
                Outcome::OverBudget,
            ),
        }
    }
}

/// Normalizes one event and builds its plan (pure CPU work, run on a blocking thread).
struct Planner {
    /// Every source, compiled at start.
    runtimes: Arc<SourceRuntimes>,
    limits: BodyLimits,
}

impl Planner {
    fn prepare(&self, event: &Event) -> Preparation {
        let failed = |submission, error: String| Preparation::Failed { submission, error };
        let source_name = &event.summary.source;
        let Some(source) = self.runtimes.get(source_name) else {
            return failed(None, format!("source `{source_name}` is no longer configured; add [sources.{source_name}] and replay"));
        };
        let submission = match normalize(
            &source.name,
            source.kind,
            &source.read_options(),
            &self.limits,
            event.content_type.as_deref(),
            &event.body,
            event.summary.received_at,
        ) {
            Ok(s) => s,
            Err(e) => return failed(None, format!("cannot read the delivery: {e}")),
        };
        let submission_json = serde_json::to_value(&submission).unwrap_or(serde_json::Value::Null);
        let mut plan = match build_plan(&source.mapping, &submission) {
            Ok(plan) => plan,
            Err(e) => return failed(Some(submission_json), e.to_string()),
        };
        if plan.steps.is_empty() {
            return Preparation::NothingToDo {
                submission: submission_json,
                references: plan.references,
                location_id: source.location_id.clone().map(LocationId::new),
                reason: plan
                    .nothing_to_do
                    .unwrap_or_else(|| "the mapping plans nothing in GHL".to_owned()),
            };
        }
        let Some(location_id) = source.location_id.clone() else {
            return failed(
                Some(submission_json),
                format!("no GHL location for source `{source_name}`: set ghl.location_id (FORMBRIDGE__GHL__LOCATION_ID) or sources.{source_name}.location, then replay"),
            );
        };
        // An edit updates what its first revision made (its note and tasks, in place).
        plan.revision_of = event.summary.revision_of.map(|first| first.0);
        // A follow-up known only by its reference goes one at a time with the others of its
        // lead; anything else without a contact key goes on its own.
        let contact_key = plan
            .contact_key()
            .or_else(|| {
                plan.steps.iter().find_map(|s| match s {
                    Step::LeadContact { reference } => Some(format!("ref:{reference}")),
                    _ => None,
                })
            })
            .unwrap_or_else(|| format!("event:{}", event.summary.id));
        Preparation::Ready {
            submission: submission_json,
            plan,
            contact_key: ContactKey::new(format!("{location_id}/{contact_key}")),
            location_id: LocationId::new(location_id),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{mpsc, Mutex};

    use bytes::Bytes;
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::EventId;
    use crate::domain::SourceName;
    use crate::settings::StoreSettings;
    use crate::store::{EventStatus, NewEvent, Store};

    async fn store_with(
        dir: &std::path::Path,
        bodies: &[&'static str],
    ) -> (Arc<dyn Store>, Vec<EventId>) {
        let store = crate::store::open(&StoreSettings::with_url(format!(
            "sqlite://{}",
            dir.join("prepare.db").display()
        )))
        .await
        .unwrap();
        let mut ids = Vec::new();
        for body in bodies {
            let event = NewEvent {
                source: SourceName::parse("dripjobs").unwrap(),
                dedupe_key: format!("test:{body}"),
                content_hash: None,
                content_type: Some("application/json".to_owned()),
                headers: Vec::new(),
                body: Bytes::from_static(body.as_bytes()),
                received_at: OffsetDateTime::now_utc(),
            };
            ids.push(store.insert_event(event).await.unwrap().id());
        }
        (store, ids)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_over_its_budget_is_dead_lettered_and_the_next_one_is_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with(dir.path(), &["stuck", "quick"]).await;
        // The first event's preparation does not end until the test releases it.
        let (release, stuck) = mpsc::channel::<()>();
        let stuck = Mutex::new(stuck);
        let work: Work = Arc::new(move |event: &Event| {
            if event.body.as_ref() == b"stuck" {
                if let Ok(rx) = stuck.lock() {
                    let _ = rx.recv_timeout(Duration::from_secs(60));
                }
            }
            Preparation::NothingToDo {
                submission: serde_json::json!({}),
                references: Vec::new(),
                location_id: None,
                reason: "test".to_owned(),
            }
        });
        let preparer = Preparer::with_work(Duration::from_millis(200), work);
        let handled = preparer.run_once(store.as_ref(), 10).await.unwrap();
        let _ = release.send(());
        assert_eq!(handled, 2);

        let stuck = store.get_event(ids[0]).await.unwrap().unwrap().summary;
        assert_eq!(stuck.status, EventStatus::Dead);
        let reason = stuck.last_error.unwrap_or_default();
        assert!(
            reason.contains("took longer than 200ms (dispatch.prepare_timeout)"),
            "{reason}"
        );
        let quick = store.get_event(ids[1]).await.unwrap().unwrap().summary;
        assert_eq!(quick.status, EventStatus::Done, "{:?}", quick.last_error);
    }

    #[tokio::test]
    async fn a_panicking_preparation_is_dead_lettered_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with(dir.path(), &["boom"]).await;
        let work: Work = Arc::new(|_: &Event| panic!("normalizer bug"));
        let preparer = Preparer::with_work(Duration::from_secs(5), work);
        assert_eq!(preparer.run_once(store.as_ref(), 10).await.unwrap(), 1);
        let event = store.get_event(ids[0]).await.unwrap().unwrap().summary;
        assert_eq!(event.status, EventStatus::Dead);
        assert!(event
            .last_error
            .unwrap_or_default()
            .contains("formbridge bug"));
    }
}
