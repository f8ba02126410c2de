//! The DND step (`[[mapping.dnd]]`): read the contact's do-not-disturb settings, then send
//! only the channels that change.
//!
//! Never lifting an opt-out: the contacts spec does not say whether `dndSettings` on an update
//! replaces the whole object or only the channels sent. We read the contact first and send only
//! the channels that change, so either reading holds: a consent given (`inactive`) is written
//! only where GHL has no DND on the channel, `lift` turns `active` into `inactive`, and a
//! `permanent` DND (GHL's own, e.g. after a STOP reply) is never touched. Nothing changes →
//! no write at all, so a replay changes nothing. Reading and writing are idempotent, so a retry
//! after a lost answer does the same.

use serde_json::Value;

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};
use crate::domain::dnd::{DndChanges, DndChannel, DndTarget};
use crate::ghl::types::{ContactProperties, DndSetting, DndSettings, UpdateContactRequest};

/// Sets the step's contact's DND channels: the contact id when something changed.
pub(super) async fn set(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    channels: &DndChanges,
) -> Result<Option<String>, StepError> {
    let (client, location, contact) = (executor.client, at.location(), at.contact()?);
    let current = executor
        .call(at.event, || client.get_contact(location, contact))
        .await?
        .contact;
    let Some(update) = changes(&current.extra, channels) else {
        return Ok(None);
    };
    executor
        .call(at.event, || {
            client.update_contact(location, contact, &update)
        })
        .await?;
    Ok(Some(contact.to_owned()))
}

/// The update that brings `contact` (its `dnd` and `dndSettings`) to `wanted`, or `None` when
/// nothing changes.
fn changes(
    contact: &serde_json::Map<String, Value>,
    wanted: &DndChanges,
) -> Option<UpdateContactRequest> {
    let mut props = ContactProperties::default();
    let mut settings = DndSettings::default();
    let mut any = false;
    for (channel, target) in wanted {
        if *channel == DndChannel::All {
            let on = contact.get("dnd").and_then(Value::as_bool).unwrap_or(false);
            let set = match target {
                DndTarget::Active if !on => Some(true),
                DndTarget::Lift if on => Some(false),
                _ => None,
            };
            if set.is_some() {
                props.dnd = set;
                any = true;
            }
            continue;
        }
        let now = contact
            .get("dndSettings")
            .and_then(|s| s.get(channel.as_str()))
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str);
        let status = match (target, now) {
            (_, Some("permanent")) => None,
            (DndTarget::Active, Some("active")) => None,
            (DndTarget::Active, _) => Some("active"),
            (DndTarget::Inactive, None) => Some("inactive"),
            (DndTarget::Inactive, Some(_)) => None,
            (DndTarget::Lift, Some("inactive")) => None,
            (DndTarget::Lift, _) => Some("inactive"),
        };
        if let (Some(status), Some(slot)) = (status, slot(&mut settings, *channel)) {
            *slot = Some(DndSetting {
                status: status.to_owned(),
                message: None,
                code: None,
            });
            any = true;
        }
    }
    if settings != DndSettings::default() {
        props.dnd_settings = Some(settings);
    }
    any.then_some(UpdateContactRequest { contact: props })
}

/// The field of `settings` for `channel` (`All` has none: it is the `dnd` flag).
fn slot(settings: &mut DndSettings, channel: DndChannel) -> Option<&mut Option<DndSetting>> {
    match channel {
        DndChannel::All => None,
        DndChannel::Sms => Some(&mut settings.sms),
        DndChannel::Email => Some(&mut settings.email),
        DndChannel::WhatsApp => Some(&mut settings.whatsapp),
        DndChannel::Gmb => Some(&mut settings.gmb),
        DndChannel::Fb => Some(&mut settings.fb),
        DndChannel::Call => Some(&mut settings.call),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(contact: Value, wanted: &[(DndChannel, DndTarget)]) -> Option<Value> {
        let wanted: DndChanges = wanted.iter().copied().collect();
        let contact = contact.as_object().cloned().unwrap_or_default();
        changes(&contact, &wanted).map(|u| serde_json::to_value(u).unwrap())
    }

    #[test]
    fn consent_never_lifts_an_opt_out_unless_told_and_never_a_permanent_one() {
        let ghl = json!({"dnd": true, "dndSettings": {
            "SMS": {"status": "active"}, "Email": {"status": "permanent"}}});
        use DndChannel::*;
        use DndTarget::*;
        // Consent recorded only where there is no DND.
        assert_eq!(
            update(
                ghl.clone(),
                &[
                    (Sms, Inactive),
                    (Email, Inactive),
                    (Call, Inactive),
                    (All, Inactive)
                ]
            ),
            Some(json!({"dndSettings": {"Call": {"status": "inactive"}}}))
        );
        // Lift: active becomes inactive, permanent stays.
        assert_eq!(
            update(ghl.clone(), &[(Sms, Lift), (Email, Lift), (All, Lift)]),
            Some(json!({"dnd": false, "dndSettings": {"SMS": {"status": "inactive"}}}))
        );
        // Opt-out: only what is not already active.
        assert_eq!(
            update(
                ghl.clone(),
                &[
                    (Sms, Active),
                    (Email, Active),
                    (WhatsApp, Active),
                    (All, Active)
                ]
            ),
            Some(json!({"dndSettings": {"WhatsApp": {"status": "active"}}}))
        );
        assert_eq!(update(ghl, &[(Sms, Active), (All, Active)]), None);
        assert_eq!(
            update(json!({}), &[(All, Active)]),
            Some(json!({"dnd": true}))
        );
    }
}
