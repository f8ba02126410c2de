//! The SQLite file's upkeep: whether the process may write it, the lock that keeps one serving
//! process per file, the release of a predecessor's leases, the reserve file given back when
//! the disk fills, and the bounds and checkpoints of the write-ahead log.
//!
//! - **Writable.** Before it opens the file, a serving process checks that it may write the file
//!   and its folder, and refuses to start naming which and what to fix (SQLite would open it
//!   read-only and fail at the first write, naming neither). Once open, SQLite's files stay
//!   open: a file or folder made read-only later changes nothing until the next start.
//! - **Lock.** `<file>.lock` beside the database, held (`flock`, exclusive) for the store's
//!   life by the process that serves it. A second one is refused naming the file and
//!   `store.url`. Operator commands (`events list|show|replay`) open the file shared, without
//!   the lock: they read, and a replay only rewrites events under no lease, which SQLite's own
//!   file locking orders against the server's writes.
//! - **Leases.** Holding the lock proves no other process can hold a lease on this file, so
//!   opening gives every `processing` event back at once instead of after its lease runs out.
//! - **Reserve.** `<file>.reserve`, `store.reserve_bytes` of zeros (never data). On a full disk
//!   the writer deletes it, so that a `wal_checkpoint(TRUNCATE)` can move the log into the
//!   database and give its space back, and dispatch can finish what was acknowledged;
//!   deliveries are refused until the reserve can be made again.
//! - **Write-ahead log.** `wal_autocheckpoint` at a quarter of `store.wal_limit_bytes` and
//!   `journal_size_limit` at all of it, on every connection. The log then rarely holds more
//!   than a quarter of the limit, which a checkpoint may have to add to the database file: the
//!   reserve (at least half the limit) covers it, with room to spare for dispatch.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use time::OffsetDateTime;

use super::types::to_millis;
use super::StoreError;
use crate::settings::StoreSettings;

/// How long opening waits for the lock held by another process (one that is stopping lets go
/// within it) before refusing.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How often it tries meanwhile.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// SQLite's default page size, which formbridge keeps: what `wal_autocheckpoint` counts in.
const PAGE_BYTES: u64 = 4096;

/// Sets the bounds of the write-ahead log on every connection opened from `options`.
pub(super) fn bound_wal(
    options: SqliteConnectOptions,
    settings: &StoreSettings,
) -> SqliteConnectOptions {
    let pages = (settings.wal_limit_bytes / 4 / PAGE_BYTES).max(1);
    options
        .pragma("wal_autocheckpoint", pages.to_string())
        .pragma("journal_size_limit", settings.wal_limit_bytes.to_string())
}

/// `path` with `suffix` added to its file name (`formbridge.db` → `formbridge.db.lock`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether `path` names an SQLite database held in memory (no file beside it).
fn in_memory(path: &Path) -> bool {
    path.as_os_str().is_empty() || path.to_str() == Some(":memory:")
}

/// Opens `path` for writing, creating it readable by its owner only.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Whether this process may write the database at `db` and create files in its folder (its
/// `-wal`, `-shm`, `.lock` and `.reserve`): else an error naming the file or the folder and
/// what to fix (a volume mounted read-only, a file or folder owned by another user). Checked
/// before opening, since SQLite opens an unwritable file read-only and fails only at the first
/// write, with a message naming neither. `Ok` for an in-memory database or a folder not made
/// yet, and where it cannot be told (not Unix).
pub(super) fn check_writable(url: &str, db: &Path) -> Result<(), StoreError> {
    if in_memory(db) {
        return Ok(());
    }
    let folder = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let refuse = |e: std::io::Error, what: String| {
        StoreError::NotWritable(format!(
            "{what} cannot be written by this process ({e}); give the user formbridge runs as \
             write access to it, or mount its volume read-write (store.url = {url})"
        ))
    };
    if folder.exists() {
        writable(folder).map_err(|e| {
            refuse(
                e,
                format!(
                    "the folder {} of the SQLite file, where formbridge keeps the database's \
                     -wal, -shm, .lock and .reserve files,",
                    folder.display()
                ),
            )
        })?;
    }
    if db.exists() {
        writable(db).map_err(|e| refuse(e, format!("the SQLite file {}", db.display())))?;
    }
    Ok(())
}

#[cfg(unix)]
fn writable(path: &Path) -> std::io::Result<()> {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn writable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The lock of one SQLite file, held until dropped.
#[derive(Debug)]
pub(super) struct FileLock {
    /// Open while the lock is held; closing it (also by the process dying) releases it.
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock of the database at `db` (`<db>.lock`), waiting up to [`LOCK_WAIT`] for
    /// a process that is stopping, or refuses naming the lock file and `store.url` when another
    /// process keeps it. `None` for an in-memory database.
    pub(super) async fn acquire(url: &str, db: &Path) -> Result<Option<Self>, StoreError> {
        if in_memory(db) {
            return Ok(None);
        }
        let path = beside(db, ".lock");
        let refuse = |kind: std::io::ErrorKind, message: String| StoreError::Open {
            url: url.to_owned(),
            source: sqlx::Error::Io(std::io::Error::new(kind, message)),
        };
        let file = open_private(&path, false).map_err(|e| {
            refuse(
                e.kind(),
                format!("cannot open the lock file {}: {e}", path.display()),
            )
        })?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut told = false;
        loop {
            match try_lock(&file) {
                Ok(()) => return Ok(Some(Self { _file: file })),
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    return Err(refuse(
                        e.kind(),
                        format!("cannot lock {}: {e}", path.display()),
                    ))
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(refuse(
                        std::io::ErrorKind::WouldBlock,
                        format!(
                            "another process serves this SQLite file (it holds {}); one process \
                             per SQLite file: stop it, or give this one its own store.url \
                             (replicas share PostgreSQL)",
                            path.display()
                        ),
                    ))
                }
                Err(_) => {
                    if !told {
                        tracing::info!(lock = %path.display(), "waiting for another process to let go of the SQLite file");
                        told = true;
                    }
                    tokio::time::sleep(LOCK_RETRY).await;
                }
            }
        }
    }
}

#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

/// Without `flock` the lock file is only a marker: nothing enforces one process per file.
#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Gives every lease on the file back at once, as [`super::backend::Backend::release`] gives
/// one back: the event is due now, `pending` when no attempt of it has finished yet, else
/// `retrying`; its recorded steps stay, so the next attempt resumes where the last one got
/// to. Only for a store opened under its [`FileLock`]: then no other process holds a lease.
pub(super) async fn release_leases(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    // Due now, so the event keeps its fair key where claims look (a processing event holds it
    // in `fair_key`, never parked).
    let released = sqlx::query(
        "UPDATE events SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
             next_attempt_at = $1, lease_owner = NULL, lease_until = NULL, updated_at = $1
         WHERE status = 'processing'",
    )
    .bind(to_millis(OffsetDateTime::now_utc()))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("release_leases"))?
    .rows_affected();
    if released > 0 {
        tracing::info!(
            released,
            "gave back the leases of the previous process on this SQLite file"
        );
    }
    Ok(released)
}

/// A checkpoint of the write-ahead log into the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checkpoint {
    /// Copies what it can without waiting for anyone: never blocks a reader, stops short of
    /// a reader's snapshot. The next write then starts the log over from its beginning.
    Passive,
    /// Copies everything, waiting (busy timeout) for readers to leave the log, then cuts the
    /// log file to zero bytes: gives its space back to the file system.
    Truncate,
}

/// What a checkpoint did (the row `PRAGMA wal_checkpoint` answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpointed {
    /// Whether it stopped short (a reader, or another writer).
    pub busy: bool,
    /// Frames in the log.
    pub frames: i64,
    /// Frames now in the database too.
    pub copied: i64,
}

/// Runs a checkpoint on `conn` (outside any transaction).
pub(super) async fn checkpoint(
    conn: &mut SqliteConnection,
    mode: Checkpoint,
) -> Result<Checkpointed, StoreError> {
    let sql = match mode {
        Checkpoint::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Checkpoint::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    let (busy, frames, copied): (i64, i64, i64) = sqlx::query_as(sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::query("wal_checkpoint"))?;
    Ok(Checkpointed {
        busy: busy != 0,
        frames,
        copied,
    })
}

/// Whether `e` says the disk (or the database's page limit) is full: SQLITE_FULL, or a file
/// system's "no space left".
pub(super) fn is_disk_full(e: &StoreError) -> bool {
    const SQLITE_FULL: i64 = 13;
    let StoreError::Query { source, .. } = e else {
        return false;
    };
    match source {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_FULL),
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

/// The reserve file: room on the database's disk kept free for a checkpoint and for dispatch.
#[derive(Debug)]
pub(super) struct Reserve {
    path: PathBuf,
    bytes: u64,
    /// Whether the file is there, whole.
    held: bool,
}

impl Reserve {
    /// The reserve of the database at `db` (`<db>.reserve`, `bytes` long), not made yet;
    /// `None` when `bytes` is 0 or the database is in memory.
    pub(super) fn beside(db: &Path, bytes: u64) -> Option<Self> {
        (bytes > 0 && !in_memory(db)).then(|| Self {
            path: beside(db, ".reserve"),
            bytes,
            held: false,
        })
    }

    /// Whether the reserve is on disk.
    pub(super) fn is_held(&self) -> bool {
        self.held
    }

    /// Its file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file (kept when already whole): zeros written and synced, so the file
    /// system really gives them (a sparse file would hold no room). When it must be written,
    /// the file system must have `headroom` bytes free beyond it (else `StorageFull`), so that
    /// making it again after a full disk leaves room for the writes that follow. On failure
    /// (no room) the partial file is deleted again.
    pub(super) async fn make(&mut self, headroom: u64) -> std::io::Result<()> {
        let (path, bytes) = (self.path.clone(), self.bytes);
        let made = tokio::task::spawn_blocking(move || {
            let whole = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes);
            if whole {
                return Ok(());
            }
            if let Some(free) = free_bytes(&path) {
                if free < bytes + headroom {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        format!("{free} bytes free, {} wanted", bytes + headroom),
                    ));
                }
            }
            let written = write_zeros(&path, bytes);
            if written.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            written
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|made| made);
        self.held = made.is_ok();
        made
    }

    /// Its size.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Deletes the file, giving its bytes back to the file system; how many it gave.
    pub(super) async fn give_back(&mut self) -> std::io::Result<u64> {
        let path = self.path.clone();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(path))
            .await
            .map_err(std::io::Error::other)
            .and_then(|removed| removed);
        let given = match removed {
            Ok(()) if self.held => self.bytes,
            Ok(()) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        self.held = false;
        Ok(given)
    }
}

/// Bytes free for this process on the file system holding `path` (its folder), if known.
#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    let stat = rustix::fs::statvfs(folder).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Writes `bytes` zeros to `path` (created or truncated) and syncs them.
fn write_zeros(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut file = open_private(path, true)?;
    let chunk = [0u8; 16 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_second_lock_on_the_same_file_is_refused_naming_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.db");
        let url = format!("sqlite://{}", db.display());
        let first = FileLock::acquire(&url, &db).await.unwrap();
        assert!(first.is_some());
        let err = FileLock::acquire(&url, &db).await.unwrap_err().to_string();
        assert!(err.contains("f.db.lock"), "{err}");
        assert!(err.contains("store.url"), "{err}");
        // One that lets go while the next waits hands the file over.
        let waiting = tokio::spawn({
            let (url, db) = (url.clone(), db.clone());
            async move { FileLock::acquire(&url, &db).await }
        });
        tokio::time::sleep(LOCK_WAIT / 2).await;
        drop(first);
        assert!(
            waiting.await.unwrap().unwrap().is_some(),
            "released on drop"
        );
        assert!(FileLock::acquire("sqlite::memory:", Path::new(":memory:"))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_reserve_is_made_whole_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        assert!(Reserve::beside(&db, 0).is_none());
        let mut reserve = Reserve::beside(&db, 100_000).unwrap();
        reserve.make(0).await.unwrap();
        assert!(reserve.is_held());
        assert_eq!(std::fs::metadata(reserve.path()).unwrap().len(), 100_000);
        assert_eq!(reserve.give_back().await.unwrap(), 100_000);
        assert!(!reserve.path().exists());
        assert_eq!(
            reserve.give_back().await.unwrap(),
            0,
            "nothing left to give"
        );
    }
}
