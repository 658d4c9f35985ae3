//! Form fills: a visitor submits a form (by default "Contact Sales") and the sandbox does what
//! Marketo does with a form submission: it finds the lead by email (the one updated last when
//! the address is there more than once) and updates it, or creates one, then logs a "Fill Out
//! Form" activity (type 2, the form's name as primary attribute value; a created lead also gets
//! its "New Lead" activity) and, when a webhook is set, calls it with the lead's tokens.
//!
//! Where the sandbox simplifies: there are no cookies (Marketo matches a cookied visitor
//! first), every field given is written (Marketo forms write what they ask), and a field left
//! out keeps the lead's value or, for a lead the fill creates, is made up from the seed.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::{self, ActivityDetails, FIELDS, Value};
use crate::delivery::{self, Delivery};
use crate::state::AppState;
use crate::store::WriteVia;

/// The form filled when the fill names none.
pub const DEFAULT_FORM: &str = "Contact Sales";

/// Largest fill body taken.
const MAX_BODY: usize = 16 * 1024;

/// What a visitor submits. Every field is optional: a field left out (or `null`) keeps the
/// lead's value, or is made up from the seed when the fill creates the lead; `formName`
/// defaults to "Contact Sales".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormFill {
    /// The address the lead is found by.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Country, as the form's picklist or the visitor wrote it.
    pub country: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// The form's name.
    pub form_name: Option<String>,
}

/// What a fill did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormFillOutcome {
    /// The lead created or updated.
    pub lead_id: u32,
    /// Whether the fill created it.
    pub created: bool,
    /// This fill's own id (a UUID), sent as the webhook's `Idempotency-Key`.
    pub fill_id: String,
    /// The form filled.
    pub form_name: String,
    /// When (the sandbox clock).
    #[serde(serialize_with = "rfc3339_secs")]
    pub filled_at: DateTime<Utc>,
    /// The webhook call, or `None` when no webhook is set.
    pub webhook: Option<Delivery>,
}

fn rfc3339_secs<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::iso(*t))
}

/// Why a fill was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FormError {
    /// The field at fault (`body` for the body as a whole).
    pub field: &'static str,
    /// What is wrong, and what to do.
    pub reason: String,
}

fn refused(field: &'static str, reason: impl Into<String>) -> FormError {
    FormError {
        field,
        reason: reason.into(),
    }
}

/// A fill applied: the outcome so far and the webhook's body.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) outcome: FormFillOutcome,
    pub(crate) payload: serde_json::Value,
}

/// The submitted fields: (lead field index, JSON name, value), email first.
type Fields = Vec<(usize, &'static str, String)>;

/// Checks every given field: not blank, one line, within the field's length, and an email
/// that looks like an address.
fn checked(fill: &FormFill) -> Result<(Fields, String), FormError> {
    let mut fields = Vec::new();
    for (idx, name, value) in [
        (data::EMAIL, "email", &fill.email),
        (data::FIRST_NAME, "firstName", &fill.first_name),
        (data::LAST_NAME, "lastName", &fill.last_name),
        (data::COUNTRY, "country", &fill.country),
        (data::COMPANY, "company", &fill.company),
        (data::TITLE, "title", &fill.title),
    ] {
        if let Some(v) = value {
            fields.push((idx, name, one_line(name, v, FIELDS[idx].length)?));
        }
    }
    if let Some((_, _, email)) = fields.first().filter(|(i, _, _)| *i == data::EMAIL) {
        let looks_right = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        });
        if !looks_right {
            return Err(refused(
                "email",
                format!("`{email}` is not an address like ann@example.com"),
            ));
        }
    }
    let form = match &fill.form_name {
        Some(f) => one_line("formName", f, Some(255))?,
        None => DEFAULT_FORM.to_owned(),
    };
    Ok((fields, form))
}

/// `value` trimmed, refused when blank, multi-line or longer than `max` characters.
fn one_line(name: &'static str, value: &str, max: Option<u32>) -> Result<String, FormError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(refused(
            name,
            "it is blank; leave it out (or null) to keep the lead's value or have one made up",
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(refused(
            name,
            "it holds a control character (a line break?); form fields are one line",
        ));
    }
    let max = usize::try_from(max.unwrap_or(255)).unwrap_or(255);
    if v.chars().count() > max {
        return Err(refused(
            name,
            format!("it is longer than the {max} characters the field holds"),
        ));
    }
    Ok(v.to_owned())
}

/// The segment of Marketo segmentation "Persona" a title falls in: every lead is in exactly
/// one segment, `Default` when no rule matches (here: no title).
pub(crate) fn persona(title: Option<&str>) -> &'static str {
    let Some(t) = title.map(str::to_ascii_lowercase) else {
        return "Default";
    };
    let words: Vec<&str> = t
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if [
        "ceo",
        "cmo",
        "cfo",
        "cto",
        "coo",
        "vp",
        "chief",
        "president",
        "founder",
        "head",
    ]
    .iter()
    .any(|w| has(w))
        || t.contains("vice president")
    {
        "Executive"
    } else if ["director", "manager", "lead", "supervisor"]
        .iter()
        .any(|w| has(w))
    {
        "Manager"
    } else if words.is_empty() {
        "Default"
    } else {
        "Practitioner"
    }
}

fn text(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => json!(s.as_ref()),
        Value::Null => serde_json::Value::Null,
        other => other.to_json(),
    }
}

/// Applies `fill` to the lead database and logs its activities; the webhook is not called.
pub(crate) fn apply(state: &AppState, fill: &FormFill) -> Result<Applied, FormError> {
    let (given, form_name) = checked(fill)?;
    let number = state.hooks.next_fill();
    let source = state.next_seq();
    let filled_at = state.clock.now();
    let now = filled_at.timestamp();
    let fill_id = uuid::Uuid::new_v4().to_string();
    let mut store = state.write_store();
    let visitor = store.generator().visitor(number);
    let email = given
        .iter()
        .find(|(i, _, _)| *i == data::EMAIL)
        .map_or(visitor.email.as_str(), |(_, _, e)| e.as_str());
    // Found and created under one write lock: two fills of a new address make one lead.
    let existing = store.latest_by_email(email);
    let mut submitted = given;
    if existing.is_none() {
        let v = visitor;
        for (idx, name, made_up) in [
            (data::EMAIL, "email", v.email),
            (data::FIRST_NAME, "firstName", v.first_name),
            (data::LAST_NAME, "lastName", v.last_name),
            (data::COUNTRY, "country", v.country),
            (data::COMPANY, "company", v.company),
            (data::TITLE, "title", v.title),
        ] {
            if !submitted.iter().any(|(i, _, _)| *i == idx) {
                submitted.push((idx, name, made_up));
            }
        }
        submitted.sort_by_key(|(i, _, _)| *i);
    }
    let values: Vec<(usize, Value)> = submitted
        .iter()
        .map(|(i, _, v)| (*i, Value::Str(v.as_str().into())))
        .collect();
    let write = (WriteVia::Form, source);
    let (lead_id, created) = match existing {
        Some(id) => {
            store.update(id, values, now, write);
            (id, false)
        }
        None => (store.create(values, now, write), true),
    };
    if created {
        let attributes = json!({"Source Type": "Web form fillout", "Form Name": form_name});
        store.add_activity(
            lead_id,
            12,
            now,
            ActivityDetails {
                campaign_id: None,
                primary_attribute_value_id: None,
                primary_attribute_value: None,
                attributes: attributes.to_string(),
            },
        );
    }
    let form_id = store.form_id(&form_name);
    let form_fields: serde_json::Map<String, serde_json::Value> = submitted
        .iter()
        .map(|(i, _, v)| (FIELDS[*i].soap.to_owned(), json!(v)))
        .collect();
    let attributes = json!({
        "Form Fields": serde_json::Value::Object(form_fields).to_string(),
        "Webpage ID": 103,
        "Client IP Address": format!("10.2.{}.{}", (number >> 8) % 256, number % 256),
    });
    store.add_activity(
        lead_id,
        2,
        now,
        ActivityDetails {
            campaign_id: None,
            primary_attribute_value_id: Some(form_id),
            primary_attribute_value: Some(form_name.clone()),
            attributes: attributes.to_string(),
        },
    );
    let lead = store.get(lead_id);
    drop(store);
    let field = |idx: usize| {
        lead.as_ref()
            .map_or(serde_json::Value::Null, |l| text(&l[idx]))
    };
    let title = lead.as_ref().and_then(|l| match &l[data::TITLE] {
        Value::Str(s) => Some(s.to_string()),
        _ => None,
    });
    // The payload template, in Marketo's token syntax:
    // {"leadId": {{lead.Id}}, "email": {{lead.Email Address}}, "firstName": {{lead.First Name}},
    //  "lastName": {{lead.Last Name}}, "country": {{lead.Country}}, "company": {{lead.Company
    //  Name}}, "title": {{lead.Job Title}}, "segment": {{segmentation.Persona}},
    //  "formName": {{trigger.Web Form}}, "fillId": …, "filledAt": {{system.dateTime}}}
    // String tokens arrive quoted (as Marketo quotes them); an empty field is `null` here where
    // Marketo would leave an empty token.
    let payload = json!({
        "leadId": lead_id,
        "email": field(data::EMAIL),
        "firstName": field(data::FIRST_NAME),
        "lastName": field(data::LAST_NAME),
        "country": field(data::COUNTRY),
        "company": field(data::COMPANY),
        "title": field(data::TITLE),
        "segment": persona(title.as_deref()),
        "formName": form_name,
        "fillId": fill_id,
        "filledAt": crate::clock::iso(filled_at),
    });
    tracing::info!(lead_id, created, form = %form_name, fill_id, "form filled");
    Ok(Applied {
        outcome: FormFillOutcome {
            lead_id,
            created,
            fill_id,
            form_name,
            filled_at,
            webhook: None,
        },
        payload,
    })
}

/// Applies `fill`, then calls the webhook (when set) and waits for its answer.
pub(crate) async fn fill_and_deliver(
    state: &AppState,
    fill: &FormFill,
) -> Result<FormFillOutcome, FormError> {
    let Applied {
        mut outcome,
        payload,
    } = apply(state, fill)?;
    outcome.webhook = delivery::deliver(
        state,
        &outcome.fill_id,
        outcome.lead_id,
        payload.to_string().into_bytes(),
    )
    .await;
    Ok(outcome)
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route(
        "/_sandbox/forms/fill",
        post(fill_form).layer(DefaultBodyLimit::max(MAX_BODY)),
    )
}

/// `POST /_sandbox/forms/fill`: a fill (JSON [`FormFill`], or no body for a made-up visitor);
/// answers once the webhook (if any) answered or gave up.
async fn fill_form(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let fill = if body.iter().all(u8::is_ascii_whitespace) {
        FormFill::default()
    } else {
        match serde_json::from_slice::<FormFill>(&body) {
            Ok(f) => f,
            Err(e) => {
                let msg = format!(
                    "the body must be a JSON object with any of email, firstName, lastName, country, company, title, formName (strings): {e}"
                );
                return (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
            }
        }
    };
    match fill_and_deliver(&state, &fill).await {
        Ok(outcome) => {
            let mut body = json!(outcome);
            if outcome.webhook.is_none() {
                body["note"] = json!(
                    "no webhook is set: set one with PUT /_sandbox/webhooks or drover mapsim --webhook URL"
                );
            }
            Json(body).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string(), "field": e.field})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_cover_every_title() {
        assert_eq!(persona(Some("VP Marketing")), "Executive");
        assert_eq!(persona(Some("CMO")), "Executive");
        assert_eq!(persona(Some("Head of Growth")), "Executive");
        assert_eq!(persona(Some("Director, Demand Gen")), "Manager");
        assert_eq!(persona(Some("Operations \"Ops\" Lead")), "Manager");
        assert_eq!(persona(Some("Data Analyst")), "Practitioner");
        assert_eq!(persona(Some("Leader of none")), "Practitioner");
        assert_eq!(persona(Some("---")), "Default");
        assert_eq!(persona(None), "Default");
    }

    #[test]
    fn fields_are_checked_before_anything_is_written() {
        let fill = |f: FormFill| checked(&f).map(|(_, form)| form);
        assert_eq!(fill(FormFill::default()), Ok(DEFAULT_FORM.to_owned()));
        for email in [
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "ann@.com",
            "ann@example.",
        ] {
            let r = fill(FormFill {
                email: Some(email.to_owned()),
                ..FormFill::default()
            });
            assert_eq!(r.map_err(|e| e.field), Err("email"), "{email}");
        }
        let r = fill(FormFill {
            first_name: Some("  ".to_owned()),
            ..FormFill::default()
        });
        assert_eq!(r.map_err(|e| e.field), Err("firstName"));
        let r = fill(FormFill {
            company: Some("Acme\nInc".to_owned()),
            ..FormFill::default()
        });
        assert_eq!(r.map_err(|e| e.field), Err("company"));
        let r = fill(FormFill {
            title: Some("é".repeat(256)),
            ..FormFill::default()
        });
        assert_eq!(r.map_err(|e| e.field), Err("title"));
        assert!(
            fill(FormFill {
                title: Some("é".repeat(255)),
                form_name: Some(" Demo Request ".to_owned()),
                ..FormFill::default()
            }) == Ok("Demo Request".to_owned())
        );
    }
}
