//! Serde helpers that write a secret as `********`, so printed settings (`check-config`) and
//! errors never show one.

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

/// A URL with its password (if any) replaced by [`MASK`]; text that is not a URL unchanged.
pub fn url_password(v: &str) -> String {
    match url::Url::parse(v) {
        Ok(mut u) if u.password().is_some() => {
            // set_password only fails for URLs that cannot have one, which this one has.
            let _ = u.set_password(Some(MASK));
            u.into()
        }
        _ => v.to_owned(),
    }
}

/// Serializes a database URL with its password masked.
pub fn url<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url_password(v))
}
