//! A faithful in-memory GHL v2 Contacts API over real HTTP, with fault injection and inspection.
