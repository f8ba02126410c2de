//! Retention on a real SQLite store: done events past their age are deleted in batches; dead
//! letters and unfinished events stay whatever their age.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use formbridge::domain::EventId;
use formbridge::settings::StoreSettings;
use formbridge::store::{AdminReads, Claim, EventStatus, Finish, Queue, SqliteStore};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

fn claim_all() -> Claim {
    let now = OffsetDateTime::now_utc();
    Claim {
        lease: "retention-test".into(),
        now,
        lease_until: now + Duration::from_secs(60),
        limit: 256,
        per_location_limit: 256,
        exclude_locations: vec![],
    }
}

/// Claims every due event and ends each with `finish`.
async fn finish_all(store: &SqliteStore, finish: &Finish) -> Vec<EventId> {
    let mut ids = Vec::new();
    loop {
        let claimed = store.claim(&claim_all()).await.unwrap();
        if claimed.is_empty() {
            return ids;
        }
        for event in claimed {
            assert!(store.finish(event.id, &event.lease, finish).await.unwrap());
            ids.push(event.id);
        }
    }
}

#[tokio::test]
async fn the_sweep_deletes_every_old_done_event_in_batches_and_keeps_dead_letters_and_open_events()
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = SqliteStore::open(&StoreSettings::with_url(url))
        .await
        .unwrap();
    let done_count = formbridge::retention::BATCH as usize + 20;
    for n in 0..done_count {
        crate::common::add_prepared(
            &store,
            "loc",
            "dripjobs",
            &format!("d{n}"),
            &format!("c{n}"),
        )
        .await;
    }
    let done = finish_all(&store, &Finish::Done).await;
    assert_eq!(done.len(), done_count);
    crate::common::add_prepared(&store, "loc", "dripjobs", "dead", "c-dead").await;
    let dead = finish_all(
        &store,
        &Finish::Dead {
            error: "GHL answered 422".into(),
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    let pending =
        crate::common::add_prepared(&store, "loc", "dripjobs", "pending", "c-pending").await;

    // Younger than the retention: nothing goes.
    let stop = CancellationToken::new();
    let kept = formbridge::retention::sweep(&store, Duration::from_secs(3600), &stop).await;
    assert_eq!(kept.unwrap(), 0);

    // Every done event is past a zero retention: all of them go, over more than one batch.
    let deleted = formbridge::retention::sweep(&store, Duration::ZERO, &stop).await;
    assert_eq!(deleted.unwrap(), done_count as u64);
    let counts = store.status_counts().await.unwrap();
    assert_eq!(counts[&EventStatus::Done], 0);
    assert_eq!(counts[&EventStatus::Dead], 1, "dead letters are kept");
    assert_eq!(counts[&EventStatus::Pending], 1, "open events are kept");
    assert!(store.get_event(done[0]).await.unwrap().is_none());
    assert!(store.steps(done[0]).await.unwrap().is_empty());
    assert!(
        store.attempts(done[0]).await.unwrap().is_empty(),
        "attempts go with the event"
    );
    assert!(store.get_event(dead[0]).await.unwrap().is_some());
    assert!(store.get_event(pending).await.unwrap().is_some());
}
