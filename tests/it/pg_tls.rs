//! PostgreSQL over TLS: `sslmode=require` encrypts every connection of the store, and
//! `verify-full` checks the server's certificate against `sslrootcert` and its name, refusing a
//! server it cannot verify. Needs a server with `ssl = on` (Debian's has its snakeoil
//! certificate, issued to `localhost`).
#![allow(clippy::unwrap_used)]

use sqlx::{Connection, PgConnection};

use crate::common::{skip, spawn_app, SECRET};
use crate::pg::PgDatabase;

/// Debian's self-signed certificate the local server presents (`ssl_cert_file`).
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// A test database on a server with TLS on; none (the test skipped, saying why) without one
/// (a private test cluster has no certificate).
async fn tls_database() -> Option<PgDatabase> {
    let db = crate::pg::database_or_skip().await?;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if ssl != "on" || !std::path::Path::new(SNAKEOIL).exists() {
        skip(&format!(
            "the PostgreSQL server has ssl = {ssl} (or no {SNAKEOIL}); run against a server \
             with TLS on (Debian's, via FORMBRIDGE_TEST_PG_URL)"
        ));
        return None;
    }
    Some(db)
}

/// Whether each of formbridge's connections to the database at `url` is encrypted (none: empty).
async fn formbridge_connections_tls(url: &str) -> Vec<bool> {
    let mut conn = PgConnection::connect(&with_param(url, "sslmode=disable"))
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = current_database() AND a.application_name = 'formbridge'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn sslmode_require_encrypts_every_store_connection() {
    let Some(db) = tls_database().await else {
        return;
    };
    let url = with_param(&db.url, "sslmode=require");
    let app = spawn_app(&[("store.url", url.as_str())]).await;
    let body = br#"{"event_name":"offline_message","chat_id":"tls-1","visitor":{"email":"tls@example.com"},"message":"hello"}"#;
    let response = app
        .post_hook(
            "jivochat",
            Some(SECRET),
            Some("application/json"),
            body.to_vec(),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(app.total_events().await, 1);
    let tls = formbridge_connections_tls(&db.url).await;
    assert!(!tls.is_empty(), "formbridge holds connections");
    assert!(
        tls.iter().all(|&on| on),
        "every connection encrypted: {tls:?}"
    );
}

#[tokio::test]
async fn sslmode_disable_is_honoured_so_the_check_above_can_fail() {
    let Some(db) = tls_database().await else {
        return;
    };
    let url = with_param(&db.url, "sslmode=disable");
    let app = spawn_app(&[("store.url", url.as_str())]).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let tls = formbridge_connections_tls(&db.url).await;
    assert!(!tls.is_empty());
    assert!(tls.iter().all(|&on| !on), "{tls:?}");
}

#[tokio::test]
async fn verify_full_checks_the_certificate_and_the_host_name() {
    let Some(db) = tls_database().await else {
        return;
    };
    let settings = |url: String| formbridge::settings::StoreSettings {
        pool_size: 2,
        ..formbridge::settings::StoreSettings::with_url(url)
    };
    // Verified: the server's certificate is the trusted root and it is issued to `localhost`.
    let url = with_param(
        &db.url.replacen("@127.0.0.1:", "@localhost:", 1),
        &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"),
    );
    let store = formbridge::store::PgStore::open(&settings(url)).await;
    assert!(store.is_ok(), "{:?}", store.err());
    // Not verifiable: a certificate no trusted root signed (the built-in web roots only).
    let url = with_param(&db.url, "sslmode=verify-full");
    let refused = formbridge::store::PgStore::open(&settings(url))
        .await
        .err()
        .expect("an unverifiable server is refused");
    let message = refused.to_string();
    assert!(
        message.contains("TLS") && message.contains("sslrootcert"),
        "the refusal says what to give: {message}"
    );
}
