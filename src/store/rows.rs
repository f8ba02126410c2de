//! Reading stored rows into the store's values, written once for both backends: each backend
//! selects the same column names, and [`Columns`] reads a column whatever the driver.

use sqlx::{Database, Encode, QueryBuilder, Row, Type};

use super::types::{from_millis, to_millis};
use super::{
    AttemptRecord, Claim, ClaimedEvent, Event, EventFilter, EventStatus, EventSummary, StepRecord,
    StepStatus, ThreadEvent,
};
use super::{Finish, StoreError};
use crate::domain::{ContactKey, EventId, LocationId};

/// The column reads the store needs, for any driver's row.
pub(super) trait Columns {
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError>;
}

macro_rules! impl_columns {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                self.try_get(col).map_err(StoreError::query("read_row"))
            }
            fn text(&self, col: &str) -> Result<String, StoreError> {
                self.try_get(col).map_err(StoreError::query("read_row"))
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                self.try_get(col).map_err(StoreError::query("read_row"))
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                self.try_get(col).map_err(StoreError::query("read_row"))
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError> {
                self.try_get(col).map_err(StoreError::query("read_row"))
            }
        }
    };
}
impl_columns!(sqlx::sqlite::SqliteRow);
impl_columns!(sqlx::postgres::PgRow);

pub(super) fn corrupt(op: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        op,
        detail: detail.to_string(),
    }
}

/// The columns [`summary_from_row`] reads.
pub(super) const SUMMARY_COLUMNS: [&str; 11] = [
    "id",
    "source",
    "dedupe_key",
    "status",
    "attempts",
    "received_at",
    "next_attempt_at",
    "updated_at",
    "last_error",
    "revision",
    "revision_of",
];

pub(super) fn summary_from_row(row: &impl Columns) -> Result<EventSummary, StoreError> {
    let status = row
        .text("status")?
        .parse::<EventStatus>()
        .map_err(|e| corrupt("read_event", e))?;
    Ok(EventSummary {
        id: EventId(row.int("id")?),
        source: row.text("source")?,
        dedupe_key: row.text("dedupe_key")?,
        status,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        received_at: from_millis(row.int("received_at")?),
        next_attempt_at: from_millis(row.int("next_attempt_at")?),
        updated_at: from_millis(row.int("updated_at")?),
        last_error: row.opt_text("last_error")?,
        revision: u32::try_from(row.int("revision")?).unwrap_or(u32::MAX),
        revision_of: row.opt_int("revision_of")?.map(EventId),
    })
}

/// An event with its delivery: the summary's columns and `content_type`, `headers` (JSON text),
/// `body`, `contact_key`, `location_id`, `submission` and `plan` (JSON text).
pub(super) fn event_from_row(row: &impl Columns) -> Result<Event, StoreError> {
    let headers = row.text("headers")?;
    Ok(Event {
        summary: summary_from_row(row)?,
        content_type: row.opt_text("content_type")?,
        headers: serde_json::from_str(&headers)
            .map_err(|e| corrupt("read_event", format!("headers: {e}")))?,
        body: row.bytes("body")?.into(),
        contact_key: row.opt_text("contact_key")?.map(ContactKey::new),
        location_id: row.opt_text("location_id")?.map(LocationId::new),
        submission: json_column(row, "submission")?,
        plan: json_column(row, "plan")?,
    })
}

/// The query behind `Store::thread`, the same for both backends but for the placeholder
/// (`?1`, `$1`: the event's id) and how the plan is selected (`plan` as JSON text): the earlier
/// revisions of the same submission, and every other prepared event (earlier or later) that
/// shares one of its references.
macro_rules! thread_query {
    ($id:literal, $plan:literal, $plan_join:literal) => {
        // Three index look-ups (the first revision by id, later revisions by `revision_of`,
        // shared references by `event_references`) joined by UNION: one OR over them would
        // scan every event.
        concat!(
            "WITH m AS (SELECT id, COALESCE(revision_of, id) AS first FROM events WHERE id = ", $id, "),
             tied AS (
                 SELECT e.id FROM events e, m WHERE e.id = m.first AND e.id < m.id
                 UNION SELECT e.id FROM events e, m WHERE e.revision_of = m.first AND e.id < m.id
                 UNION SELECT o.event_id FROM event_references mine
                       JOIN event_references o ON o.reference = mine.reference
                       WHERE mine.event_id = ", $id, " AND o.event_id <> ", $id, ")
             SELECT e.id, e.status, ", $plan, " AS plan,
                    CAST(CASE WHEN e.id = m.first OR e.revision_of = m.first THEN 1 ELSE 0 END
                         AS BIGINT) AS same_submission
             FROM m, tied JOIN events e ON e.id = tied.id ", $plan_join, "
             ORDER BY e.id"
        )
    };
}
pub(super) use thread_query;

/// One row of [`thread_query`], with its recorded steps.
pub(super) fn thread_event_from_row(
    row: &impl Columns,
    steps: Vec<StepRecord>,
) -> Result<ThreadEvent, StoreError> {
    Ok(ThreadEvent {
        id: EventId(row.int("id")?),
        status: row
            .text("status")?
            .parse::<EventStatus>()
            .map_err(|e| corrupt("read_thread", e))?,
        same_submission: row.int("same_submission")? == 1,
        plan: json_column(row, "plan")?,
        steps,
    })
}

/// A JSON column (stored as text, or selected `::text`), parsed.
pub(super) fn json_column<T: serde::de::DeserializeOwned>(
    row: &impl Columns,
    col: &str,
) -> Result<Option<T>, StoreError> {
    row.opt_text(col)?
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| corrupt("read_event", format!("{col}: {e}")))
}

/// A step: `step_index`, `kind`, `status`, `ghl_id`, `updated_at`.
pub(super) fn step_from_row(row: &impl Columns) -> Result<StepRecord, StoreError> {
    Ok(StepRecord {
        index: u32::try_from(row.int("step_index")?).map_err(|e| corrupt("read_step", e))?,
        kind: row
            .text("kind")?
            .parse()
            .map_err(|e| corrupt("read_step", e))?,
        status: match row.text("status")?.as_str() {
            "done" => StepStatus::Done,
            _ => StepStatus::Started,
        },
        ghl_id: row.opt_text("ghl_id")?,
        updated_at: from_millis(row.int("updated_at")?),
    })
}

/// Steps by event id from rows of `event_id` and a step's columns, in the rows' order.
pub(super) fn steps_by_event<R: Columns>(
    rows: &[R],
) -> Result<std::collections::HashMap<i64, Vec<StepRecord>>, StoreError> {
    let mut by_event: std::collections::HashMap<i64, Vec<StepRecord>> =
        std::collections::HashMap::new();
    for row in rows {
        by_event
            .entry(row.int("event_id")?)
            .or_default()
            .push(step_from_row(row)?);
    }
    Ok(by_event)
}

/// An attempt: `attempt`, `at`, `outcome`, `error`.
pub(super) fn attempt_from_row(row: &impl Columns) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        attempt: u32::try_from(row.int("attempt")?).unwrap_or(0),
        at: from_millis(row.int("at")?),
        outcome: row.text("outcome")?,
        error: row.opt_text("error")?,
    })
}

/// A claimed event and its fair key, from a claim's `RETURNING` row (`id`, `source`,
/// `attempts`, `received_at`, `location_id`, `plan` as JSON text, `fair_key`), with its steps
/// taken from `steps`.
pub(super) fn claimed_from_row(
    row: &impl Columns,
    claim: &Claim,
    steps: &mut std::collections::HashMap<i64, Vec<StepRecord>>,
) -> Result<(i64, ClaimedEvent), StoreError> {
    let id = row.int("id")?;
    let plan = row
        .opt_text("plan")?
        .ok_or_else(|| corrupt("claim", format!("event {id} is queued without a plan")))?;
    let event = ClaimedEvent {
        id: EventId(id),
        source: row.text("source")?,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(0),
        received_at: from_millis(row.int("received_at")?),
        location_id: LocationId::new(row.text("location_id")?),
        plan: serde_json::from_str(&plan).map_err(|e| corrupt("claim", e))?,
        steps: steps.remove(&id).unwrap_or_default(),
        // The end of the lease by the caller's clock (it renews by its own clock); PostgreSQL
        // stores one as long that ends by the database's.
        lease: claim.lease.clone(),
        lease_until: claim.lease_until,
    };
    Ok((row.int("fair_key")?, event))
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
