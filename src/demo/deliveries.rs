//! The demo's deliveries: recorded fixtures embedded in the binary, and what each should become.

use super::*;

/// A recorded delivery, embedded in the binary.
pub(super) struct Fixture {
    pub(super) source: &'static str,
    pub(super) file: &'static str,
    pub(super) label: &'static str,
    pub(super) meta: &'static str,
    pub(super) body: &'static [u8],
}

impl Fixture {
    /// The Content-Type from the first line of the `.meta` file.
    pub(super) fn content_type(&self) -> Option<&'static str> {
        self.meta
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("Content-Type:"))
            .map(str::trim)
    }
}

macro_rules! fixture {
    ($source:literal, $stem:literal, $ext:literal, $label:literal) => {
        Fixture {
            source: $source,
            file: concat!($stem, ".", $ext),
            label: $label,
            meta: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $source,
                "/",
                $stem,
                ".meta"
            )),
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $source,
                "/",
                $stem,
                ".",
                $ext
            )),
        }
    };
}

pub(super) const JOTFORM_CONSENT: Fixture = fixture!(
    "jotform",
    "enterprise_consent-widget.ASSEMBLED",
    "multipart",
    "Enterprise consent widget"
);
pub(super) const JOTFORM_FEEDBACK: Fixture = fixture!(
    "jotform",
    "2024-12-30_feedback-rating-file-upload",
    "multipart",
    "Feedback form (2024-12-30)"
);
pub(super) const JIVO_OFFLINE: Fixture =
    fixture!("jivochat", "offline_message", "json", "offline_message");
pub(super) const JIVO_CLIENT: Fixture =
    fixture!("jivochat", "client_updated", "json", "client_updated");
pub(super) const DRIPJOBS_PROPOSAL: Fixture = fixture!(
    "dripjobs",
    "zapier_proposal-accepted.ASSEMBLED",
    "json",
    "Proposal accepted (Zapier)"
);
pub(super) const DRIPJOBS_APPOINTMENT: Fixture = fixture!(
    "dripjobs",
    "zapier_appointment-set.ASSEMBLED",
    "json",
    "Appointment set: only the deal id (a follow-up)"
);
pub(super) const POWR_CONTACT: Fixture = fixture!(
    "powr",
    "zapier_contact-form.SYNTHETIC",
    "json",
    "Contact form (Zapier)"
);
pub(super) const F123_CONTACT: Fixture = fixture!(
    "123formbuilder",
    "webhook_contact.SYNTHETIC",
    "urlencoded",
    "Contact form (urlencoded)"
);
pub(super) const F123_QUOTE: Fixture = fixture!(
    "123formbuilder",
    "webhook_quote-request.SYNTHETIC",
    "multipart",
    "Quote request (multipart)"
);

pub(super) const TYPEFORM_LEAD: Fixture = fixture!(
    "typeform",
    "form_response_lead-form-utm.ASSEMBLED",
    "json",
    "Lead form with UTM hidden fields (signed)"
);

/// What a posted delivery should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Expect {
    /// Acknowledged with 200 and stored as a new event.
    Stored,
    /// Acknowledged with 200, recognised as a delivery already stored.
    Duplicate,
    /// Refused with 401 (wrong token); nothing stored.
    Refused,
}

pub(super) struct Post {
    pub(super) fixture: &'static Fixture,
    pub(super) expect: Expect,
    pub(super) note: &'static str,
}

/// The deliveries, in the order they are posted.
pub(super) static POSTS: &[Post] = &[
    Post {
        fixture: &JOTFORM_CONSENT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JOTFORM_FEEDBACK,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JIVO_OFFLINE,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JIVO_CLIENT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &DRIPJOBS_PROPOSAL,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &DRIPJOBS_APPOINTMENT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &POWR_CONTACT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &F123_CONTACT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &F123_QUOTE,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &TYPEFORM_LEAD,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JOTFORM_CONSENT,
        expect: Expect::Duplicate,
        note: "resent (a Jotform retry)",
    },
    Post {
        fixture: &POWR_CONTACT,
        expect: Expect::Refused,
        note: "wrong token",
    },
];
