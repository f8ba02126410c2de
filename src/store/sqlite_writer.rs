//! The single SQLite writer: every write of the process runs as a job on one connection, many
//! jobs to a transaction, with one commit per batch — fsync'd when any job in it must survive
//! power loss.
//!
//! SQLite takes one writer at a time. Several pooled connections writing at once queue inside
//! SQLite, whose busy handler sleeps for milliseconds per retry, and each commit invalidates
//! the other connections' page caches. One writer task draining a queue avoids both, and
//! batching lets a single fsync cover every acknowledged delivery and every `started` step
//! record that arrived meanwhile. The task has a thread of its own ([`Writer::start`]), and
//! a batch's new deliveries ([`sqlite_ingest`]) and step records ([`sqlite_steps`]) each go
//! to SQLite as one statement.
//!
//! A caller hears `Ok` only when its batch's `COMMIT` succeeded. When a batch cannot commit
//! (a full disk, an I/O error), every caller in it gets the error, the connection is closed
//! (SQLite rolls back whatever it still held) and a fresh one is opened for the next batch:
//! a connection is never reused in an unknown transaction state. Until a write succeeds again
//! the writer reports itself unwritable (for `/readyz`) and probes with a small write every
//! [`PROBE_INTERVAL`] while idle, so it recovers by itself once space is back.
//!
//! The write-ahead log stays bounded: SQLite's auto-checkpoint (`sqlite_file::bound_wal`)
//! during a burst, and a `PASSIVE` checkpoint once the writer has been idle for
//! [`IDLE_CHECKPOINT`]. `PASSIVE` because it never waits for the pool's readers nor blocks
//! them (a reader's snapshot only makes it stop short; the next one finishes), and once it
//! has copied the whole log the next write starts the log over, cut back to
//! `journal_size_limit`. On a full disk the writer gives the reserve file back, runs a
//! `TRUNCATE` checkpoint (which waits for readers, but gives the log's bytes back to the file
//! system), and refuses deliveries — while dispatch keeps writing — until a probe succeeds and
//! the reserve is made again.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::sqlite_file::{checkpoint, is_disk_full, Checkpoint, Reserve};
use super::sqlite_ingest;
use super::sqlite_steps::{self, StepWrite};
use super::{Ingested, LeaseToken, NewEvent, StepRecord, StoreError};
use crate::domain::EventId;

/// How often an unwritable writer probes whether it can write again.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long the writer waits with no write before it checkpoints the log.
pub(super) const IDLE_CHECKPOINT: Duration = Duration::from_millis(250);

/// What a probe writes (and frees again): room for a large delivery.
const PROBE_BYTES: i64 = 64 * 1024;

/// A future borrowing the writer's connection.
pub(super) type WriteFuture<'c, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// Whether a write must be on disk (fsync'd) before its caller hears it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// Survives power loss: acknowledged deliveries, `started` steps, rotated OAuth tokens.
    Fsync,
    /// Survives a process crash (WAL, `synchronous = NORMAL`); redoing it after a power loss
    /// is harmless (dispatch bookkeeping that is idempotent or protected by markers).
    Crash,
}

/// One write, type-erased for the queue.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// The new delivery it stores, if it stores one (refused while the reserve is given back;
    /// stored with the batch's other deliveries when it can be, see [`sqlite_ingest`]).
    fn delivery(&self) -> Option<&NewEvent> {
        None
    }
    /// Takes the outcome the batch's group insert gave its delivery: [`Job::run`] then has
    /// nothing left to do.
    fn settle(&mut self, _stored: Ingested) {}
    /// The step record it writes, if it writes one (written with the batch's other records
    /// when it can be, see [`sqlite_steps`]).
    fn step(&self) -> Option<StepWrite<'_>> {
        None
    }
    /// Takes whether the batch's group upsert wrote its record: [`Job::run`] then has nothing
    /// left to do.
    fn settle_step(&mut self, _written: bool) {}
    /// Runs the write inside the batch transaction, keeping its result for [`Job::answer`].
    /// Returns the error when the write failed in a way that may have ended the transaction
    /// (SQLite rolls back by itself on a full disk or an I/O error), so the batch must stop.
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Option<BatchFailure>> + Send + 'c>>;
    /// Tells the caller the write's result, or why its batch did not commit.
    fn answer(self: Box<Self>, commit: Result<(), &StoreError>);
    /// Tells the caller its write was not tried.
    fn refuse(self: Box<Self>, error: StoreError);
}

/// A job's result and the caller waiting for it.
struct Reply<T> {
    result: Option<Result<T, StoreError>>,
    to: oneshot::Sender<Result<T, StoreError>>,
}

impl<T> Reply<T> {
    fn new(to: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Self { result: None, to }
    }

    /// Keeps the write's result; returns why the batch must stop when it failed in a way that
    /// may have ended the transaction.
    fn keep(&mut self, result: Result<T, StoreError>) -> Option<BatchFailure> {
        let stop = match &result {
            Err(e) if e.ends_transaction() => Some(BatchFailure {
                disk_full: is_disk_full(e),
                error: StoreError::Commit(format!(
                    "a write in the batch failed in a way that ends the transaction: {e}"
                )),
            }),
            _ => None,
        };
        self.result = Some(result);
        stop
    }

    /// Tells the caller its own result once the batch committed, else why not. The caller may
    /// have gone (a client hung up); what committed stays committed.
    fn answer(self, commit: Result<(), &StoreError>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::WriterGone),
            // Its own error says more than the batch's (it is usually the cause).
            (Err(_), Some(Err(own))) => Err(own),
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
        };
        let _ = self.to.send(result);
    }

    fn refuse(self, error: StoreError) {
        let _ = self.to.send(Err(error));
    }
}

struct Write<T, F> {
    work: Option<F>,
    reply: Reply<T>,
    durability: Durability,
}

impl<T, F> Job for Write<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Option<BatchFailure>> + Send + 'c>> {
        Box::pin(async move {
            let work = self.work.take()?;
            let result = work(conn).await;
            self.reply.keep(result)
        })
    }

    fn answer(self: Box<Self>, commit: Result<(), &StoreError>) {
        self.reply.answer(commit);
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        self.reply.refuse(error);
    }
}

/// A new delivery, always fsync'd.
struct DeliveryWrite {
    event: NewEvent,
    reply: Reply<Ingested>,
}

impl Job for DeliveryWrite {
    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    fn delivery(&self) -> Option<&NewEvent> {
        Some(&self.event)
    }

    fn settle(&mut self, stored: Ingested) {
        self.reply.result = Some(Ok(stored));
    }

    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Option<BatchFailure>> + Send + 'c>> {
        Box::pin(async move {
            if self.reply.result.is_some() {
                return None;
            }
            let result = sqlite_ingest::insert_one(conn, &self.event).await;
            self.reply.keep(result)
        })
    }

    fn answer(self: Box<Self>, commit: Result<(), &StoreError>) {
        self.reply.answer(commit);
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        self.reply.refuse(error);
    }
}

/// A step record of dispatch: fsync'd when it is a `started` one.
struct StepJob {
    id: EventId,
    lease: LeaseToken,
    step: StepRecord,
    durability: Durability,
    reply: Reply<bool>,
}

impl StepJob {
    fn write(&self) -> StepWrite<'_> {
        StepWrite {
            id: self.id,
            lease: &self.lease,
            step: &self.step,
        }
    }
}

impl Job for StepJob {
    fn durability(&self) -> Durability {
        self.durability
    }

    fn step(&self) -> Option<StepWrite<'_>> {
        Some(self.write())
    }

    fn settle_step(&mut self, written: bool) {
        self.reply.result = Some(Ok(written));
    }

    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Option<BatchFailure>> + Send + 'c>> {
        Box::pin(async move {
            if self.reply.result.is_some() {
                return None;
            }
            let result = sqlite_steps::record_one(conn, &self.write()).await;
            self.reply.keep(result)
        })
    }

    fn answer(self: Box<Self>, commit: Result<(), &StoreError>) {
        self.reply.answer(commit);
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        self.reply.refuse(error);
    }
}

/// A kind of job that a batch writes as one group: which jobs are of it, the one write for
/// them all, and what each job is told of its part.
trait Group {
    /// What a job of the group brings to the write.
    type Item<'a>;
    /// A job's outcome; a job the group leaves out runs one by one after it.
    type Outcome;
    /// What the group is made of, for the log.
    const WHAT: &'static str;
    fn pick(job: &dyn Job) -> Option<Self::Item<'_>>;
    async fn write(
        conn: &mut SqliteConnection,
        items: &[Self::Item<'_>],
    ) -> Result<Vec<Option<Self::Outcome>>, StoreError>;
    fn settle(job: &mut dyn Job, outcome: Self::Outcome);
}

/// New deliveries that are plainly new ([`sqlite_ingest::insert_group`]).
struct NewDeliveries;

impl Group for NewDeliveries {
    type Item<'a> = &'a NewEvent;
    type Outcome = Ingested;
    const WHAT: &'static str = "deliveries";

    fn pick(job: &dyn Job) -> Option<&NewEvent> {
        job.delivery()
    }

    async fn write(
        conn: &mut SqliteConnection,
        events: &[Self::Item<'_>],
    ) -> Result<Vec<Option<Ingested>>, StoreError> {
        sqlite_ingest::insert_group(conn, events).await
    }

    fn settle(job: &mut dyn Job, stored: Ingested) {
        job.settle(stored);
    }
}

/// Step records under their leases ([`sqlite_steps::record_group`]); a second record of one
/// step runs one by one after the group.
struct StepRecords;

impl Group for StepRecords {
    type Item<'a> = StepWrite<'a>;
    type Outcome = bool;
    const WHAT: &'static str = "step records";

    fn pick(job: &dyn Job) -> Option<StepWrite<'_>> {
        job.step()
    }

    async fn write(
        conn: &mut SqliteConnection,
        records: &[Self::Item<'_>],
    ) -> Result<Vec<Option<bool>>, StoreError> {
        sqlite_steps::record_group(conn, records).await
    }

    fn settle(job: &mut dyn Job, written: bool) {
        job.settle_step(written);
    }
}

/// Writes the batch's jobs of group `G` together, inside a savepoint of the batch's
/// transaction, and settles them; the rest of the batch runs one by one after it. A group
/// that fails without ending the transaction is rolled back to its savepoint and every job in
/// it runs one by one, so one bad job cannot fail its neighbours.
async fn write_together<G: Group>(
    conn: &mut SqliteConnection,
    batch: &mut [Box<dyn Job>],
) -> Result<(), BatchFailure> {
    let (indexes, items): (Vec<usize>, Vec<G::Item<'_>>) = batch
        .iter()
        .enumerate()
        .filter_map(|(i, job)| G::pick(job.as_ref()).map(|item| (i, item)))
        .unzip();
    if items.len() < 2 {
        return Ok(());
    }
    let mut group = conn.begin().await.map_err(StoreError::query("savepoint"))?;
    let written = G::write(&mut group, &items).await;
    let Some(outcomes) = close_group(group, written, G::WHAT, items.len()).await? else {
        return Ok(());
    };
    drop(items);
    for (i, outcome) in indexes.into_iter().zip(outcomes) {
        if let Some(outcome) = outcome {
            G::settle(batch[i].as_mut(), outcome);
        }
    }
    Ok(())
}

/// Ends the savepoint of a group of `count` `what`: released when the group succeeded (its
/// outcomes returned), rolled back when it failed in a way that leaves the transaction
/// usable (`None`: its jobs run one by one), and the batch's failure when it ended the
/// transaction.
async fn close_group<T>(
    group: sqlx::Transaction<'_, sqlx::Sqlite>,
    result: Result<T, StoreError>,
    what: &'static str,
    count: usize,
) -> Result<Option<T>, BatchFailure> {
    match result {
        Ok(outcomes) => {
            group
                .commit()
                .await
                .map_err(StoreError::query("release_savepoint"))?;
            Ok(Some(outcomes))
        }
        Err(e) if e.ends_transaction() => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, count, "writing a batch's {what} together failed; writing them one by one");
            group
                .rollback()
                .await
                .map_err(StoreError::query("rollback_savepoint"))?;
            Ok(None)
        }
    }
}

/// Why a batch did not commit.
#[derive(Debug)]
struct BatchFailure {
    error: StoreError,
    /// The disk (or the database's page limit) was full: the writer recovers room.
    disk_full: bool,
}

impl From<StoreError> for BatchFailure {
    fn from(error: StoreError) -> Self {
        Self {
            disk_full: is_disk_full(&error),
            error,
        }
    }
}

/// Whether the writer's last write committed, shared with readers of its health.
#[derive(Debug, Default)]
struct Health {
    /// Why the last write failed and since when, while no later write has succeeded.
    failing: Mutex<Option<(String, OffsetDateTime)>>,
}

impl Health {
    fn record(&self, outcome: Result<(), &StoreError>) {
        if let Err(e) = outcome {
            metrics::counter!(crate::metrics::STORE_COMMIT_FAILURES).increment(1);
            self.set_failing(e.to_string());
            return;
        }
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, since)) = failing.take() {
            let seconds = (OffsetDateTime::now_utc() - since).whole_seconds();
            tracing::warn!(after_seconds = seconds, "store writable again");
        }
        metrics::gauge!(crate::metrics::STORE_WRITABLE).set(1.0);
    }

    /// Marks the store unwritable for `reason` (keeping the time it started failing).
    fn set_failing(&self, reason: String) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::gauge!(crate::metrics::STORE_WRITABLE).set(0.0);
        let since = failing
            .as_ref()
            .map_or_else(OffsetDateTime::now_utc, |f| f.1);
        *failing = Some((reason, since));
    }

    fn is_failing(&self) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn failure(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(reason, _)| reason.clone())
    }
}

/// The sending side of the writer's queue.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    health: Arc<Health>,
}

impl Writer {
    /// Starts the writer task on `conn`, opened from `options` (with `synchronous = FULL`),
    /// which also open its replacement after a failed batch; at most `max_batch` jobs share a
    /// transaction. With a `reserve` not held (no room to make it), the writer starts
    /// unwritable and refuses deliveries until it can make it.
    ///
    /// The task runs on a thread of its own (a single-threaded runtime), not among the
    /// server's tasks: each statement of a batch is a round trip to SQLite's connection
    /// thread, and on the shared runtime every one of those answers waited in line behind the
    /// HTTP connections and dispatch workers ready to run — under load the batches, and so
    /// every write, took several times longer than SQLite did. An error only when the thread
    /// cannot be started.
    pub(super) fn start(
        options: SqliteConnectOptions,
        conn: SqliteConnection,
        max_batch: usize,
        reserve: Option<Reserve>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(max_batch.max(1) * 4);
        let health = Arc::new(Health::default());
        metrics::gauge!(crate::metrics::STORE_WRITABLE).set(1.0);
        if let Some(reserve) = reserve.as_ref().filter(|r| !r.is_held()) {
            health.set_failing(format!(
                "no room for the reserve file {} beside the database",
                reserve.path().display()
            ));
        }
        let task = WriterTask {
            options,
            conn: Some(conn),
            fsyncing: true,
            health: health.clone(),
            reserve,
            after_full: false,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || runtime.block_on(task.run(jobs, max_batch.max(1))))?;
        Ok(Self { queue, health })
    }

    /// Runs `work` on the writer's connection and returns its result once its batch has
    /// committed. A job that writes more than one statement must make them atomic itself
    /// (`conn.begin()` opens a savepoint inside the batch), so that its failure leaves the
    /// other jobs' writes intact.
    pub(super) async fn write<T, F>(&self, durability: Durability, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Write {
            work: Some(work),
            reply: Reply::new(reply),
            durability,
        };
        self.send(Box::new(job), answer).await
    }

    /// Stores a new delivery (see [`super::Ingest::insert_event`]): fsync'd, stored together
    /// with the other deliveries of its batch where it can be, and refused while the reserve
    /// file is given back, so that the room it left goes to dispatching what was acknowledged.
    pub(super) async fn insert_delivery(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = DeliveryWrite {
            event,
            reply: Reply::new(reply),
        };
        self.send(Box::new(job), answer).await
    }

    /// Writes a dispatch step record if `lease` still holds the event (see
    /// [`super::Queue::record_step`]), with the batch's other records where it can be.
    pub(super) async fn record_step(
        &self,
        id: EventId,
        lease: LeaseToken,
        step: StepRecord,
        durability: Durability,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = StepJob {
            id,
            lease,
            step,
            durability,
            reply: Reply::new(reply),
        };
        self.send(Box::new(job), answer).await
    }

    async fn send<T>(
        &self,
        job: Box<dyn Job>,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Whether writes commit: an error while the writer has stopped, or while its last write
    /// failed (or its reserve is given back) and no probe has succeeded since.
    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        if self.queue.is_closed() {
            return Err(StoreError::WriterGone);
        }
        match self.health.failure() {
            Some(reason) => Err(StoreError::NotWritable(reason)),
            None => Ok(()),
        }
    }
}

/// The writer task's own state.
struct WriterTask {
    options: SqliteConnectOptions,
    /// `None` after a failed batch until a new connection opens.
    conn: Option<SqliteConnection>,
    /// Whether the connection runs with `synchronous = FULL` (what `options` open it with).
    fsyncing: bool,
    health: Arc<Health>,
    /// The reserve file, when the store keeps one.
    reserve: Option<Reserve>,
    /// The last failure was a full disk: probes checkpoint (`TRUNCATE`) first.
    after_full: bool,
}

impl WriterTask {
    /// Whether deliveries are refused untried: the reserve is given back (or could not be
    /// made), and what room there is belongs to dispatch.
    fn reserve_out(&self) -> bool {
        self.reserve.as_ref().is_some_and(|r| !r.is_held())
    }

    /// Drains the queue batch by batch until every sender is gone. While writes fail it probes
    /// every [`PROBE_INTERVAL`], idle or not, and only a probe or a batch holding a delivery
    /// counts as writable again: a small bookkeeping write that squeezes in does not say a
    /// delivery would. After [`IDLE_CHECKPOINT`] with no write it checkpoints the log.
    async fn run(mut self, mut jobs: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
        let mut next_probe = Instant::now();
        // When to checkpoint, once something committed since the last checkpoint.
        let mut checkpoint_at: Option<Instant> = None;
        loop {
            let failing = self.health.is_failing();
            if failing && Instant::now() >= next_probe {
                let outcome = self.probe().await;
                self.health.record(outcome.as_ref().map(|_| ()));
                next_probe = Instant::now() + PROBE_INTERVAL;
                continue;
            }
            if checkpoint_at.is_some_and(|at| Instant::now() >= at) {
                checkpoint_at = None;
                self.checkpoint(Checkpoint::Passive).await;
                continue;
            }
            let wake = [failing.then_some(next_probe), checkpoint_at]
                .into_iter()
                .flatten()
                .min();
            let received = match wake {
                Some(at) => {
                    match tokio::time::timeout_at(at, jobs.recv_many(&mut batch, max_batch)).await {
                        Ok(n) => n,
                        Err(_due) => continue,
                    }
                }
                None => jobs.recv_many(&mut batch, max_batch).await,
            };
            if received == 0 {
                break;
            }
            if self.reserve_out() {
                let reason = self.health.failure().unwrap_or_else(|| {
                    "the disk is full: deliveries wait until the reserve file can be made again"
                        .to_owned()
                });
                let (refused, kept): (Vec<_>, Vec<_>) =
                    batch.drain(..).partition(|j| j.delivery().is_some());
                batch.extend(kept);
                for job in refused {
                    job.refuse(StoreError::NotWritable(reason.clone()));
                }
                if batch.is_empty() {
                    continue;
                }
            }
            if self.after_full {
                // One write per transaction while room is short: a write that does not fit
                // (a large preparation) cannot take the claims and finishes down with it.
                for job in std::mem::take(&mut batch) {
                    let mut one = vec![job];
                    self.commit_and_answer(&mut one, &mut next_probe, &mut checkpoint_at)
                        .await;
                }
            } else {
                self.commit_and_answer(&mut batch, &mut next_probe, &mut checkpoint_at)
                    .await;
            }
        }
    }

    /// Commits `batch` as one transaction, answers (and drains) its jobs, records the outcome,
    /// and recovers room after a full disk. `next_probe` moves when writes start failing;
    /// `checkpoint_at` is set after a commit.
    async fn commit_and_answer(
        &mut self,
        batch: &mut Vec<Box<dyn Job>>,
        next_probe: &mut Instant,
        checkpoint_at: &mut Option<Instant>,
    ) {
        let failing = self.health.is_failing();
        metrics::histogram!(crate::metrics::STORE_COMMIT_BATCH_SIZE).record(batch.len() as f64);
        let has_delivery = batch.iter().any(|j| j.delivery().is_some());
        let outcome = self.commit_batch(batch).await;
        let commit = outcome.as_ref().map(|_| ()).map_err(|f| &f.error);
        match &outcome {
            Err(failure) => {
                tracing::error!(error = %failure.error, batch = batch.len(), "store batch did not commit; every write in it was refused");
                if !failing {
                    *next_probe = Instant::now() + PROBE_INTERVAL;
                }
                self.health.record(Err(&failure.error));
            }
            Ok(()) => {
                *checkpoint_at = Some(Instant::now() + IDLE_CHECKPOINT);
                if has_delivery || !failing {
                    self.health.record(Ok(()));
                }
            }
        }
        for job in batch.drain(..) {
            job.answer(commit);
        }
        if outcome.is_err_and(|f| f.disk_full) {
            self.recover_room().await;
        }
    }

    /// After a full disk: gives the reserve back and moves the log into the database,
    /// cutting its file to nothing, so that dispatch has room again at once. Once per full
    /// disk: while it stays full the probe checkpoints again every [`PROBE_INTERVAL`] (a
    /// `TRUNCATE` waits for readers; one per failed write would hold the writer up).
    async fn recover_room(&mut self) {
        if std::mem::replace(&mut self.after_full, true) {
            return;
        }
        if let Some(reserve) = self.reserve.as_mut().filter(|r| r.is_held()) {
            match reserve.give_back().await {
                Ok(bytes) => tracing::warn!(
                    bytes,
                    file = %reserve.path().display(),
                    "disk full: gave the reserve file back; deliveries are refused until it can be made again"
                ),
                Err(e) => {
                    tracing::error!(error = %e, file = %reserve.path().display(), "disk full: cannot delete the reserve file")
                }
            }
            self.health.set_failing(format!(
                "the disk is full: the reserve file {} is given back, deliveries wait until it can be made again",
                reserve.path().display()
            ));
        }
        self.checkpoint(Checkpoint::Truncate).await;
    }

    /// Runs a checkpoint on the writer's connection and logs what it did.
    async fn checkpoint(&mut self, mode: Checkpoint) {
        let done = match self.connection().await {
            Ok(conn) => checkpoint(conn, mode).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(done) => tracing::debug!(
                ?mode,
                busy = done.busy,
                frames = done.frames,
                copied = done.copied,
                "checkpointed the write-ahead log"
            ),
            Err(e) => {
                tracing::warn!(?mode, error = %e, "could not checkpoint the write-ahead log");
                if e.ends_transaction() {
                    self.discard_connection().await;
                }
            }
        }
    }

    /// The writer's connection, opening a new one if the last batch failed.
    async fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        if self.conn.is_none() {
            let conn = SqliteConnection::connect_with(&self.options)
                .await
                .map_err(StoreError::query("reopen_writer"))?;
            self.fsyncing = true;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or(StoreError::WriterGone)
    }

    /// Forgets the connection after a failure: closing it rolls back anything SQLite still
    /// holds open, and the next batch starts on a fresh one.
    async fn discard_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the failed writer connection");
            }
        }
    }

    /// Runs every job of `batch` in one transaction and commits it.
    async fn commit_batch(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), BatchFailure> {
        let needs_fsync = batch.iter().any(|j| j.durability() == Durability::Fsync);
        let outcome = self.try_commit_batch(batch, needs_fsync).await;
        if outcome.is_err() {
            self.discard_connection().await;
        }
        outcome
    }

    async fn try_commit_batch(
        &mut self,
        batch: &mut [Box<dyn Job>],
        needs_fsync: bool,
    ) -> Result<(), BatchFailure> {
        self.set_fsync(needs_fsync).await?;
        let conn = self.connection().await?;
        let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
        write_together::<NewDeliveries>(&mut tx, batch).await?;
        write_together::<StepRecords>(&mut tx, batch).await?;
        for job in batch.iter_mut() {
            // SQLite may already have rolled the transaction back: committing now would
            // commit nothing, or (in autocommit) the jobs after this one one by one.
            if let Some(stop) = job.run(&mut tx).await {
                return Err(stop);
            }
        }
        tx.commit().await.map_err(StoreError::query("commit"))?;
        Ok(())
    }

    /// Switches `synchronous` between FULL (fsync at commit) and NORMAL, outside transactions.
    async fn set_fsync(&mut self, needs_fsync: bool) -> Result<(), StoreError> {
        self.connection().await?;
        if needs_fsync == self.fsyncing {
            return Ok(());
        }
        let pragma = if needs_fsync {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        let conn = self.connection().await?;
        sqlx::query(pragma)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::query("set_synchronous"))?;
        self.fsyncing = needs_fsync;
        Ok(())
    }

    /// Whether the store takes deliveries again: after a full disk a `TRUNCATE` checkpoint
    /// first, then an fsync'd write of [`PROBE_BYTES`] (about a large delivery), undone at
    /// once, then the reserve file made again — only with half as much again free beside it.
    async fn probe(&mut self) -> Result<(), StoreError> {
        if self.after_full {
            self.checkpoint(Checkpoint::Truncate).await;
        }
        let outcome = self.probe_write().await;
        if let Err(e) = &outcome {
            tracing::debug!(error = %e, "store probe failed");
            self.discard_connection().await;
            return outcome;
        }
        if let Some(reserve) = self.reserve.as_mut().filter(|r| !r.is_held()) {
            // Half as much again free beside it: else the next deliveries would fill the disk
            // and take it back at once.
            let headroom = reserve.bytes() / 2;
            if let Err(e) = reserve.make(headroom).await {
                tracing::debug!(error = %e, file = %reserve.path().display(), "no room for the reserve file yet");
                return Err(StoreError::NotWritable(format!(
                    "no room for the reserve file {}: {e}",
                    reserve.path().display()
                )));
            }
            tracing::info!(file = %reserve.path().display(), "made the reserve file again");
        }
        self.after_full = false;
        Ok(())
    }

    async fn probe_write(&mut self) -> Result<(), StoreError> {
        self.set_fsync(true).await?;
        let conn = self.connection().await?;
        sqlx::query(
            "INSERT INTO store_probe (id, probed_at, ballast) VALUES (1, ?1, zeroblob(?2))
             ON CONFLICT (id) DO UPDATE
             SET probed_at = excluded.probed_at, ballast = excluded.ballast",
        )
        .bind(super::types::to_millis(OffsetDateTime::now_utc()))
        .bind(PROBE_BYTES)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("probe"))?;
        // Give the space back to the deliveries.
        sqlx::query("UPDATE store_probe SET ballast = x'' WHERE id = 1")
            .execute(&mut *conn)
            .await
            .map_err(StoreError::query("probe"))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    fn options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
    }

    /// A writer on a fresh database (with the `t` test table) opened from `writer_options`,
    /// and a pool of ordinary connections to it.
    async fn writer_with(
        dir: &tempfile::TempDir,
        writer_options: SqliteConnectOptions,
    ) -> (Writer, sqlx::SqlitePool) {
        let reader = sqlx::SqlitePool::connect_with(options(dir)).await.unwrap();
        for ddl in [
            "CREATE TABLE t (v TEXT NOT NULL UNIQUE)",
            "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, probed_at INTEGER NOT NULL, ballast BLOB NOT NULL DEFAULT x'')",
        ] {
            sqlx::query(ddl).execute(&reader).await.unwrap();
        }
        let conn = SqliteConnection::connect_with(&writer_options)
            .await
            .unwrap();
        (
            Writer::start(writer_options, conn, 16, None).unwrap(),
            reader,
        )
    }

    async fn writer(dir: &tempfile::TempDir) -> (Writer, sqlx::SqlitePool) {
        writer_with(dir, options(dir)).await
    }

    #[tokio::test]
    async fn a_failing_job_leaves_the_rest_of_its_batch_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = writer(&dir).await;
        // Hold the writer inside a job until the next two are queued, so they share a batch.
        let (release, hold) = oneshot::channel::<()>();
        let (started, holding) = oneshot::channel::<()>();
        let holder = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .write(Durability::Crash, move |_conn| {
                        Box::pin(async move {
                            let _ = started.send(());
                            let _ = hold.await;
                            Ok(())
                        })
                    })
                    .await
            }
        });
        holding.await.unwrap();
        // Two statements in a savepoint; the second breaks the UNIQUE rule, so neither stays.
        let failing = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .write(Durability::Crash, |conn| {
                        Box::pin(async move {
                            let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
                            insert("partial")(&mut tx).await?;
                            insert("partial")(&mut tx).await?;
                            tx.commit().await.map_err(StoreError::query("commit"))
                        })
                    })
                    .await
            }
        });
        let fine = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(Durability::Fsync, insert("kept")).await }
        });
        // Both queued while the writer is inside the holder's batch: let it go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while writer.queue.max_capacity() - writer.queue.capacity() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the two jobs were never queued"
            );
            tokio::task::yield_now().await;
        }
        let _ = release.send(());
        holder.await.unwrap().unwrap();
        assert!(
            failing.await.unwrap().is_err(),
            "the broken job reports its error"
        );
        fine.await.unwrap().unwrap();
        let rows: Vec<String> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&reader)
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec!["kept".to_owned()],
            "no partial write, the other job kept"
        );
    }

    fn insert(
        v: impl Into<String>,
    ) -> impl for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, ()> {
        let v: String = v.into();
        move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (v) VALUES (?1)")
                    .bind(v)
                    .execute(conn)
                    .await
                    .map(drop)
                    .map_err(StoreError::query("test_insert"))
            })
        }
    }

    async fn stored(reader: &sqlx::SqlitePool) -> std::collections::BTreeSet<String> {
        sqlx::query_scalar("SELECT v FROM t")
            .fetch_all(reader)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// A full database (SQLite's `max_page_count` on the writer's connections, a real
    /// SQLITE_FULL) refuses writes — each caller told so, nothing of a refused write kept —
    /// reports itself unwritable, and takes writes again by itself once space is freed.
    #[tokio::test]
    async fn a_full_database_refuses_writes_and_recovers_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) =
            writer_with(&dir, options(&dir).pragma("max_page_count", "64")).await;
        // Rows of ~2 KiB, written by concurrent callers so failures hit shared batches.
        let row = |n: usize| format!("{n:05}{}", "x".repeat(2000));
        let mut answers = Vec::new();
        for round in 0..8 {
            let calls: Vec<_> = (0..32)
                .map(|i| {
                    let (writer, value) = (writer.clone(), row(round * 32 + i));
                    tokio::spawn(async move {
                        let outcome = writer.write(Durability::Fsync, insert(value.clone())).await;
                        (value, outcome)
                    })
                })
                .collect();
            for call in calls {
                answers.push(call.await.unwrap());
            }
        }
        let kept = stored(&reader).await;
        let refused: Vec<_> = answers.iter().filter(|(_, o)| o.is_err()).collect();
        assert!(!refused.is_empty(), "the database never filled up");
        for (value, outcome) in &answers {
            assert_eq!(
                outcome.is_ok(),
                kept.contains(value),
                "row {} answered {outcome:?} but stored = {}",
                &value[..5],
                kept.contains(value)
            );
        }
        // A row larger than the whole database is refused, and the writer says it cannot
        // write; its probe (a large-delivery-sized write) fails too while the rows stay.
        let huge = format!("huge{}", "x".repeat(300_000));
        assert!(writer
            .write(Durability::Fsync, insert(huge.clone()))
            .await
            .is_err());
        assert!(!stored(&reader).await.contains(&huge));
        assert!(matches!(
            writer.check_writable(),
            Err(StoreError::NotWritable(_))
        ));

        // Space comes back (another connection deletes rows); with no write of ours queued,
        // the writer's probe finds out by itself.
        sqlx::query("DELETE FROM t").execute(&reader).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while writer.check_writable().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never recovered"
            );
            tokio::time::sleep(PROBE_INTERVAL / 10).await;
        }
        writer
            .write(Durability::Fsync, insert(row(10_000)))
            .await
            .unwrap();
        writer
            .write(Durability::Crash, insert(row(10_001)))
            .await
            .unwrap();
        assert_eq!(stored(&reader).await.len(), 2);
    }
}
