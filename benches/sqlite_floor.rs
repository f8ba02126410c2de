//! SQLite floor benchmark: what storing one delivery costs SQLite itself, with formbridge's schema
//! and pragmas, on one thread, with no HTTP, no async driver and no hand-off between threads —
//! the least CPU per delivery any SQLite ingest path could spend here, to set beside the ingest
//! bench's figure for `formbridge serve` (whose difference is formbridge's own overhead).
//!
//! A fresh database is made by formbridge's own migrations (`migrations/sqlite`, as the server
//! runs them), then written with `rusqlite`'s prepared statements: per delivery, the `events`
//! row (the same insert as the writer's group path: the tombstone check, `ON CONFLICT DO
//! NOTHING`, `RETURNING id`) and its `event_deliveries` row (kept headers as JSON, the ~1.1 KB
//! JivoChat body), `--batch` deliveries to a transaction. Printed per case: CPU µs per delivery
//! (user and system, from `/proc/self/stat`) and deliveries per second.
//!
//! Cases:
//! - **as served**: `synchronous = FULL` (each commit fsync'd, as every acknowledged delivery
//!   is), `wal_autocheckpoint` and `journal_size_limit` from the default
//!   `store.wal_limit_bytes` (1 MiB), foreign keys on;
//! - **no fsync**: the same with `synchronous = NORMAL` (not what formbridge ships: the fsync's
//!   share);
//! - **no secondary indexes**: as served, with `events`' secondary indexes dropped (a what-if:
//!   the most "fewer indexes written at ingest" could save).
//!
//! Run: `cargo bench --bench sqlite_floor` (options: `-- --rows 20000 --batches 1,19,64
//! --wal-limit-bytes 1048576`; 19 is about what the writer commits per batch under the ingest
//! bench's saturating load).

/// The benches' command-line options.
#[path = "support/args.rs"]
mod args;
/// The integration tests' helpers (CPU time from `/proc`).
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
/// The ingest bench's delivery.
#[path = "support/jivochat_delivery.rs"]
mod jivochat_delivery;

use std::path::Path;
use std::time::Instant;

use sqlx::{Connection, SqliteConnection};

/// The default `store.wal_limit_bytes` (`--wal-limit-bytes` sets another); the server derives
/// an auto-checkpoint every quarter of it, in 4 KiB pages, from it (`sqlite_file::bound_wal`).
const WAL_LIMIT_BYTES: u64 = 1024 * 1024;

/// The writer group path's insert, one row at a time.
const INSERT_EVENT: &str =
    "INSERT INTO events (source, dedupe_key, content_hash, revision_of, revision,
                             received_at, next_attempt_at, updated_at, prepared)
     SELECT ?1, ?2, ?3, NULL, 1, ?4, ?4, ?4, FALSE
     WHERE NOT EXISTS (SELECT 1 FROM swept_keys s
                       WHERE s.source = ?1 AND s.dedupe_key IN (?2, ?5))
     ON CONFLICT (source, dedupe_key) DO NOTHING
     RETURNING id";

const INSERT_DELIVERY: &str =
    "INSERT INTO event_deliveries (event_id, content_type, headers, body) VALUES (?1, ?2, ?3, ?4)";

/// The headers the server keeps with a delivery, as it stores them.
const KEPT_HEADERS: &str = r#"[["user-agent","formbridge-bench/1.0"],["content-length","1058"],["x-request-id","b7e1c2d4"]]"#;

#[derive(Clone, Copy, PartialEq)]
enum Case {
    AsServed,
    NoFsync,
    NoSecondaryIndexes,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::AsServed => "as served (fsync'd)",
            Case::NoFsync => "no fsync (synchronous = NORMAL)",
            Case::NoSecondaryIndexes => "as served, no secondary index on events",
        }
    }
}

/// A new database at `path` with formbridge's schema, migrated as the server migrates it.
fn migrated(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut conn = SqliteConnection::connect(&url)
            .await
            .expect("open the database");
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .expect("formbridge's migrations");
        conn.close().await.expect("close");
    });
}

struct Figures {
    user_us: f64,
    system_us: f64,
    per_second: f64,
}

/// Stores `rows` deliveries in transactions of `batch` into a fresh database under `dir`.
fn run(
    dir: &Path,
    case: Case,
    batch: usize,
    rows: usize,
    wal_limit: u64,
    template: &str,
) -> Figures {
    let path = dir.join(format!("floor-{batch}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    migrated(&path);
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "wal")
        .expect("WAL");
    let synchronous = if case == Case::NoFsync {
        "NORMAL"
    } else {
        "FULL"
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .expect("synchronous");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    conn.pragma_update(None, "wal_autocheckpoint", (wal_limit / 4 / 4096).max(1))
        .expect("wal_autocheckpoint");
    conn.pragma_update(None, "journal_size_limit", wal_limit)
        .expect("journal_size_limit");
    if case == Case::NoSecondaryIndexes {
        let names: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master
                 WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL",
            )
            .expect("list indexes")
            .query_map([], |row| row.get(0))
            .expect("list indexes")
            .collect::<Result<_, _>>()
            .expect("index names");
        for name in names {
            conn.execute(&format!("DROP INDEX {name}"), [])
                .expect("drop index");
        }
    }
    let bodies: Vec<Vec<u8>> = (0..rows as u64)
        .map(|n| jivochat_delivery::body(template, n).into_bytes())
        .collect();
    let keys: Vec<String> = (0..rows).map(|n| format!("offline_message:{n}")).collect();
    let hash = "9f2c".repeat(16);
    let revisions: Vec<String> = keys.iter().map(|k| format!("{k}#{hash}")).collect();
    let received_at: i64 = 1_765_000_000_000;

    let (user0, system0) = common::cpu_times_of("/proc/self/stat");
    let started = Instant::now();
    for (chunk, start) in (0..rows).step_by(batch).enumerate() {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut event = tx.prepare_cached(INSERT_EVENT).expect("prepare");
            let mut delivery = tx.prepare_cached(INSERT_DELIVERY).expect("prepare");
            for n in start..(start + batch).min(rows) {
                let id: i64 = event
                    .query_row(
                        rusqlite::params![
                            "jivochat",
                            keys[n],
                            hash,
                            received_at + chunk as i64,
                            revisions[n]
                        ],
                        |row| row.get(0),
                    )
                    .expect("insert event");
                delivery
                    .execute(rusqlite::params![
                        id,
                        "application/json",
                        KEPT_HEADERS,
                        bodies[n]
                    ])
                    .expect("insert delivery");
            }
        }
        tx.commit().expect("commit");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (user1, system1) = common::cpu_times_of("/proc/self/stat");
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM event_deliveries", [], |row| {
            row.get(0)
        })
        .expect("count");
    assert_eq!(stored as usize, rows, "every delivery stored");
    Figures {
        user_us: (user1 - user0).as_secs_f64() * 1e6 / rows as f64,
        system_us: (system1 - system0).as_secs_f64() * 1e6 / rows as f64,
        per_second: rows as f64 / elapsed,
    }
}

fn main() {
    let rows: usize = args::arg("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let batches: Vec<usize> = args::arg("--batches")
        .unwrap_or_else(|| "1,19,64".to_owned())
        .split(',')
        .map(|b| b.trim().parse().expect("--batches: numbers"))
        .collect();
    let wal_limit: u64 = args::arg("--wal-limit-bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(WAL_LIMIT_BYTES);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let template = jivochat_delivery::body_template(false);
    println!(
        "SQLite floor: {rows} deliveries per case, one thread, formbridge's schema; body {} B; \
         store.wal_limit_bytes {wal_limit}",
        jivochat_delivery::body(&template, 0).len()
    );
    println!("| case | deliveries per commit | CPU µs per delivery | of it user / system | deliveries/s |");
    println!("|---|---|---|---|---|");
    for case in [Case::AsServed, Case::NoFsync, Case::NoSecondaryIndexes] {
        for &batch in &batches {
            let f = run(dir.path(), case, batch, rows, wal_limit, &template);
            println!(
                "| {} | {batch} | {:.1} | {:.1} / {:.1} | {:.0} |",
                case.label(),
                f.user_us + f.system_us,
                f.user_us,
                f.system_us,
                f.per_second
            );
        }
    }
}
