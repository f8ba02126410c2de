//! The dispatch queue on a real SQLite file: leases, takeover after expiry, fencing, and
//! per-contact ordering.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use formbridge::settings::StoreSettings;
use formbridge::sources::SourceName;
use formbridge::store::{Claim, EventId, Finish, NewEvent, Preparation, SqliteStore, Store};
use time::OffsetDateTime;

async fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&StoreSettings {
        url: format!("sqlite://{}", dir.path().join("q.db").display()),
        max_connections: 4,
        group_commit_max_batch: 16,
    })
    .await
    .unwrap();
    (store, dir)
}

async fn add(store: &SqliteStore, key: &str, contact: &str) -> EventId {
    let id = store
        .insert_event(NewEvent {
            source: SourceName::parse("dripjobs").unwrap(),
            dedupe_key: key.to_owned(),
            content_type: Some("application/json".into()),
            headers: vec![],
            body: Bytes::from_static(b"{}"),
            received_at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap()
        .id();
    let prep = Preparation::Ready {
        submission: serde_json::json!({}),
        plan: serde_json::json!({"steps": []}),
        contact_key: contact.to_owned(),
        location_id: "loc".to_owned(),
    };
    store.save_preparations(&[(id, prep)]).await.unwrap();
    id
}

async fn claimed_ids(store: &SqliteStore) -> Vec<EventId> {
    store
        .claim(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect()
}

fn claim(owner: &str, lease: Duration) -> Claim {
    let now = OffsetDateTime::now_utc();
    Claim {
        owner: owner.to_owned(),
        now,
        lease_until: now + lease,
        limit: 10,
        exclude_locations: vec![],
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off() {
    let (store, _dir) = store().await;
    let id = add(&store, "a", "email:a@x.co").await;
    let first = store
        .claim(&claim("w1", Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        store
            .claim(&claim("w2", Duration::from_secs(5)))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // A claim made after the lease ran out (the clock is a parameter of the claim).
    let mut later = claim("w2", Duration::from_secs(5));
    later.now += Duration::from_millis(250);
    let taken = store.claim(&later).await.unwrap();
    assert_eq!(taken.len(), 1, "an expired lease is taken over");
    assert!(
        !store.finish(id, "w1", &Finish::Done).await.unwrap(),
        "the old owner is fenced off"
    );
    assert!(!store
        .renew_lease(id, "w1", OffsetDateTime::now_utc())
        .await
        .unwrap());
    assert!(store.finish(id, "w2", &Finish::Done).await.unwrap());
}

#[tokio::test]
async fn one_contact_at_a_time_in_arrival_order() {
    let (store, _dir) = store().await;
    let a1 = add(&store, "1", "email:a@x.co").await;
    let b1 = add(&store, "2", "email:b@x.co").await;
    let a2 = add(&store, "3", "email:a@x.co").await;
    let got = claimed_ids(&store).await;
    assert_eq!(
        got,
        vec![a1, b1],
        "the second event of a@ waits for the first"
    );
    // A retry of the first keeps the second waiting.
    let later = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    store
        .finish(
            a1,
            "w",
            &Finish::Retry {
                at: later,
                error: "503".into(),
                counts_attempt: true,
                outcome: "retry",
            },
        )
        .await
        .unwrap();
    assert!(store
        .claim(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
        .is_empty());
    // Once it is dead (or done), the next one goes.
    store.replay(a1, false).await.unwrap();
    let dead = Preparation::Failed {
        submission: None,
        error: "test".into(),
    };
    store.save_preparations(&[(a1, dead)]).await.unwrap();
    let got = claimed_ids(&store).await;
    assert_eq!(got, vec![a2]);
}
