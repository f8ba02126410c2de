//! Plan steps as GHL request bodies: where the mapping's plan meets the GHL client's types.

use crate::ghl::types::{ContactProperties, CustomFieldInput, UpsertContactRequest};
use crate::mapping::plan::{ContactFields, CustomFieldValue};

/// The upsert body for a plan's contact fields in `location_id`.
pub fn upsert_request(location_id: &str, fields: &ContactFields) -> UpsertContactRequest {
    UpsertContactRequest {
        location_id: location_id.to_owned(),
        gender: None,
        company_name: fields.company_name.clone(),
        create_new_if_duplicate_allowed: None,
        contact: ContactProperties {
            first_name: fields.first_name.clone(),
            last_name: fields.last_name.clone(),
            name: fields.name.clone(),
            email: fields.email.clone(),
            phone: fields.phone.clone(),
            address1: fields.address1.clone(),
            city: fields.city.clone(),
            state: fields.state.clone(),
            postal_code: fields.postal_code.clone(),
            website: fields.website.clone(),
            timezone: fields.timezone.clone(),
            source: fields.source.clone(),
            country: fields.country.clone(),
            custom_fields: fields.custom_fields.iter().map(custom_field).collect(),
            ..ContactProperties::default()
        },
    }
}

fn custom_field(v: &CustomFieldValue) -> CustomFieldInput {
    CustomFieldInput {
        id: v.id.clone(),
        key: v.key.clone(),
        field_value: v.value.clone(),
    }
}
