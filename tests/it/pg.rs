//! PostgreSQL test databases: a fresh database per test, dropped when the test ends, pass or
//! fail, on the first server of:
//! - the one `FORMBRIDGE_TEST_PG_URL` names: it must answer (an explicit setting is a promise);
//! - the default, `postgres://postgres@127.0.0.1:5432/postgres` (`FORMBRIDGE_TEST_PG_DEFAULT_URL`
//!   names another), when it answers;
//! - a private throwaway cluster, started once per test process from the `initdb` and `postgres`
//!   found in `FORMBRIDGE_TEST_PG_BIN` (else `PATH`, then `/usr/lib/postgresql/*/bin`): trust
//!   auth, user `postgres`, a free port on 127.0.0.1 only, data and socket in a temporary
//!   folder, none of the machine's settings; stopped and removed when the process exits,
//!   however it exits.
//!
//! With none of them [`database_or_skip`] skips the test (`common::skip`, a failure when
//! `FORMBRIDGE_TEST_NO_SKIP` is set) and [`PgDatabase::create`] (benches) panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Test databases are named `formbridge_t_<unix seconds>_<pid>_<n>`.
const PREFIX: &str = "formbridge_t_";
/// Left-over test databases older than this are dropped at first use.
const SWEEP_AGE: Duration = Duration::from_secs(3600);
/// How long a server may take to answer a connection, and a private cluster to start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(60);

static NEXT: AtomicU64 = AtomicU64::new(0);
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
/// The server of this test process, or why there is none; found once.
static SERVER: tokio::sync::OnceCell<Result<Server, String>> = tokio::sync::OnceCell::const_new();

struct Server {
    url: String,
    /// A private cluster's watchdog (see [`CLUSTER_SH`]): this process holds its stdin until
    /// it exits.
    _cluster: Option<Child>,
}

/// Runs a private cluster until the test process exits: `$0` the temporary folder (data and
/// socket), `$1` the folder of `initdb` and `postgres`, `$2` the port. `initdb` and `postgres`
/// refuse to run as root, so as root they run as `nobody`. The test process holds the other end
/// of stdin and never writes: when it exits, however it exits, the read ends, the cluster stops
/// (fast shutdown) and the folder is removed. Exits early, with the log's tail on stderr, when
/// the cluster cannot start. Commits are fsynced as on a real server: with `postgres -F` the
/// three-replica test saw GHL refuse requests for the rate budget (429s) in three runs of
/// three, with fsync in none of three.
const CLUSTER_SH: &str = r#"
dir=$0 bin=$1 port=$2
as=
if [ "$(id -u)" = 0 ]; then
  as="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups --"
  chown nobody "$dir"
fi
exec 3<&0 </dev/null
if $as "$bin/initdb" -D "$dir/data" -U postgres -A trust -N --no-locale -E UTF8 >"$dir/log" 2>&1
then
  $as "$bin/postgres" -D "$dir/data" -k "$dir" -h 127.0.0.1 -p "$port" >>"$dir/log" 2>&1 &
  pid=$!
  (read -r _ <&3; kill -INT "$pid") >/dev/null 2>&1 &
  wait "$pid"
fi
tail -n 5 "$dir/log" >&2
rm -rf "$dir"
exit 1
"#;

/// A database of its own for the running test, or `None` after skipping the test
/// ([`crate::common::skip`]) when there is no PostgreSQL to run it on.
pub async fn database_or_skip() -> Option<PgDatabase> {
    match server().await {
        Ok(server) => Some(PgDatabase::on(&server.url).await),
        Err(why) => {
            crate::common::skip(&format!(
                "no PostgreSQL ({why}); set FORMBRIDGE_TEST_PG_URL or install PostgreSQL"
            ));
            None
        }
    }
}

async fn server() -> &'static Result<Server, String> {
    SERVER.get_or_init(find_server).await
}

async fn find_server() -> Result<Server, String> {
    let server = |url: String| Server {
        url,
        _cluster: None,
    };
    if let Ok(url) = std::env::var("FORMBRIDGE_TEST_PG_URL") {
        if let Err(e) = connect(&url).await {
            panic!(
                "PostgreSQL for tests is unreachable at FORMBRIDGE_TEST_PG_URL ({}): {e}",
                formbridge::masked::url_password(&url)
            );
        }
        return Ok(server(url));
    }
    let default =
        std::env::var("FORMBRIDGE_TEST_PG_DEFAULT_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    match connect(&default).await {
        Ok(()) => Ok(server(default)),
        Err(e) => private_cluster().await.map_err(|why| {
            format!(
                "nothing at {}: {e}; {why}",
                formbridge::masked::url_password(&default)
            )
        }),
    }
}

/// Whether the server at `url` answers.
async fn connect(url: &str) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {CONNECT_TIMEOUT:?}")),
    }
}

/// Starts a private cluster ([`CLUSTER_SH`]) and waits until it answers.
async fn private_cluster() -> Result<Server, String> {
    let bin = postgres_bin().ok_or_else(|| match std::env::var("FORMBRIDGE_TEST_PG_BIN") {
        Ok(dir) => format!("no initdb and postgres in FORMBRIDGE_TEST_PG_BIN ({dir})"),
        Err(_) => "no initdb and postgres in PATH or /usr/lib/postgresql/*/bin".to_owned(),
    })?;
    let dir = tempfile::Builder::new()
        .prefix("formbridge-pg-")
        .tempdir()
        .map_err(|e| format!("a folder for a private cluster: {e}"))?
        .keep();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("a free port for a private cluster: {e}"))?
        .port();
    let mut cluster = Command::new("sh")
        .arg("-c")
        .arg(CLUSTER_SH)
        .arg(&dir)
        .arg(&bin)
        .arg(port.to_string())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running sh for a private cluster: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + CLUSTER_START_TIMEOUT;
    while connect(&url).await.is_err() {
        if let Ok(Some(status)) = cluster.try_wait() {
            let mut log = String::new();
            if let Some(mut stderr) = cluster.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
            }
            return Err(format!(
                "a private cluster of {} did not start ({status}): {}",
                bin.display(),
                log.trim().lines().collect::<Vec<_>>().join(" / ")
            ));
        }
        if Instant::now() > deadline {
            // Closing its stdin stops it and removes its folder.
            drop(cluster.stdin.take());
            return Err(format!(
                "a private cluster of {} did not answer in {CLUSTER_START_TIMEOUT:?}",
                bin.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::common::note(&format!(
        "PostgreSQL for tests: a private cluster of {} at {url} (in {}, removed at exit)",
        bin.display(),
        dir.display()
    ));
    Ok(Server {
        url,
        _cluster: Some(cluster),
    })
}

/// The folder holding both `initdb` and `postgres`: `FORMBRIDGE_TEST_PG_BIN` when set (and
/// nowhere else), else the first of `PATH`, then `/usr/lib/postgresql/<version>/bin`, newest
/// version first.
fn postgres_bin() -> Option<PathBuf> {
    let has_both = |dir: &PathBuf| ["initdb", "postgres"].iter().all(|b| dir.join(b).is_file());
    if let Some(dir) = std::env::var_os("FORMBRIDGE_TEST_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(has_both);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry
                .file_name()
                .to_str()?
                .split('.')
                .next()?
                .parse()
                .ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(versions.into_iter().map(|(_, dir)| dir))
        .find(has_both)
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
    /// Creates a fresh, empty database; panics when there is no PostgreSQL. For benches: tests
    /// use [`database_or_skip`].
    #[allow(dead_code)]
    pub async fn create() -> PgDatabase {
        match server().await {
            Ok(server) => PgDatabase::on(&server.url).await,
            Err(why) => panic!("no PostgreSQL: {why}"),
        }
    }

    /// Creates a fresh, empty database on the server at `server`, first dropping test databases
    /// left there by killed runs.
    async fn on(server: &str) -> PgDatabase {
        let mut conn = PgConnection::connect(server).await.unwrap();
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
        let mut url = url::Url::parse(server).unwrap();
        url.set_path(&name);
        PgDatabase {
            url: url.into(),
            name,
            server: server.to_owned(),
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
