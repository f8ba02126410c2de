//! Each location's GHL pipelines and their stages, fetched once (`GET /opportunities/pipelines`)
//! and kept for the process's life, so a pipeline or stage named in the mapping is resolved to
//! its id without a request per event. Forgotten when GHL refuses an id (a pipeline or stage
//! renamed or deleted there), and fetched again when a name is not in the cached list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ghl::opportunities::Pipeline;

/// The pipelines of each location, as last fetched.
#[derive(Debug, Default)]
pub struct PipelineCache {
    by_location: Mutex<HashMap<String, Arc<Vec<Pipeline>>>>,
}

impl PipelineCache {
    fn locked(&self) -> MutexGuard<'_, HashMap<String, Arc<Vec<Pipeline>>>> {
        // Only whole lists are swapped in: a panic elsewhere cannot leave one half written.
        match self.by_location.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The location's pipelines, if fetched.
    pub fn get(&self, location: &str) -> Option<Arc<Vec<Pipeline>>> {
        self.locked().get(location).cloned()
    }

    /// Keeps a freshly fetched list.
    pub fn put(&self, location: &str, pipelines: Vec<Pipeline>) -> Arc<Vec<Pipeline>> {
        let pipelines = Arc::new(pipelines);
        self.locked()
            .insert(location.to_owned(), Arc::clone(&pipelines));
        pipelines
    }

    /// Forgets the location's list (GHL refused one of its ids).
    pub fn forget(&self, location: &str) {
        self.locked().remove(location);
    }
}
