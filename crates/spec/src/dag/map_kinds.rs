//! The settings of the data task kinds — `export`, `transform`, `return` and a check's `map`
//! source — as written in YAML. The same types are the resolved model: serde rejects unknown
//! keys and wrong shapes, `dag::load` checks the rest (inputs upstream, sizes, names).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// `export:` — read records from the MAP into a staged dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum ExportSpec {
    /// Leads (people) with the listed fields, selected by one filter.
    Leads(LeadExport),
    /// Activities of the listed types in a time window.
    Activities(ActivityExport),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadExport {
    /// The MAP's field names (REST names, e.g. `leadScore`); they become the dataset's columns.
    pub fields: Vec<String>,
    pub filter: LeadFilter,
}

/// Which leads: exactly one filter, as the MAP's bulk export takes exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawLeadFilter")]
pub enum LeadFilter {
    /// Leads changed in the window (any field).
    UpdatedAt(Window),
    /// Leads created in the window.
    CreatedAt(Window),
    /// Members of a static list, by id or name.
    StaticList(ListRef),
}

/// `LeadFilter` as written: a mapping with exactly one key (YAML has no other spelling of an
/// enum that reads naturally).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeadFilter {
    updated_at: Option<Window>,
    created_at: Option<Window>,
    static_list: Option<ListRef>,
}

impl TryFrom<RawLeadFilter> for LeadFilter {
    type Error = String;

    fn try_from(r: RawLeadFilter) -> Result<Self, String> {
        match (r.updated_at, r.created_at, r.static_list) {
            (Some(w), None, None) => Ok(LeadFilter::UpdatedAt(w)),
            (None, Some(w), None) => Ok(LeadFilter::CreatedAt(w)),
            (None, None, Some(l)) => Ok(LeadFilter::StaticList(l)),
            _ => Err("a filter needs exactly one of `updated_at`, `created_at` or `static_list` (the MAP's bulk export takes one filter)".to_owned()),
        }
    }
}

/// A time window `[since, until)`; both are templates rendering to RFC 3339 timestamps.
/// Windows longer than the MAP allows per job (31 days) are split into several jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub since: String,
    pub until: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ListRef {
    Id(i64),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityExport {
    /// Activity types by name (`fill_out_form`) or the MAP's numeric id.
    pub types: Vec<ActivityTypeRef>,
    pub since: String,
    pub until: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ActivityTypeRef {
    Id(i64),
    Name(String),
}

/// Marketo's standard activity types, by the names DAGs use.
pub const ACTIVITY_TYPES: &[(&str, i64)] = &[
    ("visit_web_page", 1),
    ("fill_out_form", 2),
    ("click_link", 3),
    ("send_email", 6),
    ("email_delivered", 7),
    ("email_bounced", 8),
    ("unsubscribe_email", 9),
    ("open_email", 10),
    ("click_email", 11),
    ("new_lead", 12),
    ("change_data_value", 13),
    ("change_score", 22),
];

impl ActivityTypeRef {
    /// The MAP's id of this type, if the name is known.
    pub fn id(&self) -> Option<i64> {
        match self {
            ActivityTypeRef::Id(id) => Some(*id),
            ActivityTypeRef::Name(name) => ACTIVITY_TYPES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| *id),
        }
    }
}

/// One step of a `transform:`; the steps run in order, each over the previous one's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawStep")]
pub enum Step {
    /// The input the steps start from (only as the first step; default: the first upstream
    /// task with a dataset).
    From(String),
    /// Keep only these columns, in this order.
    Select(Vec<String>),
    /// Rename columns: `old: new`.
    Rename(IndexMap<String, String>),
    /// Keep the rows for which this SQL condition holds.
    Filter(String),
    /// Clean up values column by column: `email: lower_trim`, `country: iso_alpha2`, or a list.
    Normalize(IndexMap<String, OneOrMany<Normalizer>>),
    /// Keep one row per key.
    Dedupe(Dedupe),
    /// Add or replace columns computed by SQL expressions: `name: expression`.
    Derive(IndexMap<String, String>),
    /// Add columns from another input, matched on keys.
    Join(Join),
    /// A SQL query over `{{ previous }}` (the rows so far) and `{{ input.<task> }}`.
    Sql(String),
}

/// A step as written: a mapping with exactly one key, the step's kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    from: Option<String>,
    select: Option<Vec<String>>,
    rename: Option<IndexMap<String, String>>,
    filter: Option<String>,
    normalize: Option<IndexMap<String, OneOrMany<Normalizer>>>,
    dedupe: Option<Dedupe>,
    derive: Option<IndexMap<String, String>>,
    join: Option<Join>,
    sql: Option<String>,
}

impl TryFrom<RawStep> for Step {
    type Error = String;

    fn try_from(r: RawStep) -> Result<Self, String> {
        let steps: Vec<Step> = [
            r.from.map(Step::From),
            r.select.map(Step::Select),
            r.rename.map(Step::Rename),
            r.filter.map(Step::Filter),
            r.normalize.map(Step::Normalize),
            r.dedupe.map(Step::Dedupe),
            r.derive.map(Step::Derive),
            r.join.map(Step::Join),
            r.sql.map(Step::Sql),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[Step; 1]>::try_from(steps) {
            Ok([step]) => Ok(step),
            Err(_) => Err("a step has exactly one of `from`, `select`, `rename`, `filter`, `normalize`, `dedupe`, `derive`, `join`, `sql`".to_owned()),
        }
    }
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::From(_) => "from",
            Step::Select(_) => "select",
            Step::Rename(_) => "rename",
            Step::Filter(_) => "filter",
            Step::Normalize(_) => "normalize",
            Step::Dedupe(_) => "dedupe",
            Step::Derive(_) => "derive",
            Step::Join(_) => "join",
            Step::Sql(_) => "sql",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A value clean-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalizer {
    /// Remove surrounding whitespace.
    Trim,
    Lower,
    Upper,
    /// Trim and lower-case (emails).
    LowerTrim,
    /// Trim and collapse inner runs of whitespace to one space.
    Whitespace,
    /// Capitalise each word (names).
    TitleCase,
    /// Blank text becomes null.
    NullIfBlank,
    /// Phone numbers to E.164 (`+15551234567`); ten-digit numbers are taken as North American;
    /// what cannot be a phone number becomes null.
    E164,
    /// Country names, codes and common spellings to ISO 3166 alpha-2 (`USA` → `US`);
    /// unknown values become null.
    IsoAlpha2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// The column(s) that identify a duplicate.
    pub key: OneOrMany<String>,
    #[serde(default)]
    pub keep: Keep,
    /// The column that orders duplicates (default `updatedAt` for `latest`, `id` for `first`).
    #[serde(default)]
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The row with the greatest `by` value.
    #[default]
    Latest,
    /// The row with the smallest `by` value.
    First,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The upstream task whose dataset is joined.
    pub input: String,
    /// The key: a column name both sides share, or `left_column: right_column` pairs.
    pub on: JoinOn,
    /// Columns to take from the joined input (default: all but the key).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub how: JoinHow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JoinOn {
    Same(String),
    Pairs(IndexMap<String, String>),
}

impl JoinOn {
    /// (left column, right column) pairs.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        match self {
            JoinOn::Same(c) => vec![(c.as_str(), c.as_str())],
            JoinOn::Pairs(m) => m.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinHow {
    /// Every row stays; unmatched rows get nulls (a lookup).
    #[default]
    Left,
    /// Only matched rows stay.
    Inner,
}

/// `return:` — send a dataset's rows back to the MAP, with a receipt per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnSpec {
    pub object: ReturnObject,
    /// The field that finds the record in the MAP (`id` updates only; `email` upserts).
    #[serde(default = "default_lookup")]
    pub lookup: String,
    /// The fields written (besides the lookup field).
    pub fields: Vec<String>,
    /// The upstream task whose dataset is sent (default: the first upstream task).
    #[serde(default)]
    pub from: Option<String>,
    /// Records per sync call (at most 300, the MAP's limit).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    #[serde(default)]
    pub mode: ReturnMode,
    /// Record each row's values before the write, so the return can be reverted.
    #[serde(default = "default_true")]
    pub snapshot: bool,
    /// What to do when the dataset repeats a lookup key (a key is never sent twice).
    #[serde(default)]
    pub on_duplicate_key: OnDuplicateKey,
    /// Send nulls and empty strings over the MAP's current values (default: never; a null
    /// field is left out of what is sent).
    #[serde(default)]
    pub write_nulls: bool,
}

/// A return's answer to a dataset that repeats a lookup key. Keys compare as the return
/// matches them: emails lower-cased and trimmed, other fields as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicateKey {
    /// Fail the task, naming the repeated keys and how often each occurs.
    #[default]
    Fail,
    /// Send the first row of each key, in the dataset's stored order.
    First,
    /// Send the last row of each key, in the dataset's stored order.
    Last,
}

fn default_lookup() -> String {
    "email".to_owned()
}

fn default_batch_size() -> u32 {
    300
}

fn default_true() -> bool {
    true
}

/// The most records one sync call takes.
pub const MAX_BATCH_SIZE: u32 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnObject {
    Leads,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnMode {
    /// Sync calls for small datasets, bulk import for large ones.
    #[default]
    Auto,
    /// Sync calls of `batch_size` records.
    Sync,
    /// Bulk import files (up to 10 MB each).
    Import,
}

/// Datasets up to this many rows go by sync calls in `auto` mode.
pub const AUTO_SYNC_MAX_ROWS: u64 = 3_000;

/// A check's `map:` source: how many leads the MAP holds that match a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapCount {
    pub object: ReturnObject,
    pub filter: LeadFilter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_refuses_repeated_keys_and_withholds_nulls_unless_told() {
        let spec: ReturnSpec =
            yaml_serde::from_str("{ object: leads, fields: [country] }").expect("defaults");
        assert_eq!(spec.on_duplicate_key, OnDuplicateKey::Fail);
        assert!(!spec.write_nulls);
        let spec: ReturnSpec = yaml_serde::from_str(
            "{ object: leads, fields: [country], on_duplicate_key: last, write_nulls: true }",
        )
        .expect("options");
        assert_eq!(spec.on_duplicate_key, OnDuplicateKey::Last);
        assert!(spec.write_nulls);
        let wrong = yaml_serde::from_str::<ReturnSpec>(
            "{ object: leads, fields: [country], on_duplicate_key: newest }",
        );
        assert!(
            wrong.is_err_and(|e| e.to_string().contains("first")),
            "the choices are named"
        );
    }
}
