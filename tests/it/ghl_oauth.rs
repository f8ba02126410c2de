#![allow(clippy::unwrap_used)]
//! OAuth refresh against the sandbox: single-flight under concurrency, persistence of the
//! rotated refresh token, one forced refresh after a 401, and a dead grant.

use std::sync::Arc;
use std::time::Duration;

use formbridge::ghl::oauth::{InMemoryTokenStore, OAuthCredentials, OAuthTokens, TokenStore};
use formbridge::ghl::OAuthSettings;
use formbridge::ghl::{GhlClient, GhlClientConfig, GhlError};
use ghl_sandbox::{SandboxConfig, SandboxHandle};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

pub(crate) const LOC: &str = "locOAuthTest00000001";
const CLIENT_ID: &str = "app-client-id";
const CLIENT_SECRET: &str = "app-client-secret";

pub(crate) async fn sandbox_with(access: &str, refresh: &str) -> SandboxHandle {
    let cfg = SandboxConfig {
        tokens: [(access.to_owned(), vec![LOC.to_owned()])].into(),
        oauth_clients: [(CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())].into(),
        refresh_tokens: [(refresh.to_owned(), LOC.to_owned())].into(),
        ..SandboxConfig::default()
    };
    ghl_sandbox::start(cfg).await.unwrap()
}

pub(crate) fn tokens(access: &str, refresh: &str, expires_in: time::Duration) -> OAuthTokens {
    OAuthTokens {
        access_token: SecretString::from(access),
        refresh_token: SecretString::from(refresh),
        expires_at: OffsetDateTime::now_utc() + expires_in,
        scope: None,
        user_type: Some("Location".into()),
    }
}

pub(crate) fn client(h: &SandboxHandle, store: Arc<dyn TokenStore>, margin: Duration) -> GhlClient {
    let mut settings = OAuthSettings::new(CLIENT_ID, SecretString::from(CLIENT_SECRET));
    settings.refresh_margin = margin;
    let creds = OAuthCredentials::new(
        settings,
        &h.base_url,
        "2021-07-28",
        Duration::from_secs(5),
        store,
    )
    .unwrap();
    GhlClient::new(
        GhlClientConfig {
            base_url: h.base_url.clone(),
            api_version: "2021-07-28".into(),
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(creds),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_callers_cause_one_refresh_and_the_new_token_is_persisted() {
    let h = sandbox_with("at-old", "rt-1").await;
    // Expires in 5 s, refresh margin 60 s: every caller sees it as about to expire.
    let store = Arc::new(InMemoryTokenStore::with(
        LOC,
        tokens("at-old", "rt-1", time::Duration::seconds(5)),
    ));
    let client = client(&h, store.clone(), Duration::from_secs(60));

    let mut calls = Vec::new();
    for i in 0..10 {
        let c = client.clone();
        calls.push(tokio::spawn(async move {
            c.list_tasks(LOC, &format!("nonexistentContact{i:02}"))
                .await
        }));
    }
    for call in calls {
        // The contact does not exist: a 400 proves the call was authorised with a valid token.
        let err = call.await.unwrap().unwrap_err();
        assert!(
            matches!(err, GhlError::Rejected { status: 400, .. }),
            "{err:?}"
        );
    }

    let state = h.state();
    assert_eq!(state.refresh_calls, 1, "exactly one refresh at the sandbox");
    assert_eq!(state.refresh_tokens.len(), 1);
    let live = state.refresh_tokens[0].clone();
    assert_ne!(live, "rt-1");
    let saved = store.get(LOC).unwrap();
    assert_eq!(saved.refresh_token.expose_secret(), live);
    assert_ne!(saved.access_token.expose_secret(), "at-old");
    assert_eq!(store.save_count(), 1);
    // Every API call used the new token (none was answered 401).
    assert!(state.requests.iter().all(|r| r.status != 401));
    // Secrets never show in Debug output.
    let debug = format!("{saved:?} {client:?}");
    assert!(
        !debug.contains(&live) && !debug.contains(CLIENT_SECRET),
        "{debug}"
    );
}

#[tokio::test]
async fn a_401_forces_one_refresh_and_one_more_attempt() {
    // The stored access token looks valid for an hour, but the sandbox does not know it.
    let h = sandbox_with("at-known", "rt-1").await;
    let store = Arc::new(InMemoryTokenStore::with(
        LOC,
        tokens("at-revoked", "rt-1", time::Duration::hours(1)),
    ));
    let client = client(&h, store.clone(), Duration::from_secs(60));
    let err = client
        .get_contact(LOC, "missingContact000001")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GhlError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    let state = h.state();
    assert_eq!(state.refresh_calls, 1);
    let statuses: Vec<u16> = state
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/contacts/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![401, 400]);
    assert_eq!(
        store.get(LOC).unwrap().refresh_token.expose_secret(),
        state.refresh_tokens[0]
    );
}

#[tokio::test]
async fn a_used_refresh_token_is_a_dead_grant() {
    let h = sandbox_with("at-old", "rt-1").await;
    // The store holds a refresh token the sandbox no longer accepts (e.g. rotated elsewhere).
    let store = Arc::new(InMemoryTokenStore::with(
        LOC,
        tokens("at-old", "rt-stale", time::Duration::seconds(-1)),
    ));
    let client = client(&h, store.clone(), Duration::from_secs(60));
    let err = client.get_contact(LOC, "x").await.unwrap_err();
    match err {
        GhlError::Unauthorized { message, .. } => {
            assert!(message.contains("invalid_grant"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.save_count(), 0);
    // Nothing reached the contacts API.
    assert!(h.state().requests.iter().all(|r| r.path == "/oauth/token"));
    // No stored tokens at all for a location: refused locally.
    let err = client
        .get_contact("unknownLocation00001", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, GhlError::Unauthorized { .. }));
}

#[tokio::test]
async fn bootstrap_refresh_token_is_used_when_the_store_is_empty() {
    let h = sandbox_with("unused", "rt-boot").await;
    let store = Arc::new(InMemoryTokenStore::new());
    let mut settings = OAuthSettings::new(CLIENT_ID, SecretString::from(CLIENT_SECRET));
    settings.bootstrap_refresh_token = Some(SecretString::from("rt-boot"));
    let creds = OAuthCredentials::new(
        settings,
        &h.base_url,
        "2021-07-28",
        Duration::from_secs(5),
        store.clone() as Arc<dyn TokenStore>,
    )
    .unwrap();
    let client = GhlClient::new(
        GhlClientConfig {
            base_url: h.base_url.clone(),
            api_version: "2021-07-28".into(),
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(creds),
    )
    .unwrap();
    client.get_contact(LOC, "x").await.unwrap_err();
    client.get_contact(LOC, "y").await.unwrap_err();
    assert_eq!(h.state().refresh_calls, 1);
    assert!(store.get(LOC).is_some());
}
