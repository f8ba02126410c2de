//! The comparison: each stored delivery's plan under the running mapping and under a
//! candidate, the differences, and which dead letters the candidate would fix. Pure: nothing
//! is sent to GHL and nothing is written.

use serde::Serialize;
use time::OffsetDateTime;

use super::candidate::Candidate;
use super::plan_diff::{diff, Difference};
use crate::body::BodyLimits;
use crate::domain::plan::Plan;
use crate::domain::EventId;
use crate::mapping::config::MappingConfig;
use crate::mapping::file::KeyedProblem;
use crate::mapping::{build_plan, CompiledMapping};
use crate::runtime::SourceRuntime;
use crate::sources::{normalize, ReadOptions};
use crate::store::{Event, EventStatus};
use crate::submission::Submission;

/// What a mapping makes of one delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its plan.
    Plan(Plan),
    /// Why there is none (the event would be dead-lettered with this reason).
    Error(String),
}

/// How the candidate's outcome compares with the running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The same plan (or the same failure).
    Same,
    /// Both build, with differences.
    Changed,
    /// The running mapping fails; the candidate builds a plan.
    Fixes,
    /// The running mapping builds a plan; the candidate fails.
    Breaks,
    /// Both fail (the reasons may differ).
    StillFails,
    /// The candidate has configuration problems: nothing to compare.
    NotCompared,
}

/// One delivery under both mappings.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryComparison {
    pub event_id: EventId,
    pub status: EventStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Why the event failed last, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub running: Outcome,
    /// `None` while the candidate has configuration problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Outcome>,
    pub differences: Vec<Difference>,
    pub verdict: Verdict,
    /// A dead letter whose plan builds under the candidate and failed under the running
    /// mapping, or never got one (dead at preparation, under an earlier configuration): a
    /// replay with the candidate deployed gets it through the mapping.
    #[serde(skip)]
    fixes_dead_letter: bool,
}

/// How many deliveries got each verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub same: usize,
    pub changed: usize,
    pub fixes: usize,
    pub breaks: usize,
    pub still_fails: usize,
}

/// A candidate compared over a set of deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub source: String,
    /// Every configuration problem of the candidate, with its key; none means it would load.
    pub problems: Vec<KeyedProblem>,
    pub deliveries: Vec<DeliveryComparison>,
    pub counts: Counts,
    /// Dead letters whose plan builds under the candidate where the running mapping fails (or
    /// where none was ever made, the letter dead at preparation): deploying the candidate and
    /// replaying them gets them through the mapping.
    pub would_fix: Vec<EventId>,
    /// Deliveries the running mapping handles and the candidate would fail.
    pub would_break: Vec<EventId>,
}

/// Compares `candidate` with the running mapping of `source` over `events`.
pub fn compare(
    source: &SourceRuntime,
    limits: &BodyLimits,
    candidate: &Candidate,
    events: &[Event],
) -> Comparison {
    let mut counts = Counts::default();
    let mut would_fix = Vec::new();
    let mut would_break = Vec::new();
    let deliveries = events
        .iter()
        .map(|event| {
            let one = compare_one(source, limits, candidate.mapping.as_ref(), event);
            match one.verdict {
                Verdict::Same => counts.same += 1,
                Verdict::Changed => counts.changed += 1,
                Verdict::Fixes => counts.fixes += 1,
                Verdict::Breaks => counts.breaks += 1,
                Verdict::StillFails => counts.still_fails += 1,
                Verdict::NotCompared => {}
            }
            if one.fixes_dead_letter {
                would_fix.push(one.event_id);
            }
            if one.verdict == Verdict::Breaks {
                would_break.push(one.event_id);
            }
            one
        })
        .collect();
    Comparison {
        source: source.name.to_string(),
        problems: candidate.problems.clone(),
        deliveries,
        counts,
        would_fix,
        would_break,
    }
}

/// The normalized submission of a stored delivery, as the running source reads it.
pub fn submission_of(
    source: &SourceRuntime,
    limits: &BodyLimits,
    event: &Event,
) -> Result<Submission, String> {
    read(source, &source.read_options(), limits, event)
}

/// The delivery read as `mapping` says (its `fields`, `default_country`, …).
fn submission_under(
    source: &SourceRuntime,
    mapping: &MappingConfig,
    limits: &BodyLimits,
    event: &Event,
) -> Result<Submission, String> {
    let options = ReadOptions {
        default_country: mapping.default_country.as_deref(),
        submission_id: mapping.submission_id.as_deref(),
        dedupe_field: source.dedupe_field(),
        strip_html: mapping.strip_html,
        fields: &mapping.fields,
    };
    read(source, &options, limits, event)
}

fn read(
    source: &SourceRuntime,
    options: &ReadOptions<'_>,
    limits: &BodyLimits,
    event: &Event,
) -> Result<Submission, String> {
    normalize(
        &source.name,
        source.kind,
        options,
        limits,
        event.content_type.as_deref(),
        &event.body,
        event.summary.received_at,
    )
    .map_err(|e| e.to_string())
}

fn outcome(mapping: &CompiledMapping, submission: &Result<Submission, String>) -> Outcome {
    match submission {
        Ok(s) => match build_plan(mapping, s) {
            Ok(plan) => Outcome::Plan(plan),
            Err(e) => Outcome::Error(e.to_string()),
        },
        Err(e) => Outcome::Error(e.clone()),
    }
}

fn compare_one(
    source: &SourceRuntime,
    limits: &BodyLimits,
    candidate: Option<&(MappingConfig, CompiledMapping)>,
    event: &Event,
) -> DeliveryComparison {
    let running = outcome(&source.mapping, &submission_of(source, limits, event));
    let candidate = candidate.map(|(config, compiled)| {
        outcome(compiled, &submission_under(source, config, limits, event))
    });
    let (differences, verdict) = match (&running, &candidate) {
        (_, None) => (Vec::new(), Verdict::NotCompared),
        (Outcome::Plan(a), Some(Outcome::Plan(b))) => {
            let d = diff(a, b);
            let verdict = if d.is_empty() {
                Verdict::Same
            } else {
                Verdict::Changed
            };
            (d, verdict)
        }
        (Outcome::Error(_), Some(Outcome::Plan(b))) => (diff(&Plan::default(), b), Verdict::Fixes),
        (Outcome::Plan(a), Some(Outcome::Error(_))) => (diff(a, &Plan::default()), Verdict::Breaks),
        (Outcome::Error(_), Some(Outcome::Error(_))) => (Vec::new(), Verdict::StillFails),
    };
    let fixes_dead_letter = event.summary.status == EventStatus::Dead
        && candidate.as_ref().is_some_and(|c| c.plan().is_some())
        && (running.plan().is_none() || event.plan.is_none());
    DeliveryComparison {
        fixes_dead_letter,
        event_id: event.summary.id,
        status: event.summary.status,
        received_at: event.summary.received_at,
        last_error: event.summary.last_error.clone(),
        running,
        candidate,
        differences,
        verdict,
    }
}

impl Comparison {
    /// Whether the candidate would load (no configuration problem).
    pub fn loads(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Outcome {
    /// The plan, when there is one.
    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Outcome::Plan(p) => Some(p),
            Outcome::Error(_) => None,
        }
    }
}
