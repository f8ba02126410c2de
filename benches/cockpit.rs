//! Cockpit benchmark: how fast the admin cockpit's endpoints answer over real HTTP on a store of
//! `--events N` events (default 100,000), on SQLite and on PostgreSQL. Goal: under 100 ms each.
//!
//! The store is bulk-loaded in SQL (not through ingress) the way formbridge leaves it: events of
//! 5 sources and 10 locations received over the last 30 days (one every `30 d / N`), 85 % done,
//! 8 % dead, 4 % retrying, 3 % pending, each with its delivery, plan and three lead keys
//! (`email:lead{id}@example.com`, `phone:+1415{2000000 + id}`, `sid:sub-{id}`), and a 429
//! attempt on one event in 50. Then `formbridge serve` (dispatch off) answers, on port 0:
//! - `overview` (3 h, and 24 h), the overview view's one request;
//! - `search` by email, by phone typed as `(415) 2xx-xxxx`, by submission id;
//! - listings without `q`: counts per status and the first page (all events; dead; one source
//!   and status; one location over a week), and a page deep in the store (`after` = a tenth of
//!   the ids);
//! - `detail` of one event;
//!   and as baselines of the same run, `GET /healthz` (the HTTP round trip) and `GET
//!   /admin/stats` (the events view's counts, before this work).
//!
//! Each is asked `--repeats R` times (default 30, after 3 warm-ups); median, p95 and max are
//! printed in ms.
//!
//! Run: `cargo bench --bench cockpit` (options after `--`: `--stores sqlite,postgres` (default
//! both; PostgreSQL test databases as in `tests/it/pg.rs`), `--events N`, `--repeats R`,
//! `--explain`: PostgreSQL's plans, with timings, of the counts the stats and overview run).
#![allow(clippy::unwrap_used)]

/// The benches' command-line options.
#[path = "support/args.rs"]
mod args;
/// The integration tests' helpers (settings, a served app), shared with benches.
#[path = "../tests/it/common.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod common;
/// PostgreSQL test databases, shared with the integration tests.
#[path = "../tests/it/pg.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod pg;

use std::time::{Duration, Instant};

use args::arg;
use formbridge::settings::StoreSettings;
use formbridge::store::{PgStore, SqliteStore};
use sqlx::{Connection, SqliteConnection};
use time::OffsetDateTime;

const TOKEN: &str = "cockpit-bench-admin-token-0123456789";
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The statements that fill an empty store with `$1` events, received from `$2 - 30 days` to
/// `$2` (ms): `{n}` is the row number (1…N, the id of a fresh table).
fn statements(n_series: &str) -> Vec<String> {
    let columns = "source, dedupe_key, status, attempts, next_attempt_at, contact_key, \
                   location_id, received_at, updated_at, prepared, last_error";
    let received = format!("($2 - ($1 - {n_series}) * {} / $1)", 30 * DAY_MS);
    let values = format!(
        "CASE {n} % 5 WHEN 0 THEN 'jotform' WHEN 1 THEN 'powr' WHEN 2 THEN 'dripjobs' \
           WHEN 3 THEN '123formbuilder' ELSE 'jivochat' END, \
         'bulk-' || {n}, \
         CASE WHEN {n} % 100 < 85 THEN 'done' WHEN {n} % 100 < 93 THEN 'dead' \
           WHEN {n} % 100 < 97 THEN 'retrying' ELSE 'pending' END, \
         1, {received}, 'loc' || ({n} % 10) || '/email:lead' || {n} || '@example.com', \
         'loc' || ({n} % 10), {received}, {received}, TRUE, \
         CASE WHEN {n} % 100 >= 85 AND {n} % 100 < 93 THEN 'GHL answered 422: phone is invalid' END",
        n = n_series
    );
    vec![
        format!("INSERT INTO events ({columns}) SELECT {values} FROM SERIES"),
        "INSERT INTO event_deliveries (event_id, content_type, headers, body)
         SELECT id, 'application/json', '[]', BODY FROM events"
            .to_owned(),
        "INSERT INTO event_plans (event_id, submission, plan)
         SELECT id, '{\"contact\":{}}', '{\"steps\":[]}' FROM events"
            .to_owned(),
        "INSERT INTO event_lead_keys (lead_key, event_id)
         SELECT 'email:lead' || id || '@example.com', id FROM events
         UNION ALL SELECT 'phone:+1415' || (2000000 + id), id FROM events
         UNION ALL SELECT 'sid:sub-' || id, id FROM events"
            .to_owned(),
        "INSERT INTO event_attempts (event_id, attempt, at, outcome, error)
         SELECT id, 1, received_at, 'rate_limited', 'GHL answered 429' FROM events
         WHERE id % 50 = 0"
            .to_owned(),
    ]
}

/// Fills the store at `url` (already migrated) with `n` events.
async fn bulk_load(backend: Backend, url: &str, n: u64) {
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            for statement in statements("n") {
                let sql = statement
                    .replace(
                        "FROM SERIES",
                        "FROM (WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g \
                         WHERE n < $1) SELECT n FROM g)",
                    )
                    .replace("BODY", "X'7B7D'");
                sqlx::query(&sql)
                    .bind(n as i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            for statement in statements("n") {
                let sql = statement
                    .replace("FROM SERIES", "FROM generate_series(1, $1::bigint) AS n")
                    .replace("'[]', BODY", "'[]'::jsonb, '\\x7b7d'::bytea")
                    .replace(
                        "'{\"contact\":{}}', '{\"steps\":[]}'",
                        "'{\"contact\":{}}'::jsonb, '{\"steps\":[]}'::jsonb",
                    );
                // Only the events statement takes the parameters.
                let query = sqlx::query(&sql);
                let query = if sql.contains("$1") {
                    query.bind(n as i64).bind(now)
                } else {
                    query
                };
                query.execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            // What autovacuum would have done by the time a table grows this large.
            sqlx::raw_sql("VACUUM ANALYZE")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// Prints PostgreSQL's plans (with timings) of the statements the stats and the overview run
/// (`--explain`): the counts per status and a simplified form of the queue figures' walk of
/// the open events (the store's statement repeats a subquery, which the planner costs over
/// `jit_above_cost`), with JIT on (the server's default) and off (as the store's connections
/// run them).
async fn explain_pg(url: &str) {
    use sqlx::Row;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for jit in ["on", "off"] {
        println!("  -- jit = {jit}");
        sqlx::query(&format!("SET jit = {jit}"))
            .execute(&mut conn)
            .await
            .unwrap();
        for sql in [
            "SELECT status, COUNT(*) FROM events GROUP BY status",
            "SELECT COUNT(*), MIN(CASE WHEN e.next_attempt_at <= $1 THEN e.next_attempt_at END), \
             COUNT(CASE WHEN e.last_error IS NOT NULL AND (SELECT a.outcome FROM event_attempts a \
             WHERE a.event_id = e.id ORDER BY a.attempt DESC LIMIT 1) = 'waiting_for_lead' \
             THEN 1 END) FROM events e WHERE e.status IN ('pending', 'processing', 'retrying') \
             AND NOT EXISTS (SELECT 1 FROM events p \
             WHERE p.contact_key = e.contact_key AND p.id < e.id \
             AND p.status IN ('pending', 'processing', 'retrying'))",
        ] {
            let q = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
            let query = sqlx::query(&q);
            let query = if sql.contains("$1") {
                query.bind(now)
            } else {
                query
            };
            for row in query.fetch_all(&mut conn).await.unwrap() {
                println!("  {}", row.get::<String, _>(0));
            }
        }
    }
    conn.close().await.unwrap();
}

/// Median, p95 and max of `samples`, in ms.
fn summary(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (ms(at(0.5)), ms(at(0.95)), ms(*samples.last().unwrap()))
}

async fn run(backend: Backend, n: u64, repeats: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        Backend::Postgres => Some(pg::PgDatabase::create().await),
        Backend::Sqlite => None,
    };
    let url = match &db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("cockpit.db").display()),
    };
    // Migrate, then load.
    let started = Instant::now();
    match backend {
        Backend::Sqlite => drop(
            SqliteStore::open(&StoreSettings::with_url(url.clone()))
                .await
                .unwrap(),
        ),
        Backend::Postgres => drop(
            PgStore::open(&StoreSettings::with_url(url.clone()))
                .await
                .unwrap(),
        ),
    }
    bulk_load(backend, &url, n).await;
    println!(
        "{backend:?}: {n} events bulk-loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    if backend == Backend::Postgres && arg("--explain").is_some() {
        explain_pg(&url).await;
    }
    let settings = common::test_settings(
        dir.path(),
        &[("store.url", url.as_str()), ("admin.token", TOKEN)],
    );
    let app = common::spawn_with(settings, dir).await;
    let client = reqwest::Client::new();
    let now = OffsetDateTime::now_utc();
    let week_ago = (now - time::Duration::days(7)).unix_timestamp();
    let deep = n / 10;
    let probe = n * 7 / 9; // an event in the middle of the store
    let endpoints: Vec<(&str, String)> = vec![
        ("baseline: GET /healthz", "/healthz".into()),
        ("baseline: GET /admin/stats", "/admin/stats".into()),
        ("overview (3 h)", "/admin/overview".into()),
        ("overview (24 h)", "/admin/overview?hours=24".into()),
        (
            "search by email",
            format!("/admin/search?q=Lead{probe}%40Example.com"),
        ),
        ("search by phone (415) 2xx-xxxx", {
            let digits = 2_000_000 + probe;
            format!(
                "/admin/search?q=(415)%20{}-{:04}",
                digits / 10_000,
                digits % 10_000
            )
        }),
        (
            "search by submission id",
            format!("/admin/search?q=sub-{probe}"),
        ),
        ("listing: all, counts + page 1", "/admin/search".into()),
        (
            "listing: dead, counts + page 1",
            "/admin/search?status=dead".into(),
        ),
        (
            "listing: powr done, counts + page 1",
            "/admin/search?source=powr&status=done".into(),
        ),
        (
            "listing: loc3 last 7 days",
            format!("/admin/search?location=loc3&from={week_ago}"),
        ),
        (
            "listing: page deep in the store",
            format!("/admin/search?status=done&after={deep}"),
        ),
        ("detail of one event", format!("/admin/events/{probe}")),
    ];
    println!(
        "{:<40} {:>10} {:>10} {:>10}   ({backend:?}, {n} events, {repeats} requests each)",
        "endpoint", "median ms", "p95 ms", "max ms"
    );
    for (name, path) in endpoints {
        let url = format!("{}{path}", app.base);
        let mut samples = Vec::with_capacity(repeats);
        for i in 0..repeats + 3 {
            let t = Instant::now();
            let resp = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
            let status = resp.status();
            let body = resp.bytes().await.unwrap();
            let took = t.elapsed();
            assert!(status.is_success(), "{path}: {status} {body:?}");
            if name.starts_with("search by") {
                let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(page["events"][0]["id"], probe, "{path}: {page}");
            }
            if i >= 3 {
                samples.push(took);
            }
        }
        let (median, p95, max) = summary(&mut samples);
        let flag = if p95 < 100.0 { "" } else { "  over 100 ms" };
        println!("{name:<40} {median:>10.1} {p95:>10.1} {max:>10.1}{flag}");
    }
    drop(app);
    drop(db);
}

#[tokio::main]
async fn main() {
    let n: u64 = arg("--events").map_or(100_000, |v| v.parse().unwrap());
    let repeats: usize = arg("--repeats").map_or(30, |v| v.parse().unwrap());
    let stores = arg("--stores").unwrap_or_else(|| "sqlite,postgres".to_owned());
    for store in stores.split(',') {
        let backend = match store.trim() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "pg" => Backend::Postgres,
            other => panic!("--stores: unknown store {other} (sqlite, postgres)"),
        };
        run(backend, n, repeats).await;
    }
}
