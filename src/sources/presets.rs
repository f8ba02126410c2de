//! The tools read by the generic adapter, one preset each: the key aliases, id keys and text
//! clean-up typical of DripJobs (via Zapier), POWR Form Builder and 123FormBuilder, and the
//! plain generic adapter. Each preset is one registry entry (its `Tool` impl is in `generic`).

use super::detect::Role;

/// What the generic adapter knows about one tool.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The tool's name.
    pub name: &'static str,
    /// Its display title, in notes.
    pub title: &'static str,
    /// Sources of this tool are named after themselves (the plain generic adapter).
    pub named_after_source: bool,
    /// Extra key → role aliases, tried before the common ones.
    pub aliases: &'static [(&'static str, Role)],
    /// Keys that must not be read as a contact role (normalized comparison).
    pub not_contact: &'static [&'static str],
    /// Keys that may hold the tool's submission id, in order of preference.
    pub id_keys: &'static [&'static str],
    /// Keys that may hold an event or trigger name.
    pub event_keys: &'static [&'static str],
    /// Turn HTML-wrapped text into plain text by default.
    pub strip_html: bool,
    /// Answers tying deliveries of one lead together (`mapping.references` when unset).
    pub references: &'static [&'static str],
}

const COMMON_ID_KEYS: &[&str] = &[
    "submission_id",
    "submissionId",
    "entry_id",
    "entryId",
    "response_id",
    "id",
];

const COMMON_EVENT_KEYS: &[&str] = &["event", "event_name", "trigger"];

/// Any tool: common aliases only.
pub const GENERIC: Preset = Preset {
    name: "generic",
    title: "Generic",
    named_after_source: true,
    aliases: &[],
    not_contact: &[],
    id_keys: COMMON_ID_KEYS,
    event_keys: COMMON_EVENT_KEYS,
    strip_html: false,
    references: &[],
};

/// DripJobs through a "Webhooks by Zapier" POST. Keys follow the Zap field names seen in the one
/// public integration (`customer_name`, `customer_email`, `customer_phone`, `address`,
/// `deal_id`); `company` there is the contractor's own brand, not the customer's company, so it
/// is not read as the contact's company (select it with `mapping.fields.company_name`).
/// Notes and scope arrive HTML-wrapped; M/D/YYYY dates stay as answers.
pub const DRIPJOBS: Preset = Preset {
    name: "dripjobs",
    title: "DripJobs",
    named_after_source: false,
    aliases: &[
        ("customer_name", Role::FullName),
        ("customer_email", Role::Email),
        ("customer_phone", Role::Phone),
        ("customer_address", Role::Address1),
        ("job_address", Role::Address1),
        ("customer_company", Role::Company),
    ],
    not_contact: &["company"],
    id_keys: &["deal_id", "dealId", "job_id", "proposal_id", "id"],
    event_keys: &["trigger", "event", "stage"],
    strip_html: true,
    // Every Zap of one job carries its deal id: the lead (Proposal Accepted) and its
    // follow-ups (Appointment Set, Project Completed).
    references: &["deal_id"],
};

/// POWR Form Builder (Zapier or form post). No payload format is published; POWR forms label
/// fields the way the form author wrote them ("Your Name", "Phone Number", "Message").
pub const POWR: Preset = Preset {
    name: "powr",
    title: "POWR",
    named_after_source: false,
    aliases: &[
        ("your_name", Role::FullName),
        ("your_email", Role::Email),
        ("email_address", Role::Email),
        ("phone_number", Role::Phone),
        ("your_phone", Role::Phone),
        ("your_company", Role::Company),
    ],
    not_contact: &[],
    id_keys: &["submission_id", "submissionId", "response_id", "id"],
    event_keys: COMMON_EVENT_KEYS,
    strip_html: false,
    references: &[],
};

/// 123FormBuilder webhooks. No payload format is published; fields are named by label and the
/// entry is identified by an entry or reference id.
pub const FORMBUILDER123: Preset = Preset {
    name: "123formbuilder",
    title: "123FormBuilder",
    named_after_source: false,
    aliases: &[
        ("full_name", Role::FullName),
        ("e_mail", Role::Email),
        ("email_address", Role::Email),
        ("phone_number", Role::Phone),
        ("mobile_phone", Role::Phone),
        ("company_name", Role::Company),
    ],
    not_contact: &[],
    id_keys: &[
        "entry_id",
        "entryId",
        "refid",
        "ref_id",
        "submission_id",
        "id",
    ],
    event_keys: COMMON_EVENT_KEYS,
    strip_html: false,
    references: &[],
};

/// Turns HTML-wrapped text into plain text: `<br>`, `</p>`, `</div>`, `</li>` become line
/// breaks, other tags go, common entities are decoded, blank lines are dropped.
pub fn strip_html(text: &str) -> String {
    if !text.contains('<') && !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find('>') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let tag = after[1..end].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        let is_break = name == "br"
            || (tag.starts_with('/')
                && matches!(name, "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4"));
        if is_break {
            out.push('\n');
        } else if name == "li" && !tag.starts_with('/') {
            out.push_str("- ");
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    let decoded = decode_entities(&out);
    decoded
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        // An entity is at most 10 bytes up to its `;`: look no further (a long run of `&`
        // without `;` must not be scanned to its end once per `&`).
        let end = after.bytes().take(11).position(|b| b == b';');
        let decoded = end.and_then(|e| {
            let name = &after[1..e];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_html() {
        assert_eq!(
            strip_html("<p>2 day system.</p><p>Day 1: grind &amp; repair.<br>Day 2: coat.</p>"),
            "2 day system.\nDay 1: grind & repair.\nDay 2: coat."
        );
        assert_eq!(strip_html("a < b"), "a < b");
        assert_eq!(
            strip_html("Tom &#38; Jerry&nbsp;&unknown;"),
            "Tom & Jerry &unknown;"
        );
        assert_eq!(
            strip_html("<ul><li>one</li><li>two</li></ul>"),
            "- one\n- two"
        );
        assert_eq!(strip_html("plain"), "plain");
    }
}
