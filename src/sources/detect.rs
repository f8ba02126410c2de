//! Contact detection shared by the normalizers: key aliases → contact roles, readable labels
//! from keys, and a [`ContactDraft`] that collects candidates and parses the winners.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::submission::{clean_text, country_code, country_id, Email, Phone, Submission};

/// A contact field an answer can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Email,
    Phone,
    FirstName,
    LastName,
    /// A full name, split into first and last when those are not given.
    FullName,
    Company,
    Address1,
    Address2,
    City,
    State,
    PostalCode,
    Country,
    Website,
}

/// How sure a candidate is; lower wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Named in `mapping.fields`.
    Configured = 0,
    /// The key names the role (`email`, `customer_phone`, a Jotform name object).
    Key = 1,
    /// Only the value's shape suggests it (a lone email-looking value).
    Shape = 2,
}

/// Common key spellings per role, compared after [`normalize_key`].
const ALIASES: &[(Role, &[&str])] = &[
    (
        Role::Email,
        &[
            "email",
            "emailaddress",
            "mail",
            "customeremail",
            "youremail",
            "contactemail",
            "workemail",
            "clientemail",
            "emailaddr",
        ],
    ),
    (
        Role::Phone,
        &[
            "phone",
            "tel",
            "telephone",
            "mobile",
            "cell",
            "cellphone",
            "phonenumber",
            "mobilephone",
            "mobilenumber",
            "customerphone",
            "yourphone",
            "contactnumber",
            "contactphone",
            "clientphone",
            "phoneno",
            "telnumber",
            "whatsapp",
        ],
    ),
    (
        Role::FirstName,
        &[
            "firstname",
            "fname",
            "first",
            "givenname",
            "forename",
            "customerfirstname",
        ],
    ),
    (
        Role::LastName,
        &[
            "lastname",
            "lname",
            "last",
            "surname",
            "familyname",
            "customerlastname",
        ],
    ),
    (
        Role::FullName,
        &[
            "name",
            "fullname",
            "customername",
            "yourname",
            "contactname",
            "clientname",
            "leadname",
        ],
    ),
    (
        Role::Company,
        &[
            "company",
            "companyname",
            "business",
            "businessname",
            "organization",
            "organisation",
            "customercompany",
        ],
    ),
    (
        Role::Address1,
        &[
            "address",
            "street",
            "streetaddress",
            "address1",
            "addressline1",
            "addrline1",
            "customeraddress",
        ],
    ),
    (Role::Address2, &["address2", "addressline2", "addrline2"]),
    (Role::City, &["city", "town"]),
    (Role::State, &["state", "province", "stateprovince"]),
    (
        Role::PostalCode,
        &["zip", "zipcode", "postal", "postalcode", "postcode"],
    ),
    (Role::Country, &["country", "countrycode"]),
    (
        Role::Website,
        &["website", "websiteurl", "homepage", "site"],
    ),
];

/// Lower-cases and drops everything but letters and digits: `E-Mail_Address` → `emailaddress`.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The role a key names, trying `extra` aliases (a preset's) first. `disabled` keys (normalized)
/// never match. Both the whole key and its last path segment are tried.
pub fn role_for_key(key: &str, extra: &[(&str, Role)], disabled: &[&str]) -> Option<Role> {
    let whole = normalize_key(key);
    let last = key
        .rsplit(['.', '[', ']'])
        .find(|s| !s.is_empty())
        .map(normalize_key)
        .unwrap_or_default();
    for candidate in [&whole, &last] {
        if candidate.is_empty() || disabled.iter().any(|d| normalize_key(d) == *candidate) {
            continue;
        }
        if let Some((_, role)) = extra.iter().find(|(k, _)| normalize_key(k) == *candidate) {
            return Some(*role);
        }
        if let Some((role, _)) = ALIASES
            .iter()
            .find(|(_, names)| names.contains(&candidate.as_str()))
        {
            return Some(*role);
        }
    }
    None
}

/// A readable label from a key: `studentsName` → `Students Name`, `customer_email` →
/// `Customer Email`, `visitor.name` → `Visitor Name`.
pub fn humanize(key: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev = None;
            continue;
        }
        let boundary = match prev {
            Some(p) => {
                (p.is_lowercase() && c.is_uppercase()) || (p.is_ascii_digit() && c.is_alphabetic())
            }
            None => false,
        };
        if boundary && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        prev = Some(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(f) => f.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone)]
struct Candidate {
    confidence: Confidence,
    order: usize,
    key: String,
    value: String,
}

/// Contact candidates collected while reading a submission; [`ContactDraft::finish`] parses
/// the best candidate per role into the submission's contact.
#[derive(Debug, Clone, Default)]
pub struct ContactDraft {
    slots: BTreeMap<Role, Vec<Candidate>>,
    next: usize,
    /// The delivery's own country for phones without `+country` (a visitor's geo-IP country,
    /// a phone field's country), ISO 3166 alpha-2; it wins over the source's default.
    phone_country: Option<&'static str>,
}

impl ContactDraft {
    /// Offers `value` (from answer `key`) for `role`. Blank values are ignored.
    pub fn offer(&mut self, role: Role, confidence: Confidence, key: &str, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        self.next += 1;
        self.slots.entry(role).or_default().push(Candidate {
            confidence,
            order: self.next,
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }

    /// Records the delivery's own country for phones written without `+country` (a name or
    /// an ISO code); the first recognised one wins, an unknown one is ignored.
    pub fn phone_country(&mut self, raw: &str) {
        if self.phone_country.is_none() {
            self.phone_country = country_code(raw).filter(|c| country_id(c).is_ok());
        }
    }

    /// Whether some candidate for `role` exists.
    pub fn has(&self, role: Role) -> bool {
        self.slots.get(&role).is_some_and(|c| !c.is_empty())
    }

    /// Fills `sub.contact`, recording a problem for each email or phone that does not parse.
    /// Phones without a country code are read as numbers of the delivery's own country (see
    /// [`ContactDraft::phone_country`]), else of `default_country`.
    pub fn finish(mut self, sub: &mut Submission, default_country: &str) {
        let default_country = self.phone_country.unwrap_or(default_country);
        for cands in self.slots.values_mut() {
            cands.sort_by_key(|c| (c.confidence, c.order));
        }
        let take =
            |role: Role| -> Vec<Candidate> { self.slots.get(&role).cloned().unwrap_or_default() };
        for c in take(Role::Email) {
            match Email::parse(&c.value) {
                Ok(e) if sub.contact.email.is_none() => sub.contact.email = Some(e),
                Ok(_) => {}
                Err(e) => sub.problem(&c.key, e.to_string()),
            }
        }
        for c in take(Role::Phone) {
            match Phone::parse(&c.value, default_country) {
                Ok(p) if sub.contact.phone.is_none() => sub.contact.phone = Some(p),
                Ok(_) => {}
                Err(e) => sub.problem(&c.key, format!("phone number not usable: {e}")),
            }
        }
        let first = |role| take(role).into_iter().next().map(|c| c.value);
        let (given_first, given_last) = (first(Role::FirstName), first(Role::LastName));
        if given_first.is_some() || given_last.is_some() {
            sub.contact
                .set_name_parts(given_first.as_deref(), given_last.as_deref());
            if let Some(full) = first(Role::FullName).as_deref().and_then(clean_text) {
                sub.contact.full_name = Some(full);
            }
        } else if let Some(full) = first(Role::FullName) {
            sub.contact.set_full_name(&full);
        }
        let text = |role| first(role).as_deref().and_then(clean_text);
        sub.contact.company = text(Role::Company);
        sub.contact.website = text(Role::Website);
        let country = take(Role::Country).into_iter().next().and_then(|c| {
            let code = country_code(&c.value);
            if code.is_none() {
                sub.problem(&c.key, "country not recognised (expected a country name or an ISO 3166 code); left out of the contact");
            }
            code.map(str::to_owned)
        });
        let addr = &mut sub.contact.address;
        addr.line1 = text(Role::Address1);
        addr.line2 = text(Role::Address2);
        addr.city = text(Role::City);
        addr.state = text(Role::State);
        addr.postal_code = text(Role::PostalCode);
        addr.country = country;
        // A one-line US-style address: "123 Example St, Prescott, AZ 86301".
        if addr.city.is_none() && addr.state.is_none() && addr.postal_code.is_none() {
            if let Some(line) = addr.line1.clone() {
                if let Some((street, city, state, zip)) = split_one_line_address(&line) {
                    addr.line1 = Some(street);
                    addr.city = Some(city);
                    addr.state = Some(state);
                    addr.postal_code = Some(zip);
                }
            }
        }
    }
}

/// Splits `street, city, ST 12345` (US style); anything else is left alone.
fn split_one_line_address(line: &str) -> Option<(String, String, String, String)> {
    let parts: Vec<&str> = line.split(',').map(str::trim).collect();
    let [street @ .., city, state_zip] = parts.as_slice() else {
        return None;
    };
    if street.is_empty() || city.is_empty() {
        return None;
    }
    let (state, zip) = state_zip.split_once(' ')?;
    let zip = zip.trim();
    let state_ok = state.len() == 2 && state.chars().all(|c| c.is_ascii_uppercase());
    let zip_ok =
        (zip.len() == 5 || zip.len() == 10) && zip.chars().all(|c| c.is_ascii_digit() || c == '-');
    (state_ok && zip_ok).then(|| {
        (
            street.join(", "),
            (*city).to_owned(),
            state.to_owned(),
            zip.to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_keys() {
        assert_eq!(role_for_key("E-Mail", &[], &[]), Some(Role::Email));
        assert_eq!(role_for_key("email_address", &[], &[]), Some(Role::Email));
        assert_eq!(role_for_key("customer.phone", &[], &[]), Some(Role::Phone));
        assert_eq!(
            role_for_key("fields[First Name]", &[], &[]),
            Some(Role::FirstName)
        );
        assert_eq!(role_for_key("ZIP", &[], &[]), Some(Role::PostalCode));
        assert_eq!(role_for_key("company", &[], &["company"]), None);
        assert_eq!(role_for_key("page_name", &[], &[]), None);
        assert_eq!(
            role_for_key("lead_contact", &[("lead_contact", Role::Phone)], &[]),
            Some(Role::Phone)
        );
    }

    #[test]
    fn labels_from_keys() {
        assert_eq!(humanize("studentsName"), "Students Name");
        assert_eq!(humanize("customer_email"), "Customer Email");
        assert_eq!(humanize("2Cast"), "2 Cast");
        assert_eq!(humanize("typeA"), "Type A");
        assert_eq!(humanize("visitor.name"), "Visitor Name");
    }

    #[test]
    fn one_line_address() {
        assert_eq!(
            split_one_line_address("123 Example St, Prescott, AZ 86301"),
            Some((
                "123 Example St".into(),
                "Prescott".into(),
                "AZ".into(),
                "86301".into()
            ))
        );
        assert_eq!(split_one_line_address("somewhere over the rainbow"), None);
    }
}
