//! `dndSettings` on create, update and upsert: per channel.
//!
//! Behaviour chosen where the contacts spec is silent: `DndSettingsSchema` lists each channel
//! as its own optional property, so a body's `dndSettings` sets the channels it names and
//! leaves the others as they are (a merge, not a replacement of the whole object); `null`
//! clears them all. `dnd` (every channel) is a separate flag, stored as sent.

use serde_json::{Map, Value};

/// Merges the body's `dndSettings` into the stored contact's.
pub(crate) fn merge(contact: &mut Map<String, Value>, input: &Map<String, Value>) {
    match input.get("dndSettings") {
        None => {}
        Some(Value::Object(channels)) => {
            let stored = contact
                .entry("dndSettings")
                .or_insert_with(|| Value::Object(Map::new()));
            if !stored.is_object() {
                *stored = Value::Object(Map::new());
            }
            if let Value::Object(stored) = stored {
                for (channel, setting) in channels {
                    stored.insert(channel.clone(), setting.clone());
                }
            }
        }
        Some(_) => {
            contact.remove("dndSettings");
        }
    }
}
