//! Do-not-disturb as a plan carries it: the GHL channels a submission's consent answers change,
//! and how far each change may go (set DND, record consent, lift an existing DND).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A GHL DND channel: the keys of the contacts spec's `DndSettingsSchema`, plus `All` for the
/// contact's `dnd` flag (do-not-disturb on every channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DndChannel {
    /// `dnd`: every channel.
    All,
    #[serde(rename = "SMS")]
    Sms,
    Email,
    WhatsApp,
    #[serde(rename = "GMB")]
    Gmb,
    #[serde(rename = "FB")]
    Fb,
    Call,
}

impl DndChannel {
    /// Every channel, `All` first.
    pub const EVERY: [DndChannel; 7] = [
        DndChannel::All,
        DndChannel::Sms,
        DndChannel::Email,
        DndChannel::WhatsApp,
        DndChannel::Gmb,
        DndChannel::Fb,
        DndChannel::Call,
    ];

    /// The name GHL gives it (`SMS`, `Email`, …; `All` for the `dnd` flag).
    pub fn as_str(self) -> &'static str {
        match self {
            DndChannel::All => "All",
            DndChannel::Sms => "SMS",
            DndChannel::Email => "Email",
            DndChannel::WhatsApp => "WhatsApp",
            DndChannel::Gmb => "GMB",
            DndChannel::Fb => "FB",
            DndChannel::Call => "Call",
        }
    }

    /// The channel named `name`, in any case (`sms`, `Email`, `all`).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::EVERY
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for DndChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a submission asks of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DndTarget {
    /// Consent given, recorded only where GHL has no DND on the channel: never lifts one.
    Inactive,
    /// Consent given, lifting an `active` DND (`lift = true`); a `permanent` one (GHL's own,
    /// e.g. after a STOP reply) is never lifted.
    Lift,
    /// Opted out: DND `active` (a `permanent` one is left as it is).
    Active,
}

/// The DND changes of one submission, by channel (`SetDnd` step).
pub type DndChanges = BTreeMap<DndChannel, DndTarget>;
