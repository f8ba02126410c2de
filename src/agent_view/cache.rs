//! A small single-flight cache of look-up results with a time to live and a size bound: a burst
//! of requests for one key costs one look-up, whose result every waiting request shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What a request waiting for a look-up receives: `None` until it has finished.
pub type Pending<V, E> = watch::Receiver<Option<Result<V, E>>>;

/// The keys and what each holds, shared with the [`Filler`]s of look-ups under way.
type Slots<V, E> = Arc<Mutex<HashMap<String, Slot<V, E>>>>;

/// Look-up results by key, kept `ttl` after they were found, at most `capacity` of them.
pub struct Cache<V, E> {
    ttl: Duration,
    capacity: usize,
    slots: Slots<V, E>,
}

enum Slot<V, E> {
    /// A result found, fresh until `until`.
    Ready { until: Instant, value: V },
    /// A look-up under way.
    Pending(Pending<V, E>),
}

/// Where a key stands.
pub enum Entry<V, E> {
    /// A fresh result.
    Fresh(V),
    /// A look-up is under way: wait on it.
    InFlight(Pending<V, E>),
    /// Nothing fresh and no look-up under way: the caller looks up, hands the result to the
    /// [`Filler`] and waits on the receiver like everyone else.
    Start(Filler<V, E>, Pending<V, E>),
}

/// The duty to finish one look-up: [`Filler::finish`] stores and announces its result; dropped
/// unfinished (its task panicked or was cancelled), it clears the key and its waiters see the
/// channel closed.
pub struct Filler<V, E> {
    key: String,
    ttl: Duration,
    /// `None` when the cache was full of look-ups under way: the result is announced, not kept.
    slots: Option<Slots<V, E>>,
    sender: Option<watch::Sender<Option<Result<V, E>>>>,
}

impl<V: Clone, E: Clone> Cache<V, E> {
    /// A cache keeping results for `ttl`, at most `capacity` keys (at least one).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            slots: Arc::default(),
        }
    }

    /// The fresh result for `key`, the look-up under way, or the duty to start one.
    pub fn entry(&self, key: &str) -> Entry<V, E> {
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        match slots.get(key) {
            Some(Slot::Ready { until, value }) if *until > now => {
                return Entry::Fresh(value.clone())
            }
            Some(Slot::Pending(pending)) => return Entry::InFlight(pending.clone()),
            _ => {}
        }
        let (sender, receiver) = watch::channel(None);
        let kept = slots.contains_key(key) || self.make_room(&mut slots, now);
        if kept {
            slots.insert(key.to_owned(), Slot::Pending(receiver.clone()));
        }
        let filler = Filler {
            key: key.to_owned(),
            ttl: self.ttl,
            slots: kept.then(|| self.slots.clone()),
            sender: Some(sender),
        };
        Entry::Start(filler, receiver)
    }

    /// Frees a place for one more key: drops expired results, then the oldest one. False when
    /// every place holds a look-up under way.
    fn make_room(&self, slots: &mut HashMap<String, Slot<V, E>>, now: Instant) -> bool {
        if slots.len() < self.capacity {
            return true;
        }
        slots.retain(|_, slot| !matches!(slot, Slot::Ready { until, .. } if *until <= now));
        if slots.len() < self.capacity {
            return true;
        }
        let oldest = slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Ready { until, .. } => Some((*until, key.clone())),
                Slot::Pending(_) => None,
            })
            .min();
        match oldest {
            Some((_, key)) => {
                slots.remove(&key);
                true
            }
            None => false,
        }
    }

    /// How many keys are held (results and look-ups under way).
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V: Clone, E: Clone> Filler<V, E> {
    /// Announces `result` to every waiter; keeps it for the cache's time to live when it is a
    /// value and `keep` says so, else clears the key so that the next request looks up again.
    pub fn finish(mut self, result: Result<V, E>, keep: bool) {
        if let Some(slots) = self.slots.take() {
            let mut slots = lock(&slots);
            match &result {
                Ok(value) if keep => {
                    let until = Instant::now() + self.ttl;
                    let value = value.clone();
                    slots.insert(self.key.clone(), Slot::Ready { until, value });
                }
                _ => {
                    slots.remove(&self.key);
                }
            }
        }
        if let Some(sender) = self.sender.take() {
            // No receiver left (every waiter gave up at its deadline) is fine.
            let _ = sender.send(Some(result));
        }
    }
}

impl<V, E> Drop for Filler<V, E> {
    fn drop(&mut self) {
        if let (Some(slots), Some(_)) = (self.slots.take(), self.sender.as_ref()) {
            lock(&slots).remove(&self.key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map holds plain values; a panicked holder cannot leave it inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type TestCache = Cache<u32, &'static str>;

    fn start(
        cache: &TestCache,
        key: &str,
    ) -> (Filler<u32, &'static str>, Pending<u32, &'static str>) {
        match cache.entry(key) {
            Entry::Start(filler, pending) => (filler, pending),
            _ => panic!("expected to start a look-up for {key}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_is_kept_for_its_time_to_live() {
        let cache = TestCache::new(Duration::from_secs(30), 10);
        let (filler, mut pending) = start(&cache, "a");
        filler.finish(Ok(7), true);
        assert_eq!(
            *pending.wait_for(Option::is_some).await.unwrap(),
            Some(Ok(7))
        );
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(matches!(cache.entry("a"), Entry::Fresh(7)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(cache.entry("a"), Entry::Start(..)), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_during_a_look_up_wait_for_it_and_failures_are_not_kept() {
        let cache = TestCache::new(Duration::from_secs(30), 10);
        let (filler, _) = start(&cache, "a");
        let Entry::InFlight(mut waiting) = cache.entry("a") else {
            panic!("a second request must wait for the first look-up");
        };
        filler.finish(Err("down"), true);
        assert_eq!(
            *waiting.wait_for(Option::is_some).await.unwrap(),
            Some(Err("down"))
        );
        assert!(matches!(cache.entry("a"), Entry::Start(..)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_incomplete_result_is_shared_but_not_kept() {
        let cache = TestCache::new(Duration::from_secs(30), 10);
        let (filler, mut pending) = start(&cache, "a");
        filler.finish(Ok(1), false);
        assert_eq!(
            *pending.wait_for(Option::is_some).await.unwrap(),
            Some(Ok(1))
        );
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_look_up_clears_its_key_and_closes_its_channel() {
        let cache = TestCache::new(Duration::from_secs(30), 10);
        let (filler, mut pending) = start(&cache, "a");
        drop(filler);
        assert!(pending.wait_for(Option::is_some).await.is_err());
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_size_is_bounded_expired_then_oldest_first() {
        let cache = TestCache::new(Duration::from_secs(30), 2);
        start(&cache, "a").0.finish(Ok(1), true);
        tokio::time::advance(Duration::from_secs(1)).await;
        start(&cache, "b").0.finish(Ok(2), true);
        start(&cache, "c").0.finish(Ok(3), true);
        assert_eq!(cache.len(), 2);
        assert!(matches!(cache.entry("b"), Entry::Fresh(2)));
        assert!(matches!(cache.entry("c"), Entry::Fresh(3)));
        // Full of look-ups under way: the result is announced, not kept.
        let cache = TestCache::new(Duration::from_secs(30), 1);
        let (_busy, _) = start(&cache, "a");
        let (filler, mut pending) = start(&cache, "b");
        filler.finish(Ok(5), true);
        assert_eq!(
            *pending.wait_for(Option::is_some).await.unwrap(),
            Some(Ok(5))
        );
        assert_eq!(cache.len(), 1);
    }
}
