//! OAuth tokens at rest: sealed with ChaCha20-Poly1305 under `store.token_key` before they are
//! written, opened after they are read, so a copy of the database (a backup, a read of the
//! SQLite file) gives no access to a GHL location.
//!
//! A sealed value is `sealed:v1:<key id>:<base64 of nonce ‖ ciphertext>`: the key id (the first
//! 8 hex digits of the key's SHA-256) says which key sealed it, so `store.old_token_keys` can
//! still open what an earlier key sealed while every new write uses `store.token_key`. The
//! location id and the column are the associated data: a sealed value moved to another row or
//! column does not open. Without a key, values are kept as given; a value in clear (written
//! before a key was set) is still read, and sealed at its next write.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::settings::TokenKey;

/// Prefix of a sealed value.
const SEALED: &str = "sealed:v1:";
/// ChaCha20-Poly1305's nonce: 12 random bytes per value (a location's tokens are written once
/// per refresh, so random nonces never come near a collision).
const NONCE_LEN: usize = 12;

/// One key: its id and its cipher.
struct SealKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

impl SealKey {
    fn new(key: &TokenKey) -> Self {
        let digest = Sha256::digest(key);
        Self {
            id: hex::encode(&digest[..4]),
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }
}

/// The keys a store seals and opens its OAuth tokens with.
pub struct TokenSeal {
    /// Seals every write and opens what it sealed; none: values kept as given.
    current: Option<SealKey>,
    /// Open what they sealed, never seal.
    old: Vec<SealKey>,
}

impl std::fmt::Debug for TokenSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSeal")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

impl TokenSeal {
    /// The seal of `current` (sealing and opening) and `old` (opening only).
    pub fn new(current: Option<TokenKey>, old: &[TokenKey]) -> Self {
        Self {
            current: current.as_ref().map(SealKey::new),
            old: old.iter().map(SealKey::new).collect(),
        }
    }

    /// No key: values kept as given.
    pub fn none() -> Self {
        Self::new(None, &[])
    }

    /// `value` as the store keeps it: sealed under the current key, or as given without one.
    pub fn seal(&self, location_id: &str, column: &str, value: &str) -> Result<String, StoreError> {
        let Some(key) = &self.current else {
            return Ok(value.to_owned());
        };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: value.as_bytes(),
                    aad: &associated_data(location_id, column),
                },
            )
            .map_err(|_| StoreError::TokenSeal {
                location_id: location_id.to_owned(),
                message: "sealing failed".to_owned(),
            })?;
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&sealed);
        use base64::Engine as _;
        Ok(format!(
            "{SEALED}{}:{}",
            key.id,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)
        ))
    }

    /// The value a stored one holds: opened with the key that sealed it, or as stored when it
    /// was written in clear.
    pub fn open(
        &self,
        location_id: &str,
        column: &str,
        stored: &str,
    ) -> Result<SecretString, StoreError> {
        let Some(rest) = stored.strip_prefix(SEALED) else {
            return Ok(SecretString::from(stored.to_owned()));
        };
        let fail = |message: String| StoreError::TokenSeal {
            location_id: location_id.to_owned(),
            message,
        };
        let malformed = || fail("its sealed value is malformed".to_owned());
        let (id, encoded) = rest.split_once(':').ok_or_else(malformed)?;
        let key = self
            .current
            .iter()
            .chain(&self.old)
            .find(|k| k.id == id)
            .ok_or_else(|| {
                fail(format!(
                    "they were sealed with the key whose id is {id}, which is neither \
                     store.token_key nor one of store.old_token_keys; give that key (a rotation \
                     keeps the old key in store.old_token_keys until every location has \
                     refreshed)"
                ))
            })?;
        use base64::Engine as _;
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| malformed())?;
        if blob.len() < NONCE_LEN {
            return Err(malformed());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated_data(location_id, column),
                },
            )
            .map_err(|_| {
                fail(format!(
                    "their sealed value does not open with key {id}: altered, or moved from \
                     another row"
                ))
            })?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| fail("the opened value is not text".to_owned()))
    }
}

/// What a sealed value is bound to: its location and column.
fn associated_data(location_id: &str, column: &str) -> Vec<u8> {
    format!("formbridge.oauth_tokens:{location_id}:{column}").into_bytes()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const KEY_A: TokenKey = [7; 32];
    const KEY_B: TokenKey = [9; 32];

    #[test]
    fn a_sealed_value_opens_with_its_key_only_in_its_place() {
        let seal = TokenSeal::new(Some(KEY_A), &[]);
        let stored = seal.seal("loc1", "refresh_token", "rt-secret").unwrap();
        assert!(stored.starts_with(SEALED) && !stored.contains("rt-secret"));
        let opened = seal.open("loc1", "refresh_token", &stored).unwrap();
        assert_eq!(opened.expose_secret(), "rt-secret");
        assert!(seal.open("loc2", "refresh_token", &stored).is_err());
        assert!(seal.open("loc1", "access_token", &stored).is_err());
        // One character of the ciphertext changed (not the last, whose low bits base64 may
        // not use): the tag no longer matches.
        let at = stored.len() - 8;
        let other = if &stored[at..=at] == "A" { "B" } else { "A" };
        let altered = format!("{}{other}{}", &stored[..at], &stored[at + 1..]);
        assert!(seal.open("loc1", "refresh_token", &altered).is_err());
    }

    #[test]
    fn rotation_opens_the_old_key_and_seals_with_the_new() {
        let before = TokenSeal::new(Some(KEY_A), &[]);
        let stored = before.seal("loc", "access_token", "at").unwrap();
        let rotated = TokenSeal::new(Some(KEY_B), &[KEY_A]);
        assert_eq!(
            rotated
                .open("loc", "access_token", &stored)
                .unwrap()
                .expose_secret(),
            "at"
        );
        let resealed = rotated.seal("loc", "access_token", "at").unwrap();
        assert_ne!(resealed.split(':').nth(2), stored.split(':').nth(2));
        let without_old = TokenSeal::new(Some(KEY_B), &[]);
        let err = without_old
            .open("loc", "access_token", &stored)
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.old_token_keys"), "{err}");
    }

    #[test]
    fn without_a_key_values_are_kept_and_clear_ones_still_read() {
        let none = TokenSeal::none();
        assert_eq!(none.seal("loc", "access_token", "at").unwrap(), "at");
        let keyed = TokenSeal::new(Some(KEY_A), &[]);
        assert_eq!(
            keyed
                .open("loc", "access_token", "at")
                .unwrap()
                .expose_secret(),
            "at"
        );
    }
}
