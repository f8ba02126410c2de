//! Values the store reads and writes: events, their status, filters and step records.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::ids::string_id;
use crate::domain::{ContactKey, EventId, LocationId, Plan, SourceName, StepKind};

string_id!(
    /// The fencing token of one claim: unique per claim (process, random id, sequence number),
    /// so a worker whose lease was taken over — by another replica, or by this process after a
    /// long pause — can record nothing more for the event.
    LeaseToken
);

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Stored, not yet attempted.
    Pending,
    /// Claimed by a worker under a lease.
    Processing,
    /// Every plan step succeeded.
    Done,
    /// Failed with a retryable error; waits for `next_attempt_at`.
    Retrying,
    /// Failed permanently or ran out of attempts; kept for inspection and replay.
    Dead,
}

impl EventStatus {
    /// All statuses, for gauges and filters.
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Pending,
        EventStatus::Processing,
        EventStatus::Done,
        EventStatus::Retrying,
        EventStatus::Dead,
    ];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Processing => "processing",
            EventStatus::Done => "done",
            EventStatus::Retrying => "retrying",
            EventStatus::Dead => "dead",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`EventStatus::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}`; use pending, processing, done, retrying or dead")]
pub struct UnknownStatus(pub String);

impl FromStr for EventStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A delivery as the ingress hands it to the store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: SourceName,
    /// The sender's own delivery id where it has one, else a hash of the body.
    pub dedupe_key: String,
    /// With a sender's id as `dedupe_key`: a hash of the delivery's content. A delivery that
    /// repeats a stored id with another hash is an edit, stored as a new revision; `None`
    /// when the key is itself the body's hash.
    pub content_hash: Option<String>,
    pub content_type: Option<String>,
    /// A safe subset of request headers (never secrets).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub received_at: OffsetDateTime,
}

/// What `insert_event` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// A new event was stored.
    Stored(EventId),
    /// The same delivery was stored before; nothing new was written.
    Duplicate(EventId),
    /// An edit: the delivery repeats the tool id of the submission first stored as `of`
    /// with other content, and was stored as a new revision of it.
    Revision { id: EventId, of: EventId },
}

impl Ingested {
    /// The id of the stored event, new or old.
    pub fn id(self) -> EventId {
        match self {
            Ingested::Stored(id) | Ingested::Duplicate(id) | Ingested::Revision { id, .. } => id,
        }
    }
}

/// An event without its body, for lists.
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub id: EventId,
    pub source: String,
    pub dedupe_key: String,
    pub status: EventStatus,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub last_error: Option<String>,
    /// 1 for a submission as first delivered; 2, 3, … for its edits.
    pub revision: u32,
    /// For an edit: the event of the submission's first revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_of: Option<EventId>,
}

/// A stored event with its raw delivery and processing state.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub body: Bytes,
    pub contact_key: Option<ContactKey>,
    pub location_id: Option<LocationId>,
    pub submission: Option<serde_json::Value>,
    pub plan: Option<Plan>,
}

/// Which events to list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub source: Option<String>,
    /// Received at or after (unix seconds or RFC 3339 in the admin API).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Received before.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Only events with an id below this (keyset pagination, newest first).
    pub before_id: Option<i64>,
    /// Only the revisions of the submission first stored as this event (it and its edits).
    pub submission: Option<i64>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
}

impl EventFilter {
    /// The page size to use.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }
}

/// Unix milliseconds of a time (the stored representation).
pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The dedupe key a revision is stored under: the tool's id and the content's hash, so the
/// same content sent again finds it.
pub(super) fn revision_key(tool_key: &str, content_hash: &str) -> String {
    format!("{tool_key}#{content_hash}")
}

/// A plan's reference as stored: qualified by the GHL location, so two locations' leads with
/// the same deal id are never tied together.
pub(super) fn stored_reference(location_id: &str, reference: &str) -> String {
    format!("{location_id}/{reference}")
}

/// The time of stored unix milliseconds.
pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whether a plan step finished, or was sent without a known outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// The request was (or may have been) sent; its outcome is unknown. Before sending again,
    /// the dispatcher looks for the marker in GHL.
    Started,
    /// GHL answered with success; `ghl_id` holds the created or updated record.
    Done,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Done => "done",
        }
    }
}

/// The recorded result of one plan step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub index: u32,
    pub kind: StepKind,
    pub status: StepStatus,
    /// Contact, task or note id returned by GHL.
    pub ghl_id: Option<String>,
    /// What the step did beyond its id, for operators: an uploaded file's name, size and
    /// SHA-256, or why a file was not uploaded (the link stays in the note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// For a `started` step whose request got no answer (or is in flight): until when GHL may
    /// still carry it out. Nothing is looked for (or sent again) before then. `None` once GHL
    /// answered.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub in_doubt_until: Option<OffsetDateTime>,
    /// The GHL requests the step made in its latest attempt, oldest first (a look-up, then
    /// the create). Kept from the previous record when a record carries none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<StepRequest>,
}

/// One GHL request a step made: its method and path template (no query, no body), GHL's
/// answer status or why there was none, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRequest {
    /// `POST /contacts/upsert`.
    pub request: String,
    /// The answer's HTTP status; `None` when there was no answer (`failure` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `timeout` or `connection` when GHL did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Latency in milliseconds.
    pub ms: u64,
}

/// An event tied to one being dispatched: an earlier revision of the same submission, or a
/// delivery that shares one of its references (its lead, another follow-up).
#[derive(Debug, Clone)]
pub struct ThreadEvent {
    pub id: EventId,
    pub status: EventStatus,
    /// An earlier revision of the same submission (not only a shared reference).
    pub same_submission: bool,
    /// Its plan, once prepared.
    pub plan: Option<Plan>,
    /// Its recorded steps, in plan order.
    pub steps: Vec<StepRecord>,
}

/// One processing attempt that did not finish the event, or the final outcome.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `retry`, `rate_limited`, `auth_blocked`, `waiting_for_lead`, `answer_in_doubt` (a step
    /// sent without an answer waits until GHL can no longer carry it out), `dead` or `done`.
    pub outcome: String,
    pub error: Option<String>,
}

/// The attempt outcome recorded for an event done with nothing to do in GHL (its error column
/// holds why: [`Preparation::NothingToDo`]'s reason).
pub const NOTHING_TO_DO: &str = "nothing_to_do";

/// What the preparer made of a pending event: its normalized submission and plan.
#[derive(Debug, Clone)]
pub enum Preparation {
    /// Ready to dispatch.
    Ready {
        submission: serde_json::Value,
        plan: Plan,
        contact_key: ContactKey,
        location_id: LocationId,
    },
    /// Nothing to do in GHL (e.g. a chat event that creates no contact). Its references are
    /// kept (for the location, when the source has one), so a later follow-up sees this lead
    /// came and made no contact. The event is done, with `reason` recorded as its one attempt
    /// (outcome `nothing_to_do`) for people to see why.
    NothingToDo {
        submission: serde_json::Value,
        references: Vec<String>,
        location_id: Option<LocationId>,
        reason: String,
    },
    /// Cannot be normalized or mapped: dead-lettered with this reason.
    Failed {
        submission: Option<serde_json::Value>,
        error: String,
    },
}

/// A claim request: take up to `limit` due, prepared events under a lease.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claim's fencing token, written as the lease holder of every event it takes.
    pub lease: LeaseToken,
    pub now: OffsetDateTime,
    pub lease_until: OffsetDateTime,
    pub limit: u32,
    /// At most this many of the claimed events belong to one location.
    pub per_location_limit: u32,
    /// Locations not to claim for (paused, blocked, or at their concurrency cap).
    pub exclude_locations: Vec<LocationId>,
}

/// An event claimed for dispatch, with its plan and the steps already done.
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub id: EventId,
    pub source: String,
    pub attempts: u32,
    pub received_at: OffsetDateTime,
    pub location_id: LocationId,
    pub plan: Plan,
    pub steps: Vec<StepRecord>,
    /// The claim's fencing token; every later write for this event presents it.
    pub lease: LeaseToken,
    /// Until when the claim holds (the dispatcher renews it while working).
    pub lease_until: OffsetDateTime,
}

/// How a dispatch attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Every step succeeded.
    Done,
    /// Try again at `at`. `counts_attempt` is false for waits that are not the event's fault
    /// (rate limits, a location blocked on its token).
    Retry {
        at: OffsetDateTime,
        error: String,
        counts_attempt: bool,
        outcome: &'static str,
    },
    /// Give up: dead-lettered with the reason.
    Dead { error: String },
}

/// Queue figures for `/admin/stats` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    pub by_status: std::collections::BTreeMap<EventStatus, u64>,
    /// Receive time of the oldest event not yet done or dead.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_unfinished: Option<OffsetDateTime>,
    /// Since when the event that has waited longest for the dispatcher has been due: a pending
    /// or retrying event since its `next_attempt_at`, a claimed one whose lease ran out since
    /// the lease's end. Not counted: events not due yet (a retry's backoff, a follow-up's next
    /// look for its lead), events queued behind an open earlier event of their contact (that
    /// one stands for them), and claimed events under a live lease (being dispatched).
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_due: Option<OffsetDateTime>,
    /// Open follow-ups and edits whose last attempt found that the delivery they refer to (their
    /// lead, an earlier revision) has not reached GHL yet; they are looked at again until
    /// `dispatch.follow_up_wait`.
    pub waiting_for_lead: u64,
    /// Receive time of the oldest of them.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_waiting_for_lead: Option<OffsetDateTime>,
    /// Pending or retrying events not due yet, other than those waiting for their lead: a
    /// retry's backoff, a rate-budget pause.
    pub retrying_backoff: u64,
}

/// One location's OAuth token pair as the store keeps it. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct StoredTokens {
    /// Bearer token for API calls.
    pub access_token: secrecy::SecretString,
    /// Single-use refresh token (rotated on every refresh).
    pub refresh_token: secrecy::SecretString,
    /// When the access token stops working.
    pub expires_at: OffsetDateTime,
}
