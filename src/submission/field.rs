//! [`ContactField`]: the one list of contact fields formbridge knows, shared by the mapping
//! config (`mapping.fields`, `mapping.values`), normalization and the plan.

use serde::{Deserialize, Serialize};

/// A contact field, named as in the mapping config (`mapping.fields.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactField {
    Email,
    Phone,
    FirstName,
    LastName,
    /// The full name, split into first and last when those are not given.
    Name,
    CompanyName,
    Address1,
    City,
    State,
    PostalCode,
    Country,
    Website,
    /// IANA time zone, e.g. `America/New_York` (a fixed value only; no form asks for it).
    Timezone,
}

impl ContactField {
    /// Every field, in the order the docs list them.
    pub const ALL: [ContactField; 13] = [
        ContactField::Email,
        ContactField::Phone,
        ContactField::FirstName,
        ContactField::LastName,
        ContactField::Name,
        ContactField::CompanyName,
        ContactField::Address1,
        ContactField::City,
        ContactField::State,
        ContactField::PostalCode,
        ContactField::Country,
        ContactField::Website,
        ContactField::Timezone,
    ];

    /// The name used in config keys.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactField::Email => "email",
            ContactField::Phone => "phone",
            ContactField::FirstName => "first_name",
            ContactField::LastName => "last_name",
            ContactField::Name => "name",
            ContactField::CompanyName => "company_name",
            ContactField::Address1 => "address1",
            ContactField::City => "city",
            ContactField::State => "state",
            ContactField::PostalCode => "postal_code",
            ContactField::Country => "country",
            ContactField::Website => "website",
            ContactField::Timezone => "timezone",
        }
    }

    /// Whether an answer can be selected for it (`mapping.fields`): not the time zone.
    pub fn is_selectable(self) -> bool {
        self != ContactField::Timezone
    }

    /// Whether a fixed value may set it (`mapping.values`): not the email, phone or full name,
    /// which identify the person and come from the answers.
    pub fn is_fixable(self) -> bool {
        !matches!(
            self,
            ContactField::Email | ContactField::Phone | ContactField::Name
        )
    }
}

impl std::fmt::Display for ContactField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
