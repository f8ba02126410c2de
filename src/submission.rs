//! The normalized submission model every source is turned into.
