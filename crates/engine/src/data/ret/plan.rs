//! What a return sends of one row: the fields whose values differ from the record's current
//! ones (from the values-before snapshot), never a null or empty value over a value the MAP
//! holds unless the task says `write_nulls: true`, and nothing at all for a record that
//! already holds every value.

use serde_json::{Map, Value};

/// The plan for one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RowPlan {
    /// The record holds every value already: nothing is sent.
    Unchanged {
        /// Fields left out because the row had no value for them (the record has one).
        withheld: Vec<String>,
    },
    /// Send `record` (the lookup field and the fields to write).
    Send {
        record: Map<String, Value>,
        /// Fields left out because the row had no value for them (the record has one).
        withheld: Vec<String>,
    },
}

/// What the return knows about a row's record before the write.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Current<'a> {
    /// No snapshot was taken: nothing to compare against.
    Unknown,
    /// The MAP has no record with this key: it will be created.
    Absent,
    /// The record's values before the write (a field the MAP left out is null).
    Values(&'a Map<String, Value>),
}

/// Plan `row` (the lookup field and the fields of the return, as staged).
pub(crate) fn plan(
    lookup: &str,
    fields: &[String],
    row: &Map<String, Value>,
    current: Current<'_>,
    write_nulls: bool,
) -> RowPlan {
    let mut record = Map::new();
    record.insert(
        lookup.to_owned(),
        row.get(lookup).cloned().unwrap_or(Value::Null),
    );
    let mut withheld = Vec::new();
    for f in fields.iter().filter(|f| *f != lookup) {
        let new = row.get(f).unwrap_or(&Value::Null);
        match current {
            Current::Values(now) => {
                let old = now.get(f).unwrap_or(&Value::Null);
                if is_empty(new) && !write_nulls {
                    if !is_empty(old) {
                        withheld.push(f.clone());
                    }
                    continue;
                }
                if same(new, old) {
                    continue;
                }
                record.insert(f.clone(), new.clone());
            }
            // A new record: a field without a value is simply not set.
            Current::Absent if is_empty(new) => {}
            // No snapshot: a null is never written unless asked for.
            Current::Unknown if is_empty(new) && !write_nulls => {}
            Current::Absent | Current::Unknown => {
                record.insert(f.clone(), new.clone());
            }
        }
    }
    match current {
        Current::Values(_) if record.len() == 1 => RowPlan::Unchanged { withheld },
        _ => RowPlan::Send { record, withheld },
    }
}

/// Null, or a string of nothing but whitespace.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Whether a staged value and a MAP value are the same value: both empty;
/// numbers equal as numbers (a number against a numeric string too: `50` = `"50"` =
/// `50.0`; two strings compare as text, so `"04828"` ≠ `"4828"`); timestamps equal as
/// instants (`2024-01-31T12:00:00+00:00` = `2024-01-31T12:00:00Z`); booleans against
/// `"true"`/`"false"`; other text exactly — an email written in another case or with spaces
/// around it is a change (normalising it is what a clean-up DAG is for). The lookup field is
/// never compared: it is what finds the record.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    if is_empty(a) || is_empty(b) {
        return is_empty(a) && is_empty(b);
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_eq(x.as_f64(), y.as_f64()),
        (Value::Number(x), Value::String(s)) | (Value::String(s), Value::Number(x)) => {
            num_eq(x.as_f64(), s.trim().parse::<f64>().ok())
        }
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Bool(x), Value::String(s)) | (Value::String(s), Value::Bool(x)) => {
            s.trim().eq_ignore_ascii_case(&x.to_string())
        }
        (Value::String(x), Value::String(y)) => {
            if x == y {
                return true;
            }
            match (instant(x), instant(y)) {
                (Some(p), Some(q)) => p == q,
                _ => false,
            }
        }
        (x, y) => x == y,
    }
}

fn num_eq(a: Option<f64>, b: Option<f64>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x == y)
}

fn instant(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn fields(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn values_compare_as_text_the_same_way_on_both_sides() {
        assert!(same(&json!(50), &json!("50")));
        assert!(same(&json!(50), &json!(50.0)));
        assert!(!same(&json!(50), &json!(51)));
        assert!(!same(&json!("04828"), &json!("4828")));
        assert!(same(
            &json!("2024-01-31T12:00:00+00:00"),
            &json!("2024-01-31T12:00:00Z")
        ));
        assert!(!same(&json!(" A@X.io"), &json!("a@x.io")));
        assert!(!same(&json!("acme"), &json!("Acme")));
        assert!(same(&json!(""), &json!(null)));
        assert!(!same(&json!(null), &json!("Acme")));
        assert!(same(&json!(true), &json!("true")));
    }

    #[test]
    fn a_null_never_goes_over_a_value_unless_asked() {
        let row = map(json!({"email": "a@x.io", "country": null, "phone": "1"}));
        let now = map(json!({"id": 7, "email": "a@x.io", "country": "Narnia", "phone": "2"}));
        let f = fields(&["country", "phone"]);
        assert_eq!(
            plan("email", &f, &row, Current::Values(&now), false),
            RowPlan::Send {
                record: map(json!({"email": "a@x.io", "phone": "1"})),
                withheld: fields(&["country"]),
            }
        );
        assert_eq!(
            plan("email", &f, &row, Current::Values(&now), true),
            RowPlan::Send {
                record: map(json!({"email": "a@x.io", "country": null, "phone": "1"})),
                withheld: vec![],
            }
        );
        // A new record: no null is sent; without a snapshot neither, unless asked for.
        let sent = map(json!({"email": "a@x.io", "phone": "1"}));
        assert_eq!(
            plan("email", &f, &row, Current::Absent, true),
            RowPlan::Send {
                record: sent.clone(),
                withheld: vec![]
            }
        );
        assert_eq!(
            plan("email", &f, &row, Current::Unknown, false),
            RowPlan::Send {
                record: sent,
                withheld: vec![]
            }
        );
    }

    #[test]
    fn a_record_holding_every_value_is_not_sent() {
        let row = map(json!({"id": 7, "leadScore": 50, "country": null}));
        let now = map(json!({"id": 7, "leadScore": "50", "country": "Narnia"}));
        assert_eq!(
            plan(
                "id",
                &fields(&["leadScore", "country"]),
                &row,
                Current::Values(&now),
                false
            ),
            RowPlan::Unchanged {
                withheld: fields(&["country"])
            }
        );
        // Only the fields that change are sent.
        let row = map(json!({"id": 7, "leadScore": 51, "country": "Narnia"}));
        assert_eq!(
            plan(
                "id",
                &fields(&["leadScore", "country"]),
                &row,
                Current::Values(&now),
                false
            ),
            RowPlan::Send {
                record: map(json!({"id": 7, "leadScore": 51})),
                withheld: vec![]
            }
        );
    }
}
