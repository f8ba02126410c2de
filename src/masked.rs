//! Serde helpers that write a secret as `********`, so printed settings (`check-config`) never
//! show one.

use secrecy::SecretString;
use serde::Serializer;

/// What a secret is printed as.
pub const MASK: &str = "********";

/// Serializes a secret as [`MASK`].
pub fn secret<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(MASK)
}

/// Serializes a set secret as [`MASK`], an unset one as none.
pub fn secret_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(MASK),
        None => s.serialize_none(),
    }
}
