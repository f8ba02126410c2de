//! PostgreSQL test databases: a fresh database per test on the server `FORMBRIDGE_TEST_PG_URL`
//! names (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends,
//! pass or fail. A test that needs PostgreSQL fails when the server cannot be reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Test databases are named `formbridge_t_<unix seconds>_<pid>_<n>`.
const PREFIX: &str = "formbridge_t_";
/// Left-over test databases older than this are dropped at first use.
const SWEEP_AGE: Duration = Duration::from_secs(3600);

static NEXT: AtomicU64 = AtomicU64::new(0);
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("FORMBRIDGE_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

async fn connect_server(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL for tests is unreachable at FORMBRIDGE_TEST_PG_URL ({}): {e}. Start it: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            formbridge::masked::url_password(url)
        )
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A database of its own for one test; dropped (with every connection to it) on drop.
pub struct PgDatabase {
    /// Its URL, for `store.url`.
    pub url: String,
    name: String,
    server: String,
}

impl PgDatabase {
    /// Creates a fresh, empty database.
    pub async fn create() -> PgDatabase {
        let server = server_url();
        let mut conn = connect_server(&server).await;
        SWEPT
            .get_or_init(|| async {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'formbridge\\_t\\_%'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let cutoff = unix_now().saturating_sub(SWEEP_AGE.as_secs());
                for name in names {
                    let created = name[PREFIX.len()..]
                        .split('_')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok());
                    if created.is_some_and(|t| t < cutoff) {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut conn)
                        .await;
                    }
                }
            })
            .await;
        let name = format!(
            "{PREFIX}{}_{}_{}",
            unix_now(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        PgDatabase {
            url: url.into(),
            name,
            server,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (which cannot block on itself) or while a
        // failed test unwinds: drop the database from a thread with its own runtime.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&server).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
