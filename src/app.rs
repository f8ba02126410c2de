//! Application assembly: router, state, workers, serving and graceful shutdown.
