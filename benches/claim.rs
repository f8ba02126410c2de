//! Claim benchmark: what one claim costs the store, on SQLite and on PostgreSQL.
//!
//! **Scenarios** (the default): when another location has a backlog it cannot dispatch now.
//! A claim runs on the store's single writer (SQLite), so its cost is paid by every write
//! behind it (deliveries, step results). One location's trouble must not make claims for the
//! others slower. `--backlog N` events (default 20,000) of location A are stored, then 2,000
//! of location B, and B's events are claimed (256 at a time, at most 8 per location, A
//! excluded as the dispatcher excludes a paused location) and finished. Scenarios:
//! - baseline: A has no backlog;
//! - A in an outage: every A event failed and waits an hour for its retry;
//! - A paused: A's events are pending, never claimed (a refused token, a spent daily quota);
//! - A paused long: the same after B was served more events than A holds, so A's backlog has
//!   fallen to the head of the fair order.
//!
//! **A large table** (`--events N`): the events table holds N events (say 1,000,000), all
//! done but an open backlog of `--open M` (default 10,000) prepared, due events spread over
//! `--locations L` (default 10) locations, bulk-loaded in SQL (not through ingress). Claims
//! (256 at a time, at most 8 per location) are timed on that table and on one holding only the
//! open backlog, with no location left out and with one left out (the claim's floor query).
//! The claim's candidate walk is shown with `EXPLAIN`; on PostgreSQL the index scans the
//! timed claims made are read from `pg_stat_user_indexes`.
//!
//! Run: `cargo bench --bench claim` (options after `--`: `--stores sqlite,postgres` (default
//! both; PostgreSQL test databases as in `tests/it/pg.rs`) `--backlog N` `--claims N`
//! `--events N` `--open M` `--locations L`).
#![allow(clippy::unwrap_used)]

/// The integration tests' helpers (seeding prepared events), shared with benches.
/// The benches' command-line options.
#[path = "support/args.rs"]
mod args;
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
/// PostgreSQL test databases, shared with the integration tests.
#[path = "../tests/it/pg.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod pg;

use args::arg;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use formbridge::settings::StoreSettings;
use formbridge::store::{Claim, Finish, PgStore, SqliteStore, Store};
use sqlx::{Connection, SqliteConnection};
use time::OffsetDateTime;

/// Concurrent writers used to load the backlog.
const LOADERS: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Baseline,
    Outage,
    Paused,
    PausedLong,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline: A has no backlog",
            Scenario::Outage => "A in an outage (retries due in 1 h)",
            Scenario::Paused => "A paused (pending, excluded)",
            Scenario::PausedLong => "A paused long (B served a backlog since)",
        }
    }
}

fn num(name: &str) -> Option<usize> {
    arg(name).and_then(|v| v.parse().ok())
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// The backends `--stores` names (default both).
    fn chosen() -> Vec<Backend> {
        let list = arg("--stores").unwrap_or_else(|| "sqlite,postgres".to_owned());
        list.split(',')
            .map(|s| match s.trim() {
                "sqlite" => Backend::Sqlite,
                "postgres" | "pg" => Backend::Postgres,
                other => panic!("--stores: unknown store {other} (sqlite, postgres)"),
            })
            .collect()
    }
}

/// A fresh store of one backend, with what keeps it alive.
struct BenchStore {
    store: Arc<dyn Store>,
    backend: Backend,
    /// SQLite: the file's URL (for a connection of the bulk load's own).
    sqlite_url: String,
    /// PostgreSQL: the store's pool (bulk load, plans, index statistics).
    pg_pool: Option<sqlx::PgPool>,
    _dir: tempfile::TempDir,
    _db: Option<pg::PgDatabase>,
}

async fn open(backend: Backend) -> BenchStore {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("claim.db").display());
    match backend {
        Backend::Sqlite => BenchStore {
            store: Arc::new(
                SqliteStore::open(&StoreSettings::with_url(sqlite_url.clone()))
                    .await
                    .unwrap(),
            ),
            backend,
            sqlite_url,
            pg_pool: None,
            _dir: dir,
            _db: None,
        },
        Backend::Postgres => {
            let db = pg::PgDatabase::create().await;
            let store = PgStore::open(&StoreSettings::with_url(db.url.clone()))
                .await
                .unwrap();
            BenchStore {
                pg_pool: Some(store.pool().clone()),
                store: Arc::new(store),
                backend,
                sqlite_url,
                _dir: dir,
                _db: Some(db),
            }
        }
    }
}

async fn add(store: &dyn Store, location: &str, tag: &str, i: usize) {
    let contact = format!("email:{tag}{i}@example.com");
    common::add_prepared(store, location, "dripjobs", &format!("{tag}-{i}"), &contact).await;
}

/// Stores and prepares `n` events of `location`, tagged `tag` (unique per call).
async fn add_many(store: &Arc<dyn Store>, location: &'static str, tag: &'static str, n: usize) {
    let mut loaders = Vec::new();
    for first in 0..LOADERS {
        let store = store.clone();
        loaders.push(tokio::spawn(async move {
            for i in (first..n).step_by(LOADERS) {
                add(store.as_ref(), location, tag, i).await;
            }
        }));
    }
    for loader in loaders {
        loader.await.unwrap();
    }
}

fn claim(limit: u32, per_location_limit: u32, exclude: &[&str]) -> Claim {
    let now = OffsetDateTime::now_utc();
    Claim {
        lease: "bench".into(),
        now,
        lease_until: now + Duration::from_secs(60),
        limit,
        per_location_limit,
        exclude_locations: exclude.iter().map(|l| (*l).into()).collect(),
    }
}

/// Claims (all locations but `exclude`) and finishes as `finish` until nothing is left.
async fn drain(store: &dyn Store, exclude: &[&str], finish: &Finish) {
    loop {
        let taken = store.claim(&claim(256, 256, exclude)).await.unwrap();
        if taken.is_empty() {
            break;
        }
        for event in taken {
            assert!(store.finish(event.id, &event.lease, finish).await.unwrap());
        }
    }
}

/// Claim times (ms) of `claims` claims (256 at most, 8 per location, `exclude` left out),
/// each claim's events finished before the next claim.
async fn time_claims(store: &dyn Store, claims: usize, exclude: &[&str]) -> Vec<f64> {
    let mut times = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        let taken = store.claim(&claim(256, 8, exclude)).await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!taken.is_empty(), "there is work left to claim");
        for event in taken {
            assert!(store
                .finish(event.id, &event.lease, &Finish::Done)
                .await
                .unwrap());
        }
    }
    times
}

/// Claim times (ms) of `claims` claims for location B, in one scenario.
async fn run(backend: Backend, scenario: Scenario, backlog: usize, claims: usize) -> Vec<f64> {
    let bench = open(backend).await;
    let store = &bench.store;
    if scenario != Scenario::Baseline {
        add_many(store, "A", "a", backlog).await;
    }
    if scenario == Scenario::Outage {
        let retry = Finish::Retry {
            at: OffsetDateTime::now_utc() + Duration::from_secs(3600),
            error: "GHL answered 503".into(),
            counts_attempt: true,
            outcome: "retry",
        };
        drain(store.as_ref(), &[], &retry).await;
    }
    if scenario == Scenario::PausedLong {
        // B is served as many events as A holds, so the virtual time passes A's keys and A's
        // whole backlog sits at the head of the fair order.
        add_many(store, "B", "b-earlier", backlog + 1).await;
        drain(store.as_ref(), &["A"], &Finish::Done).await;
    }
    add_many(store, "B", "b", 2000).await;
    time_claims(store.as_ref(), claims, &["A"]).await
}

/// Median, p90, p99 and max of `times`.
fn quantiles(mut times: Vec<f64>) -> [f64; 4] {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), at(1.0)]
}

fn print_header() {
    println!(
        "| {:<10} | {:<44} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "store", "scenario", "median ms", "p90 ms", "p99 ms", "max ms"
    );
    println!(
        "|{:-<12}|{:-<46}|{:-<11}|{:-<11}|{:-<11}|{:-<11}|",
        "", "", "", "", "", ""
    );
}

fn print_row(backend: Backend, label: &str, times: Vec<f64>) {
    let [median, p90, p99, max] = quantiles(times);
    println!(
        "| {:<10} | {:<44} | {:>9.2} | {:>9.2} | {:>9.2} | {:>9.2} |",
        backend.name(),
        label,
        median,
        p90,
        p99,
        max
    );
}

/// The large table's shape: `total` events of which the last `open` are pending, prepared and
/// due, spread round-robin over `locations` locations (one contact each), the rest done.
#[derive(Clone, Copy)]
struct Table {
    total: usize,
    open: usize,
    locations: usize,
}

impl Table {
    /// Fair keys run 1, 2, … per location in arrival order (one source, one flow per
    /// location): the virtual time is the key of the last done event.
    fn vtime(self) -> i64 {
        let done = self.total - self.open;
        if done == 0 {
            0
        } else {
            ((done - 1) / self.locations + 1) as i64
        }
    }
}

/// Fills an empty store with `table` in a few SQL statements (one transaction), the way the
/// store itself would have left those events: deliveries, plans, fair keys, the flows' last
/// keys and the virtual time.
async fn bulk_load(bench: &BenchStore, table: Table) {
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let done = (table.total - table.open) as i64;
    let plan = serde_json::to_string(&formbridge::domain::Plan::default()).unwrap();
    // The `events` columns (one schema for both backends); `n` counts from 1, `$1` … are bound
    // below (sqlx binds `$N` by number on SQLite too).
    let columns = "source, dedupe_key, status, attempts, next_attempt_at, contact_key, \
                   location_id, fair_key, received_at, updated_at, prepared";
    let values = "'dripjobs', 'bulk-' || n, CASE WHEN n <= $2 THEN 'done' ELSE 'pending' END, \
                  CASE WHEN n <= $2 THEN 1 ELSE 0 END, $3, 'email:bulk' || n || '@example.com', \
                  'loc' || (n % $4), (n - 1) / $4 + 1, $3, $3, TRUE";
    let flows = "INSERT INTO fair_flows (location_id, source, last_key) \
                 SELECT location_id, source, MAX(fair_key) FROM events GROUP BY location_id, source";
    let clock = "UPDATE fair_clock SET vtime = $1 WHERE id = 1";
    match bench.backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(&bench.sqlite_url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query(&format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $1)
                 INSERT INTO events ({columns}) SELECT {values} FROM g"
            ))
            .bind(table.total as i64)
            .bind(done)
            .bind(now)
            .bind(table.locations as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO event_plans (event_id, submission, plan)
                 SELECT id, '{}', $1 FROM events",
            )
            .bind(&plan)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO event_deliveries (event_id, content_type, headers, body)
                 SELECT id, 'application/json', '[]', X'7B7D' FROM events",
            )
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(flows).execute(&mut *tx).await.unwrap();
            sqlx::query(clock)
                .bind(table.vtime())
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let pool = bench.pg_pool.as_ref().unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!(
                "INSERT INTO events ({columns})
                 SELECT {values} FROM generate_series(1, $1::bigint) AS n ORDER BY n"
            ))
            .bind(table.total as i64)
            .bind(done)
            .bind(now)
            .bind(table.locations as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO event_deliveries (event_id, content_type, headers, body)
                 SELECT id, 'application/json', '[]'::jsonb, '\\x7b7d'::bytea FROM events",
            )
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO event_plans (event_id, submission, plan)
                 SELECT id, '{}'::jsonb, $1::jsonb FROM events",
            )
            .bind(&plan)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(flows).execute(&mut *tx).await.unwrap();
            sqlx::query(clock)
                .bind(table.vtime())
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // What autovacuum would have done by the time a table grows this large.
            sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await.unwrap();
        }
    }
}

/// The plan of the claim's candidate walk (the claim's own query, reduced to the walk: open,
/// prepared, due events in fair order, one per contact), as the backend's `EXPLAIN` prints it.
async fn explain(bench: &BenchStore) -> Vec<String> {
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let walk = "FROM events e WHERE e.status IN ('pending', 'processing', 'retrying') \
                AND e.fair_key IS NOT NULL AND e.location_id IS NOT NULL \
                AND ((e.status IN ('pending', 'retrying') AND e.next_attempt_at <= $1) \
                  OR (e.status = 'processing' AND e.lease_until < $1)) \
                AND NOT EXISTS (SELECT 1 FROM events p WHERE p.contact_key = e.contact_key \
                  AND p.id <> e.id AND p.status IN ('pending', 'processing', 'retrying') \
                  AND (p.id < e.id OR (p.status = 'processing' AND p.lease_until >= $1))) \
                ORDER BY e.fair_key, e.id LIMIT 1024";
    match bench.backend {
        Backend::Sqlite => {
            use sqlx::Row;
            let mut conn = SqliteConnection::connect(&bench.sqlite_url).await.unwrap();
            let rows = sqlx::query(&format!(
                "EXPLAIN QUERY PLAN SELECT e.id {}",
                walk.replacen(
                    "FROM events e",
                    "FROM events e INDEXED BY events_open_fair",
                    1
                )
            ))
            .bind(now)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect()
        }
        Backend::Postgres => sqlx::query_scalar(&format!(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT e.id {walk}"
        ))
        .bind(now)
        .fetch_all(bench.pg_pool.as_ref().unwrap())
        .await
        .unwrap(),
    }
}

/// Index scans and sequential scans of `events` so far (PostgreSQL's statistics).
async fn scans(pool: &sqlx::PgPool) -> BTreeMap<String, i64> {
    // Statistics reach the shared view up to a second after a transaction ends.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT indexrelname::text, idx_scan FROM pg_stat_user_indexes WHERE relname = 'events'
         UNION ALL
         SELECT '(sequential scans)', seq_scan FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

async fn large_table(backends: &[Backend], table: Table, claims: usize) {
    println!(
        "claim benchmark, large table: {} events of which {} open (pending, prepared, due) over {} locations, the rest done; {claims} claims per row (limit 256, 8 per location), each claim's events finished before the next",
        table.total, table.open, table.locations
    );
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    for &backend in backends {
        let sizes = if table.total > table.open {
            vec![table.open, table.total]
        } else {
            vec![table.total]
        };
        for total in sizes {
            let full = total == table.total;
            let table = Table { total, ..table };
            let bench = open(backend).await;
            let started = Instant::now();
            bulk_load(&bench, table).await;
            notes.push(format!(
                "{}: {total} events bulk-loaded in {:.1} s",
                backend.name(),
                started.elapsed().as_secs_f64()
            ));
            if full {
                notes.push(format!(
                    "{} at {total} events, EXPLAIN of the claim's walk:",
                    backend.name()
                ));
                notes.extend(
                    explain(&bench)
                        .await
                        .into_iter()
                        .map(|l| format!("    {l}")),
                );
            }
            let before = match &bench.pg_pool {
                Some(pool) => scans(pool).await,
                None => BTreeMap::new(),
            };
            let times = time_claims(bench.store.as_ref(), claims, &[]).await;
            rows.push((backend, format!("{total} events, none left out"), times));
            let times = time_claims(bench.store.as_ref(), claims, &["loc0"]).await;
            rows.push((backend, format!("{total} events, loc0 left out"), times));
            if let Some(pool) = &bench.pg_pool {
                let after = scans(pool).await;
                let used: Vec<String> = after
                    .iter()
                    .map(|(name, n)| (name, n - before.get(name).copied().unwrap_or(0)))
                    .filter(|(_, n)| *n > 0)
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                notes.push(format!(
                    "PostgreSQL at {total} events: scans of events during the {} timed claims and their finishes: {}",
                    2 * claims,
                    used.join(", ")
                ));
            }
        }
    }
    print_header();
    for (backend, label, times) in rows {
        print_row(backend, &label, times);
    }
    println!();
    for note in notes {
        println!("- {note}");
    }
}

#[tokio::main]
async fn main() {
    let backends = Backend::chosen();
    let claims = num("--claims").unwrap_or(50);
    if let Some(total) = num("--events") {
        let table = Table {
            total,
            open: num("--open").unwrap_or(10_000).min(total),
            locations: num("--locations").unwrap_or(10).max(1),
        };
        large_table(&backends, table, claims).await;
        return;
    }
    let backlog = num("--backlog").unwrap_or(20_000);
    println!("claim benchmark: {backlog} events of location A, 2000 of B; {claims} claims of B's events (limit 256, 8 per location, A excluded)");
    print_header();
    for &backend in &backends {
        for scenario in [
            Scenario::Baseline,
            Scenario::Outage,
            Scenario::Paused,
            Scenario::PausedLong,
        ] {
            let times = run(backend, scenario, backlog, claims).await;
            print_row(backend, scenario.label(), times);
        }
    }
}
