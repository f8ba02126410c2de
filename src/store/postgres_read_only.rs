//! A PostgreSQL database that stops taking writes, and takes them again: a standby after a
//! failover, or `default_transaction_read_only` set by an operator or by a provider's full-disk
//! guard. Writes then fail with SQLSTATE 25006 (the sender gets a 503) and `/readyz` says not
//! ready. A session keeps the database's `default_transaction_read_only` it started with for
//! its whole life, so once a read-only error was seen, a pooled session is checked before it is
//! handed out and closed when it is still read-only: once the database takes writes again, the
//! pool's new sessions do too, and the store recovers without a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnection, PgPool};

use super::StoreError;

/// SQLSTATE `read_only_sql_transaction`.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// How long after the last read-only error (or read-only answer to a check) pooled sessions
/// are checked before use.
const CHECK_FOR: Duration = Duration::from_secs(60);

/// When a read-only error was last seen, in milliseconds since the Unix epoch (0: never); one
/// for the process, as whatever a pool saw says the database may have been read-only.
static LAST_SEEN_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `e` is PostgreSQL refusing a write in a read-only transaction.
fn is_read_only(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(READ_ONLY_SQL_TRANSACTION))
}

/// Notes a read-only error (any other error is ignored): pooled sessions are checked from now on
/// for [`CHECK_FOR`].
pub(super) fn note(e: &sqlx::Error) {
    if is_read_only(e) {
        LAST_SEEN_MS.store(now_ms(), Ordering::Relaxed);
    }
}

/// Whether a read-only error was seen within [`CHECK_FOR`].
fn suspected() -> bool {
    let last = LAST_SEEN_MS.load(Ordering::Relaxed);
    let window = u64::try_from(CHECK_FOR.as_millis()).unwrap_or(u64::MAX);
    last != 0 && now_ms().saturating_sub(last) < window
}

/// Whether this session's transactions are read-only (`transaction_read_only`, which a plain
/// statement runs in: the session's default, or a standby's).
async fn session_read_only(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let read_only: String = sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
        .fetch_one(conn)
        .await?;
    Ok(read_only == "on")
}

/// The pool's `before_acquire`: while a read-only database is suspected, a session that is
/// still read-only is closed (`false`) rather than handed out; the pool opens a new one, which
/// takes the database's current setting.
pub(super) fn fit_to_write(
    conn: &mut PgConnection,
    _meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if !suspected() {
            return Ok(true);
        }
        let read_only = session_read_only(conn).await?;
        if read_only {
            LAST_SEEN_MS.store(now_ms(), Ordering::Relaxed);
            tracing::debug!("closing a read-only PostgreSQL session");
        }
        Ok(!read_only)
    })
}

/// Whether the database takes writes, for `/readyz`: an error naming why when a session of
/// `pool` is read-only.
pub(super) async fn check_writable(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(StoreError::query("ping"))?;
    if session_read_only(&mut conn)
        .await
        .map_err(StoreError::query("ping"))?
    {
        LAST_SEEN_MS.store(now_ms(), Ordering::Relaxed);
        return Err(StoreError::NotWritable(
            "PostgreSQL takes no writes (transaction_read_only is on: a standby, or \
             default_transaction_read_only set on the database or server); deliveries are \
             refused with 503 until it takes writes again"
                .to_owned(),
        ));
    }
    Ok(())
}
