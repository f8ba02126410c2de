//! Plan steps as GHL request bodies: where the mapping's plan meets the GHL client's types.

use crate::domain::plan::{ContactFields, CustomFieldValue};
use crate::ghl::types::{
    ContactProperties, CreateContactRequest, CustomFieldInput, UpsertContactRequest,
};
use crate::submission::ContactField;

/// The upsert body for a plan's contact fields in `location_id`.
pub fn upsert_request(location_id: &str, fields: &ContactFields) -> UpsertContactRequest {
    let (contact, company_name) = properties(fields);
    UpsertContactRequest {
        location_id: location_id.to_owned(),
        gender: None,
        company_name,
        create_new_if_duplicate_allowed: None,
        contact,
    }
}

/// The create body (`POST /contacts/`) for a contact known by name, carrying `marker_tag` so
/// it can be found again after a lost answer.
pub fn create_request(
    location_id: &str,
    fields: &ContactFields,
    marker_tag: &str,
) -> CreateContactRequest {
    let (mut contact, company_name) = properties(fields);
    contact.tags = Some(vec![marker_tag.to_owned()]);
    CreateContactRequest {
        location_id: location_id.to_owned(),
        gender: None,
        company_name,
        contact,
    }
}

/// The contact properties and the company name (sent beside them) of a plan's fields.
fn properties(fields: &ContactFields) -> (ContactProperties, Option<String>) {
    let mut contact = ContactProperties {
        source: fields.source.clone(),
        custom_fields: fields.custom_fields.iter().map(custom_field).collect(),
        ..ContactProperties::default()
    };
    let mut company_name = None;
    for (field, value) in &fields.values {
        let slot = match field {
            ContactField::Email => &mut contact.email,
            ContactField::Phone => &mut contact.phone,
            ContactField::FirstName => &mut contact.first_name,
            ContactField::LastName => &mut contact.last_name,
            ContactField::Name => &mut contact.name,
            // The upsert body carries the company beside the contact properties.
            ContactField::CompanyName => &mut company_name,
            ContactField::Address1 => &mut contact.address1,
            ContactField::City => &mut contact.city,
            ContactField::State => &mut contact.state,
            ContactField::PostalCode => &mut contact.postal_code,
            ContactField::Country => &mut contact.country,
            ContactField::Website => &mut contact.website,
            ContactField::Timezone => &mut contact.timezone,
        };
        *slot = Some(value.clone());
    }
    (contact, company_name)
}

fn custom_field(v: &CustomFieldValue) -> CustomFieldInput {
    CustomFieldInput {
        id: v.id.clone(),
        key: v.key.clone(),
        field_value: v.value.clone(),
    }
}
