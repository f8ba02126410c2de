//! OAuth tokens at rest: with `store.token_key` the rows hold no token (read raw from SQLite
//! and PostgreSQL), the store gives them back, a rotated key still opens them, a missing key
//! is refused naming the keys; and the SQLite file and its folder are private to their owner.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use formbridge::domain::LocationId;
use formbridge::settings::StoreSettings;
use formbridge::store::{PgStore, SqliteStore, Store, StoredTokens, TokenVault};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection, SqliteConnection};
use time::OffsetDateTime;

const KEY_1: &str = "1f0e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
const KEY_2: &str = "a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f";
const ACCESS: &str = "eyJhbGciOiJIUzI1NiJ9.access-token-of-the-test";
const REFRESH: &str = "eyJhbGciOiJIUzI1NiJ9.refresh-token-of-the-test";

fn keyed(url: &str, key: Option<&str>, old: Option<&str>) -> StoreSettings {
    StoreSettings {
        pool_size: 2,
        token_key: key.map(|k| SecretString::from(k.to_owned())),
        old_token_keys: old.map(|k| SecretString::from(k.to_owned())),
        ..StoreSettings::with_url(url)
    }
}

fn tokens() -> StoredTokens {
    StoredTokens {
        access_token: SecretString::from(ACCESS),
        refresh_token: SecretString::from(REFRESH),
        expires_at: OffsetDateTime::now_utc(),
    }
}

/// What the `oauth_tokens` table holds, read past the store.
enum Raw {
    Sqlite(String),
    Postgres(String),
}

impl Raw {
    async fn rows(&self) -> Vec<(String, String)> {
        let sql = "SELECT access_token, refresh_token FROM oauth_tokens";
        match self {
            Raw::Sqlite(url) => {
                let mut conn = SqliteConnection::connect(url).await.unwrap();
                sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
            }
            Raw::Postgres(url) => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }
}

/// Saves with `KEY_1`, finds no token in the raw row, reads back through a rotation to
/// `KEY_2` (old key kept for reading), and is refused once the sealing key is gone.
async fn check_sealed(
    open_with: impl AsyncFn(Option<&str>, Option<&str>) -> Arc<dyn Store>,
    raw: Raw,
) {
    let location = LocationId::from("locAtRest0000000001");
    let store = open_with(Some(KEY_1), None).await;
    store.save_oauth_tokens(&location, &tokens()).await.unwrap();
    let rows = raw.rows().await;
    assert_eq!(rows.len(), 1);
    for value in [&rows[0].0, &rows[0].1] {
        assert!(value.starts_with("sealed:v1:"), "{value}");
        assert!(!value.contains("access-token") && !value.contains("refresh-token"));
    }
    let loaded = store.load_oauth_tokens(&location).await.unwrap().unwrap();
    assert_eq!(loaded.refresh_token.expose_secret(), REFRESH);
    drop(store);

    // Rotation: the new key seals, the old one still opens what it sealed.
    let rotated = open_with(Some(KEY_2), Some(KEY_1)).await;
    let loaded = rotated.load_oauth_tokens(&location).await.unwrap().unwrap();
    assert_eq!(loaded.access_token.expose_secret(), ACCESS);
    rotated.save_oauth_tokens(&location, &loaded).await.unwrap();
    let resealed = raw.rows().await;
    assert_ne!(
        resealed[0].1.split(':').nth(2),
        rows[0].1.split(':').nth(2),
        "sealed anew with the new key"
    );
    drop(rotated);

    // Without the key that sealed them, the tokens are refused, naming the keys.
    let without = open_with(Some(KEY_1), None).await;
    let err = without
        .load_oauth_tokens(&location)
        .await
        .expect_err("refused without its key")
        .to_string();
    assert!(err.contains("store.old_token_keys"), "{err}");
}

#[tokio::test]
async fn sqlite_keeps_oauth_tokens_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fb.db").display());
    let open_url = url.clone();
    check_sealed(
        async |key: Option<&str>, old: Option<&str>| -> Arc<dyn Store> {
            let store: Arc<dyn Store> = Arc::new(
                SqliteStore::open(&keyed(&open_url, key, old))
                    .await
                    .unwrap(),
            );
            store
        },
        Raw::Sqlite(url),
    )
    .await;
}

#[tokio::test]
async fn postgres_keeps_oauth_tokens_sealed() {
    let Some(db) = crate::pg::database_or_skip().await else {
        return;
    };
    let url = db.url.clone();
    check_sealed(
        async |key: Option<&str>, old: Option<&str>| -> Arc<dyn Store> {
            let store: Arc<dyn Store> =
                Arc::new(PgStore::open(&keyed(&url, key, old)).await.unwrap());
            store
        },
        Raw::Postgres(db.url.clone()),
    )
    .await;
}

#[test]
fn a_token_key_that_is_not_32_hex_bytes_is_refused_naming_it() {
    let settings = keyed("sqlite://x.db", Some("change-me"), None);
    let err = settings.token_keys().unwrap_err().to_string();
    assert!(err.contains("store.token_key"), "{err}");
    let settings = keyed("sqlite://x.db", Some(KEY_1), Some("abcd"));
    let err = settings.token_keys().unwrap_err().to_string();
    assert!(err.contains("store.old_token_keys"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_file_and_its_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("data");
    let file = folder.join("fb.db");
    let store = SqliteStore::open(&keyed(&format!("sqlite://{}", file.display()), None, None))
        .await
        .unwrap();
    store
        .save_oauth_tokens(&LocationId::from("locPerm"), &tokens())
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder), 0o700, "the folder");
    assert_eq!(mode(&file), 0o600, "the database");
    let wal = folder.join("fb.db-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600, "the write-ahead log");
}
