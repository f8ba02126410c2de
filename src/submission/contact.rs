//! Contact value types parsed at the edge: [`Email`], [`Phone`] and person-name helpers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A syntactically valid, trimmed, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why a value is not an email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid email address: {0}")]
pub struct InvalidEmail(pub &'static str);

impl Email {
    /// Parses an email address: trims, drops a `mailto:` prefix, lower-cases, and checks
    /// `local@domain.tld` with a domain of letters, digits and `-` labels.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let trimmed = raw.trim();
        let trimmed = trimmed
            .strip_prefix("mailto:")
            .or_else(|| trimmed.strip_prefix("MAILTO:"))
            .unwrap_or(trimmed)
            .trim();
        let lower = trimmed.to_lowercase();
        let (local, domain) = lower.split_once('@').ok_or(InvalidEmail("no @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(InvalidEmail("the part before @ is empty or too long"));
        }
        if lower.len() > 254 {
            return Err(InvalidEmail("longer than 254 characters"));
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok {
            return Err(InvalidEmail("the part before @ has characters not allowed"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(InvalidEmail("the domain has no dot"));
        }
        let labels_ok = labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        let tld_ok = labels
            .last()
            .is_some_and(|t| t.len() >= 2 && !t.chars().all(|c| c.is_ascii_digit()));
        if !labels_ok || !tld_ok {
            return Err(InvalidEmail("the domain is not a valid host name"));
        }
        Ok(Self(lower))
    }

    /// Whether `raw` looks like a lone email address (used to detect email answers by shape).
    pub fn looks_like(raw: &str) -> bool {
        let t = raw.trim();
        !t.contains(char::is_whitespace) && t.contains('@') && Self::parse(t).is_ok()
    }

    /// The address as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid phone number in E.164 form (`+14155550123`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

/// Why a value is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPhone {
    /// The text could not be read as a phone number at all.
    #[error("not a phone number: {0}")]
    Unparsable(String),
    /// It parsed, but no such number exists in the numbering plan of its country.
    #[error("not a valid number for its country (check the digits or the country code)")]
    NotValid,
    /// The default country is not an ISO 3166 alpha-2 code phonenumber knows.
    #[error("unknown default country `{0}`; use an ISO 3166 alpha-2 code such as US or GB")]
    UnknownCountry(String),
}

/// Parses an ISO 3166 alpha-2 country code (`US`, `gb`) for phone parsing.
pub fn country_id(code: &str) -> Result<phonenumber::country::Id, InvalidPhone> {
    code.trim()
        .to_ascii_uppercase()
        .parse::<phonenumber::country::Id>()
        .map_err(|_| InvalidPhone::UnknownCountry(code.to_owned()))
}

impl Phone {
    /// Parses a phone number written in any common way. Numbers without `+country` are read
    /// as numbers of `default_country` (ISO 3166 alpha-2, e.g. `US`). Only numbers valid in
    /// their numbering plan are accepted.
    pub fn parse(raw: &str, default_country: &str) -> Result<Self, InvalidPhone> {
        let country = country_id(default_country)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() || !trimmed.chars().any(|c| c.is_ascii_digit()) {
            return Err(InvalidPhone::Unparsable("no digits".to_owned()));
        }
        // `00` international prefix: read as `+`.
        let normalized = match trimmed.strip_prefix("00") {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => format!("+{rest}"),
            _ => trimmed.to_owned(),
        };
        // An international number names its own country; passing the default region as well
        // made the phonenumber crate call some valid +1 numbers invalid (found by proptest).
        let region = if normalized.starts_with('+') {
            None
        } else {
            Some(country)
        };
        let number = phonenumber::parse(region, &normalized)
            .map_err(|e| InvalidPhone::Unparsable(e.to_string()))?;
        if !phonenumber::is_valid(&number) {
            return Err(InvalidPhone::NotValid);
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Self(e164))
    }

    /// The number in E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = InvalidPhone;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        // Stored values are E.164, so the country only matters for malformed input.
        Self::parse(&value, "US")
    }
}

impl From<Phone> for String {
    fn from(value: Phone) -> Self {
        value.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trims and collapses inner whitespace; `None` when nothing is left.
pub fn clean_text(raw: &str) -> Option<String> {
    let joined = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// Splits a full name into (first, last). `"Doe, Jane"` is read as last, first; otherwise the
/// first word is the first name and the rest the last name. A single word is a first name.
pub fn split_full_name(full: &str) -> (Option<String>, Option<String>) {
    let Some(full) = clean_text(full) else {
        return (None, None);
    };
    if let Some((last, first)) = full.split_once(',') {
        return (clean_text(first), clean_text(last));
    }
    match full.split_once(' ') {
        Some((first, last)) => (clean_text(first), clean_text(last)),
        None => (Some(full), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Jane.Doe@Example.COM ").unwrap().as_str(),
            "jane.doe@example.com"
        );
        assert!(Email::parse("mailto:a@b.io").is_ok());
        for bad in [
            "", "a", "a@b", "@b.io", "a@.io", "a b@c.io", "a@b..io", "a@-b.io", "a@b.1",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        let p = Phone::parse("(202) 555-0134", "US");
        assert!(p.is_ok(), "{p:?}");
        assert_eq!(
            Phone::parse("9285550142", "US").unwrap().as_str(),
            "+19285550142"
        );
        assert_eq!(
            Phone::parse("+1 408 498 7855", "GB").unwrap().as_str(),
            "+14084987855"
        );
        assert_eq!(
            Phone::parse("020 7946 0018", "GB").unwrap().as_str(),
            "+442079460018"
        );
        assert_eq!(
            Phone::parse("0044 20 7946 0018", "US").unwrap().as_str(),
            "+442079460018"
        );
        assert!(Phone::parse("+458745457845", "US").is_err());
        assert!(Phone::parse("call me", "US").is_err());
        assert!(matches!(
            Phone::parse("1", "XX"),
            Err(InvalidPhone::UnknownCountry(_))
        ));
    }

    #[test]
    fn names() {
        assert_eq!(
            split_full_name("  Jane   Sample "),
            (Some("Jane".into()), Some("Sample".into()))
        );
        assert_eq!(
            split_full_name("Doe, Jane"),
            (Some("Jane".into()), Some("Doe".into()))
        );
        assert_eq!(split_full_name("Cher"), (Some("Cher".into()), None));
        assert_eq!(split_full_name("  "), (None, None));
    }
}
