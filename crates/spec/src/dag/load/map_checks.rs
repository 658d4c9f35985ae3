//! Checks on the data task kinds that serde cannot make: inputs that must be upstream tasks,
//! sizes within the MAP's limits, known activity types, literal windows in order.

use chrono::DateTime;

use super::{Checker, TemplateScope};
use crate::dag::map_kinds::{
    ACTIVITY_TYPES, ActivityExport, ExportSpec, LeadFilter, ListRef, MAX_BATCH_SIZE, ReturnSpec,
    Step, Window,
};
use crate::suggest::did_you_mean;
use crate::template;

pub(super) fn export(c: &mut Checker<'_>, path: &str, spec: &ExportSpec) {
    match spec {
        ExportSpec::Leads(leads) => {
            names(c, &format!("{path}.fields"), "fields", &leads.fields);
            lead_filter(c, &format!("{path}.filter"), &leads.filter);
        }
        ExportSpec::Activities(a) => activities(c, path, a),
    }
}

pub(super) fn lead_filter(c: &mut Checker<'_>, path: &str, filter: &LeadFilter) {
    match filter {
        LeadFilter::UpdatedAt(w) => window(c, &format!("{path}.updated_at"), w),
        LeadFilter::CreatedAt(w) => window(c, &format!("{path}.created_at"), w),
        LeadFilter::StaticList(ListRef::Name(n)) if n.trim().is_empty() => c.at_value(
            &format!("{path}.static_list"),
            "`static_list` needs a list id or name".to_owned(),
        ),
        LeadFilter::StaticList(_) => {}
    }
}

fn window(c: &mut Checker<'_>, path: &str, w: &Window) {
    window_bounds(c, path, &w.since, &w.until);
}

fn window_bounds(c: &mut Checker<'_>, path: &str, since: &str, until: &str) {
    let mut literal = |key: &str, text: &str| {
        let at = format!("{path}.{key}");
        if text.trim().is_empty() {
            c.at_value(&at, format!("`{key}` must not be empty"));
            return None;
        }
        if template::is_template(text) {
            return None;
        }
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t),
            Err(_) => {
                c.at_value(
                    &at,
                    format!("`{key}` must be a timestamp like 2026-01-01T00:00:00Z or a template such as {{{{ data_interval.start }}}}"),
                );
                None
            }
        }
    };
    let since_t = literal("since", since);
    let until_t = literal("until", until);
    if let (Some(s), Some(u)) = (since_t, until_t)
        && s >= u
    {
        c.at_value(
            &format!("{path}.until"),
            "`until` must be after `since`".to_owned(),
        );
    }
}

fn activities(c: &mut Checker<'_>, path: &str, a: &ActivityExport) {
    if a.types.is_empty() {
        c.at_value(
            &format!("{path}.types"),
            "`types` needs at least one activity type".to_owned(),
        );
    }
    for (i, t) in a.types.iter().enumerate() {
        if t.id().is_none() {
            let name = match t {
                crate::dag::map_kinds::ActivityTypeRef::Name(n) => n.as_str(),
                crate::dag::map_kinds::ActivityTypeRef::Id(_) => "",
            };
            let hint = did_you_mean(name, ACTIVITY_TYPES.iter().map(|(n, _)| *n));
            c.at_value(
                &format!("{path}.types[{i}]"),
                format!("unknown activity type `{name}`{hint} (give a known name or the MAP's numeric id)"),
            );
        }
    }
    window_bounds(c, path, &a.since, &a.until);
}

pub(super) fn transform(
    c: &mut Checker<'_>,
    path: &str,
    steps: &[Step],
    depends_on: &[String],
    scope: &TemplateScope<'_>,
) {
    if steps.iter().all(|s| matches!(s, Step::From(_))) {
        c.at_value(path, "a transform needs at least one step".to_owned());
        return;
    }
    if !matches!(steps.first(), Some(Step::From(_))) && depends_on.is_empty() {
        c.at_value(
            path,
            "a transform needs an input: depend on the task whose rows it reads, or start with `- from: <task>`".to_owned(),
        );
    }
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{path}[{i}].{}", step.name());
        match step {
            Step::From(input) => {
                if i > 0 {
                    c.at_key(&at, "`from` can only be the first step".to_owned());
                }
                upstream(c, &at, input, scope);
            }
            Step::Select(cols) => names(c, &at, "select", cols),
            Step::Rename(map) => {
                if map.is_empty() {
                    c.at_value(
                        &at,
                        "`rename` needs at least one `old: new` pair".to_owned(),
                    );
                }
            }
            Step::Normalize(map) => {
                if map.is_empty() {
                    c.at_value(
                        &at,
                        "`normalize` needs at least one `column: normalizer`".to_owned(),
                    );
                }
            }
            Step::Derive(map) => {
                if map.is_empty() {
                    c.at_value(
                        &at,
                        "`derive` needs at least one `column: expression`".to_owned(),
                    );
                }
                for (col, expr) in map {
                    if expr.trim().is_empty() {
                        c.at_value(&format!("{at}.{col}"), "the expression is empty".to_owned());
                    }
                }
            }
            Step::Dedupe(d) => names(c, &format!("{at}.key"), "key", d.key.as_slice()),
            Step::Join(j) => {
                upstream(c, &format!("{at}.input"), &j.input, scope);
                if j.on.pairs().is_empty() {
                    c.at_value(&format!("{at}.on"), "`on` needs a key column".to_owned());
                }
            }
            Step::Filter(text) | Step::Sql(text) => {
                if text.trim().is_empty() {
                    c.at_value(&at, format!("`{}` must not be empty", step.name()));
                }
            }
        }
    }
}

pub(super) fn return_(
    c: &mut Checker<'_>,
    path: &str,
    spec: &ReturnSpec,
    depends_on: &[String],
    scope: &TemplateScope<'_>,
) {
    names(c, &format!("{path}.fields"), "fields", &spec.fields);
    if spec.lookup.trim().is_empty() {
        c.at_value(
            &format!("{path}.lookup"),
            "`lookup` must name a field".to_owned(),
        );
    } else if spec.fields.contains(&spec.lookup) {
        c.at_value(
            &format!("{path}.fields"),
            format!(
                "`{}` is the lookup field; list only the fields to write",
                spec.lookup
            ),
        );
    }
    if spec.batch_size == 0 || spec.batch_size > MAX_BATCH_SIZE {
        c.at_value(
            &format!("{path}.batch_size"),
            format!(
                "`batch_size` must be between 1 and {MAX_BATCH_SIZE} (the MAP's limit per call)"
            ),
        );
    }
    match &spec.from {
        Some(from) => upstream(c, &format!("{path}.from"), from, scope),
        None if depends_on.is_empty() => c.at_value(
            path,
            "a return needs rows to send: depend on the task that produced them, or name it in `from`".to_owned(),
        ),
        None => {}
    }
}

/// `input` must be a task this one runs after.
fn upstream(c: &mut Checker<'_>, path: &str, input: &str, scope: &TemplateScope<'_>) {
    let Some(ancestors) = scope.ancestors() else {
        return;
    };
    if ancestors.contains(&input) {
        return;
    }
    let message = if scope.all_tasks.contains(&input) {
        format!(
            "`{input}` does not run before `{}`: add it to `depends_on` to read its rows",
            scope.task
        )
    } else {
        let hint = c.hint(input, scope.all_tasks.iter().copied());
        format!("no task `{input}` in this DAG{hint}")
    };
    c.at_value(path, message);
}

/// A non-empty list of distinct, non-blank names.
fn names(c: &mut Checker<'_>, path: &str, key: &str, list: &[String]) {
    if list.is_empty() {
        c.at_value(path, format!("`{key}` needs at least one name"));
        return;
    }
    for (i, name) in list.iter().enumerate() {
        if name.trim().is_empty() {
            c.at_value(
                &format!("{path}[{i}]"),
                "a name must not be blank".to_owned(),
            );
        } else if list[..i].contains(name) {
            c.at_value(&format!("{path}[{i}]"), format!("`{name}` is listed twice"));
        }
    }
}
