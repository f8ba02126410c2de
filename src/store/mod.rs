//! Storage: the event store trait and its SQLite and PostgreSQL implementations.
