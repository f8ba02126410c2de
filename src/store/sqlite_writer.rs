//! The single SQLite writer: every write of the process runs as a job on one connection, many
//! jobs to a transaction, with one commit per batch — fsync'd when any job in it must survive
//! power loss.
//!
//! SQLite takes one writer at a time. Several pooled connections writing at once queue inside
//! SQLite, whose busy handler sleeps for milliseconds per retry, and each commit invalidates
//! the other connections' page caches. One writer task draining a queue avoids both, and
//! batching lets a single fsync cover every acknowledged delivery and every `started` step
//! record that arrived meanwhile.

use std::future::Future;
use std::pin::Pin;

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

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
    /// Runs the write inside the batch transaction, keeping its result for [`Job::answer`].
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'c>>;
    /// Tells the caller the write's result, or why its batch did not commit.
    fn answer(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Write<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
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
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'c>> {
        Box::pin(async move {
            if let Some(work) = self.work.take() {
                self.result = Some(work(conn).await);
            }
        })
    }

    fn answer(self: Box<Self>, commit: Result<(), &StoreError>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::WriterGone),
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
        };
        // The caller may have gone (a client hung up); what committed stays committed.
        let _ = self.reply.send(result);
    }
}

/// The sending side of the writer's queue.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer task on `conn` (opened with `synchronous = FULL`); at most `max_batch`
    /// jobs share a transaction.
    pub(super) fn start(conn: SqliteConnection, max_batch: usize) -> Self {
        let (queue, jobs) = mpsc::channel(max_batch.max(1) * 4);
        tokio::spawn(run(conn, jobs, max_batch.max(1)));
        Self { queue }
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
            result: None,
            reply,
            durability,
        };
        self.queue
            .send(Box::new(job))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Whether the writer task has stopped.
    pub(super) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// Drains the queue batch by batch until every sender is gone.
async fn run(mut conn: SqliteConnection, mut jobs: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut fsyncing = true;
    while jobs.recv_many(&mut batch, max_batch).await > 0 {
        metrics::histogram!("formbridge_store_commit_batch_size").record(batch.len() as f64);
        let needs_fsync = batch.iter().any(|j| j.durability() == Durability::Fsync);
        let outcome = async {
            if needs_fsync != fsyncing {
                let pragma = if needs_fsync {
                    "PRAGMA synchronous = FULL"
                } else {
                    "PRAGMA synchronous = NORMAL"
                };
                sqlx::query(pragma)
                    .execute(&mut conn)
                    .await
                    .map_err(StoreError::query("set_synchronous"))?;
                fsyncing = needs_fsync;
            }
            let mut tx = conn.begin().await.map_err(StoreError::query("begin"))?;
            for job in &mut batch {
                job.run(&mut tx).await;
            }
            tx.commit().await.map_err(StoreError::query("commit"))
        }
        .await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, batch = batch.len(), "store batch did not commit");
        }
        for job in batch.drain(..) {
            job.answer(outcome.as_ref().map(|_| ()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    async fn writer(dir: &tempfile::TempDir) -> (Writer, sqlx::SqlitePool) {
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (v TEXT NOT NULL UNIQUE)")
            .execute(&mut conn)
            .await
            .unwrap();
        let reader = sqlx::SqlitePool::connect_with(options).await.unwrap();
        (Writer::start(conn, 16), reader)
    }

    fn insert(
        v: &'static str,
    ) -> impl for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, ()> {
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
}
