//! Reading stored rows into the store's values, written once for both backends: every backend
//! selects the same column names, read by the `#[derive(sqlx::FromRow)]` structs here.

use std::collections::HashMap;

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::types::{from_millis, to_millis};
use super::{
    AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventStatus, EventSummary, StepRecord,
    StepRequest, StepStatus, ThreadEvent,
};
use super::{Finish, StoreError};
use crate::domain::{ContactKey, EventId, LocationId};

pub(super) fn corrupt(op: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        op,
        detail: detail.to_string(),
    }
}

/// The columns of an event's summary (`SummaryRow`), for a select list.
pub(super) const SUMMARY_COLUMNS: &str = "id, source, dedupe_key, status, attempts, received_at, \
     next_attempt_at, updated_at, last_error, revision, revision_of";

/// An event without its delivery (the `events` columns of [`SUMMARY_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(super) struct SummaryRow {
    id: i64,
    source: String,
    dedupe_key: String,
    status: String,
    attempts: i64,
    received_at: i64,
    next_attempt_at: i64,
    updated_at: i64,
    last_error: Option<String>,
    revision: i64,
    revision_of: Option<i64>,
}

impl TryFrom<SummaryRow> for EventSummary {
    type Error = StoreError;

    fn try_from(row: SummaryRow) -> Result<Self, StoreError> {
        Ok(EventSummary {
            id: EventId(row.id),
            source: row.source,
            dedupe_key: row.dedupe_key,
            status: row
                .status
                .parse::<EventStatus>()
                .map_err(|e| corrupt("read_event", e))?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            received_at: from_millis(row.received_at),
            next_attempt_at: from_millis(row.next_attempt_at),
            updated_at: from_millis(row.updated_at),
            last_error: row.last_error,
            revision: u32::try_from(row.revision).unwrap_or(u32::MAX),
            revision_of: row.revision_of.map(EventId),
        })
    }
}

/// An event with its delivery and preparation (see `backend::EVENT_SELECT`): the summary's
/// columns, `content_type`, `headers` (JSON text), `body`, `contact_key`, `location_id`,
/// `submission` and `plan` (JSON text).
#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    content_type: Option<String>,
    headers: String,
    body: Vec<u8>,
    contact_key: Option<String>,
    location_id: Option<String>,
    submission: Option<String>,
    plan: Option<String>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            summary: row.summary.try_into()?,
            content_type: row.content_type,
            headers: serde_json::from_str(&row.headers)
                .map_err(|e| corrupt("read_event", format!("headers: {e}")))?,
            body: row.body.into(),
            contact_key: row.contact_key.map(ContactKey::new),
            location_id: row.location_id.map(LocationId::new),
            submission: json_column(row.submission, "submission")?,
            plan: json_column(row.plan, "plan")?,
        })
    }
}

/// One event tied to another (`backend::THREAD`).
#[derive(sqlx::FromRow)]
pub(super) struct ThreadRow {
    pub id: i64,
    status: String,
    plan: Option<String>,
    same_submission: i64,
}

impl ThreadRow {
    /// The thread event, with its recorded steps.
    pub(super) fn with_steps(self, steps: Vec<StepRecord>) -> Result<ThreadEvent, StoreError> {
        Ok(ThreadEvent {
            id: EventId(self.id),
            status: self
                .status
                .parse::<EventStatus>()
                .map_err(|e| corrupt("read_thread", e))?,
            same_submission: self.same_submission == 1,
            plan: json_column(self.plan, "plan")?,
            steps,
        })
    }
}

/// A JSON column (stored as text, or selected as text), parsed.
fn json_column<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    col: &str,
) -> Result<Option<T>, StoreError> {
    text.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| corrupt("read_event", format!("{col}: {e}")))
}

/// A recorded step of event `event_id`.
#[derive(sqlx::FromRow)]
pub(super) struct StepRow {
    event_id: i64,
    step_index: i64,
    kind: String,
    status: String,
    ghl_id: Option<String>,
    detail: Option<String>,
    updated_at: i64,
    in_doubt_until: Option<i64>,
    requests: Option<String>,
}

impl TryFrom<StepRow> for StepRecord {
    type Error = StoreError;

    fn try_from(row: StepRow) -> Result<Self, StoreError> {
        Ok(StepRecord {
            index: u32::try_from(row.step_index).map_err(|e| corrupt("read_step", e))?,
            kind: row.kind.parse().map_err(|e| corrupt("read_step", e))?,
            status: match row.status.as_str() {
                "done" => StepStatus::Done,
                _ => StepStatus::Started,
            },
            ghl_id: row.ghl_id,
            detail: row.detail,
            updated_at: from_millis(row.updated_at),
            in_doubt_until: row.in_doubt_until.map(from_millis),
            requests: json_column(row.requests, "requests")?.unwrap_or_default(),
        })
    }
}

/// A step's requests as stored: JSON text, or NULL for none (the stored list is then kept).
pub(super) fn requests_column(requests: &[StepRequest]) -> Result<Option<String>, StoreError> {
    if requests.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(requests)
        .map(Some)
        .map_err(|e| corrupt("record_step", format!("requests: {e}")))
}

/// Steps by event id, from rows in plan order.
pub(super) fn steps_by_event(
    rows: Vec<StepRow>,
) -> Result<HashMap<i64, Vec<StepRecord>>, StoreError> {
    let mut by_event: HashMap<i64, Vec<StepRecord>> = HashMap::new();
    for row in rows {
        by_event
            .entry(row.event_id)
            .or_default()
            .push(row.try_into()?);
    }
    Ok(by_event)
}

/// An attempt of an event.
#[derive(sqlx::FromRow)]
pub(super) struct AttemptRow {
    attempt: i64,
    at: i64,
    outcome: String,
    error: Option<String>,
}

impl From<AttemptRow> for AttemptRecord {
    fn from(row: AttemptRow) -> Self {
        AttemptRecord {
            attempt: u32::try_from(row.attempt).unwrap_or(0),
            at: from_millis(row.at),
            outcome: row.outcome,
            error: row.error,
        }
    }
}

/// A claimed event, from a claim's `RETURNING` row (see `backend::CLAIMED_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRow {
    pub id: i64,
    source: String,
    attempts: i64,
    received_at: i64,
    location_id: String,
    plan: Option<String>,
    fair_key: i64,
}

impl ClaimedRow {
    /// The claimed event and its fair key, with its steps taken from `steps`.
    pub(super) fn claimed(
        self,
        claim: &Claim,
        steps: &mut HashMap<i64, Vec<StepRecord>>,
    ) -> Result<(i64, ClaimedEvent), StoreError> {
        let id = self.id;
        let plan = self
            .plan
            .ok_or_else(|| corrupt("claim", format!("event {id} is queued without a plan")))?;
        let event = ClaimedEvent {
            id: EventId(id),
            source: self.source,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            received_at: from_millis(self.received_at),
            location_id: LocationId::new(self.location_id),
            plan: serde_json::from_str(&plan).map_err(|e| corrupt("claim", e))?,
            steps: steps.remove(&id).unwrap_or_default(),
            // The end of the lease by the caller's clock (it renews by its own clock); PostgreSQL
            // stores one as long that ends by the database's.
            lease: claim.lease.clone(),
            lease_until: claim.lease_until,
        };
        Ok((self.fair_key, event))
    }
}

/// Counts per status from `(status, count)` rows, every status present (0 when none).
pub(super) fn counts_by_status(
    rows: Vec<(String, i64)>,
) -> std::collections::BTreeMap<EventStatus, u64> {
    let mut counts: std::collections::BTreeMap<EventStatus, u64> =
        EventStatus::ALL.into_iter().map(|s| (s, 0)).collect();
    for (status, n) in rows {
        if let Ok(status) = status.parse() {
            counts.insert(status, u64::try_from(n).unwrap_or(0));
        }
    }
    counts
}

/// What an attempt's end writes: the event's new status, its next attempt time, its error,
/// whether the attempt counts, and the attempt's recorded outcome.
pub(super) struct FinishColumns<'a> {
    pub status: EventStatus,
    pub next_attempt_at: i64,
    pub error: Option<&'a str>,
    pub counts_attempt: bool,
    pub outcome: &'a str,
}

impl Finish {
    /// The columns this outcome writes, `now` being the time it is recorded.
    pub(super) fn columns(&self, now: i64) -> FinishColumns<'_> {
        match self {
            Finish::Done => FinishColumns {
                status: EventStatus::Done,
                next_attempt_at: now,
                error: None,
                counts_attempt: true,
                outcome: "done",
            },
            Finish::Retry {
                at,
                error,
                counts_attempt,
                outcome,
            } => FinishColumns {
                status: EventStatus::Retrying,
                next_attempt_at: to_millis(*at),
                error: Some(error),
                counts_attempt: *counts_attempt,
                outcome,
            },
            Finish::Dead { error } => FinishColumns {
                status: EventStatus::Dead,
                next_attempt_at: now,
                error: Some(error),
                counts_attempt: true,
                outcome: "dead",
            },
        }
    }
}

/// Appends ` AND …` conditions for a filter (the page size is the caller's), on columns of the
/// events table (`prefix` is its alias with a dot, or empty).
pub(super) fn push_filter<'a, DB: Database>(
    qb: &mut QueryBuilder<'a, DB>,
    prefix: &str,
    filter: &EventFilter,
) where
    String: 'a + Encode<'a, DB> + Type<DB>,
    i64: 'a + Encode<'a, DB> + Type<DB>,
{
    if let Some(status) = filter.status {
        qb.push(format_args!(" AND {prefix}status = "))
            .push_bind(status.as_str().to_owned());
    }
    if let Some(source) = &filter.source {
        qb.push(format_args!(" AND {prefix}source = "))
            .push_bind(source.clone());
    }
    if let Some(since) = filter.since {
        qb.push(format_args!(" AND {prefix}received_at >= "))
            .push_bind(to_millis(since));
    }
    if let Some(until) = filter.until {
        qb.push(format_args!(" AND {prefix}received_at < "))
            .push_bind(to_millis(until));
    }
    if let Some(before) = filter.before_id {
        qb.push(format_args!(" AND {prefix}id < "))
            .push_bind(before);
    }
    if let Some(first) = filter.submission {
        qb.push(format_args!(" AND ({prefix}id = "))
            .push_bind(first)
            .push(format_args!(" OR {prefix}revision_of = "))
            .push_bind(first)
            .push(")");
    }
}
