//! The lead schema and the deterministic generator of seeded leads and activities.
//!
//! Seeded leads are not stored: lead `id` is a pure function of (seed, id, anchor), regenerated on
//! demand, so a million leads cost almost no memory. Writes are kept as patches in
//! [`crate::store`].

use std::sync::Arc;

use crate::faults::mix;

/// Marketo data types used by the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    Integer,
    Email,
    String,
    Phone,
    Boolean,
    Datetime,
}

impl DataType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DataType::Integer => "integer",
            DataType::Email => "email",
            DataType::String => "string",
            DataType::Phone => "phone",
            DataType::Boolean => "boolean",
            DataType::Datetime => "datetime",
        }
    }
}

/// One lead field as `describe.json` shows it.
#[derive(Debug)]
pub(crate) struct FieldDef {
    pub(crate) id: u32,
    pub(crate) rest: &'static str,
    pub(crate) soap: &'static str,
    pub(crate) display: &'static str,
    pub(crate) data_type: DataType,
    pub(crate) length: Option<u32>,
    pub(crate) read_only: bool,
}

macro_rules! field {
    ($id:expr, $rest:expr, $soap:expr, $display:expr, $dt:ident, $len:expr, $ro:expr) => {
        FieldDef {
            id: $id,
            rest: $rest,
            soap: $soap,
            display: $display,
            data_type: DataType::$dt,
            length: $len,
            read_only: $ro,
        }
    };
}

pub(crate) const ID: usize = 0;
pub(crate) const EMAIL: usize = 1;
pub(crate) const FIRST_NAME: usize = 2;
pub(crate) const LAST_NAME: usize = 3;
pub(crate) const TITLE: usize = 4;
pub(crate) const COMPANY: usize = 5;
pub(crate) const PHONE: usize = 6;
pub(crate) const COUNTRY: usize = 7;
pub(crate) const STATE: usize = 8;
pub(crate) const CITY: usize = 9;
pub(crate) const POSTAL_CODE: usize = 10;
pub(crate) const LEAD_SOURCE: usize = 11;
pub(crate) const LEAD_SCORE: usize = 12;
pub(crate) const SFDC_LEAD_ID: usize = 13;
pub(crate) const SFDC_CONTACT_ID: usize = 14;
pub(crate) const UNSUBSCRIBED: usize = 15;
pub(crate) const CREATED_AT: usize = 16;
pub(crate) const UPDATED_AT: usize = 17;
/// Number of lead fields: the standard ones above, then the custom fields `salesOwner` (the
/// salesperson a lead is routed to) and `nurtureTrack` (the nurture program it is placed in),
/// which routing writes (the `contact_sales` example DAG) and seeded leads leave empty.
pub(crate) const NFIELDS: usize = 20;

/// The lead schema, indexed by the constants above.
pub(crate) static FIELDS: [FieldDef; NFIELDS] = [
    field!(1, "id", "Id", "Id", Integer, None, true),
    field!(
        2,
        "email",
        "Email",
        "Email Address",
        Email,
        Some(255),
        false
    ),
    field!(
        3,
        "firstName",
        "FirstName",
        "First Name",
        String,
        Some(255),
        false
    ),
    field!(
        4,
        "lastName",
        "LastName",
        "Last Name",
        String,
        Some(255),
        false
    ),
    field!(5, "title", "Title", "Job Title", String, Some(255), false),
    field!(
        6,
        "company",
        "Company",
        "Company Name",
        String,
        Some(255),
        false
    ),
    field!(7, "phone", "Phone", "Phone Number", Phone, Some(255), false),
    field!(8, "country", "Country", "Country", String, Some(255), false),
    field!(9, "state", "State", "State", String, Some(255), false),
    field!(10, "city", "City", "City", String, Some(255), false),
    field!(
        11,
        "postalCode",
        "PostalCode",
        "Postal Code",
        String,
        Some(255),
        false
    ),
    field!(
        12,
        "leadSource",
        "LeadSource",
        "Lead Source",
        String,
        Some(255),
        false
    ),
    field!(
        13,
        "leadScore",
        "LeadScore",
        "Lead Score",
        Integer,
        None,
        false
    ),
    field!(
        14,
        "sfdcLeadId",
        "SFDCLeadId",
        "SFDC Lead ID",
        String,
        Some(18),
        true
    ),
    field!(
        15,
        "sfdcContactId",
        "SFDCContactId",
        "SFDC Contact ID",
        String,
        Some(18),
        true
    ),
    field!(
        16,
        "unsubscribed",
        "Unsubscribed",
        "Unsubscribed",
        Boolean,
        None,
        false
    ),
    field!(
        17,
        "createdAt",
        "CreatedAt",
        "Created At",
        Datetime,
        None,
        true
    ),
    field!(
        18,
        "updatedAt",
        "UpdatedAt",
        "Updated At",
        Datetime,
        None,
        true
    ),
    // Custom fields, as an instance adds them (Admin > Field Management): ids from Marketo's
    // custom range, the same name for REST and SOAP, writable, empty until something writes
    // them.
    field!(
        5001,
        "salesOwner",
        "salesOwner",
        "Sales Owner",
        String,
        Some(255),
        false
    ),
    field!(
        5002,
        "nurtureTrack",
        "nurtureTrack",
        "Nurture Track",
        String,
        Some(255),
        false
    ),
];

/// Index of a field by REST name.
pub(crate) fn field_index(rest: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.rest == rest)
}

/// The fields Marketo can find leads by (Describe Lead2's `searchableFields`): of the
/// documented standard ones (`cookies, email, facebookId, id, leadPartitionId, linkedInId,
/// sfdcAccountId, sfdcContactId, sfdcLeadId, sfdcLeadOwnerId, sfdcOpptyId, twitterId`), those
/// this schema has; its custom fields are not searchable (none is until an admin makes it
/// so). Anything else as a lookup or filter is 1011.
pub(crate) const SEARCHABLE: [usize; 4] = [ID, EMAIL, SFDC_LEAD_ID, SFDC_CONTACT_ID];

/// The index of a field leads can be looked up or filtered by.
pub(crate) fn searchable_index(rest: &str) -> Option<usize> {
    field_index(rest).filter(|i| SEARCHABLE.contains(i))
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Bool(bool),
    /// Unix seconds, UTC.
    Time(i64),
    Str(Box<str>),
}

impl Value {
    /// JSON form (times as ISO strings).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Time(t) => {
                let mut s = String::new();
                crate::clock::push_iso(&mut s, *t);
                serde_json::Value::String(s)
            }
            Value::Str(s) => serde_json::Value::String(s.to_string()),
        }
    }

    /// CSV form into `out` (`null` for null, as Marketo writes it).
    pub(crate) fn push_csv(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Null => out.push_str("null"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Time(t) => crate::clock::push_iso(out, *t),
            Value::Str(s) => out.push_str(s),
        }
    }
}

/// Why a raw value does not fit a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Invalid data type in field {display}")]
pub(crate) struct TypeMismatch {
    pub(crate) display: &'static str,
}

/// Converts a text value (CSV cell) for field `idx`. Empty text is `None` (leave unchanged);
/// `NULL`/`null` clears the field.
pub(crate) fn parse_text(idx: usize, raw: &str) -> Result<Option<Value>, TypeMismatch> {
    let def = &FIELDS[idx];
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.eq_ignore_ascii_case("null") {
        return Ok(Some(Value::Null));
    }
    let bad = || TypeMismatch {
        display: def.display,
    };
    Ok(Some(match def.data_type {
        DataType::Integer => Value::Int(t.parse().map_err(|_| bad())?),
        DataType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad()),
        },
        DataType::Datetime => Value::Time(crate::clock::parse_iso(t).ok_or_else(bad)?.timestamp()),
        DataType::Email | DataType::String | DataType::Phone => Value::Str(raw.into()),
    }))
}

/// Converts a JSON value (Sync Leads input) for field `idx`.
pub(crate) fn parse_json(idx: usize, v: &serde_json::Value) -> Result<Value, TypeMismatch> {
    let def = &FIELDS[idx];
    let bad = || TypeMismatch {
        display: def.display,
    };
    Ok(match (def.data_type, v) {
        (_, serde_json::Value::Null) => Value::Null,
        (DataType::Integer, serde_json::Value::Number(n)) => {
            Value::Int(n.as_i64().ok_or_else(bad)?)
        }
        (DataType::Integer, serde_json::Value::String(s)) => {
            Value::Int(s.trim().parse().map_err(|_| bad())?)
        }
        (DataType::Boolean, serde_json::Value::Bool(b)) => Value::Bool(*b),
        (DataType::Boolean | DataType::Datetime, serde_json::Value::String(s)) => {
            parse_text(idx, s)?.unwrap_or(Value::Null)
        }
        (DataType::Email | DataType::String | DataType::Phone, serde_json::Value::String(s)) => {
            Value::Str(s.as_str().into())
        }
        (DataType::Email | DataType::String | DataType::Phone, serde_json::Value::Number(n)) => {
            Value::Str(n.to_string().into())
        }
        _ => return Err(bad()),
    })
}

/// A lead: one value per field of [`FIELDS`].
pub(crate) type Lead = [Value; NFIELDS];

/// A lead with every field null but `id`.
pub(crate) fn blank_lead(id: u32) -> Lead {
    let mut l: Lead = std::array::from_fn(|_| Value::Null);
    l[ID] = Value::Int(i64::from(id));
    l
}

/// Normalised email for lookups: trimmed and lower-cased.
pub(crate) fn normalize_email(e: &str) -> String {
    e.trim().to_ascii_lowercase()
}

/// A tiny deterministic stream of random numbers for one lead.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
    "Tim",
    "Frances",
    "John",
    "Hedy",
    "Donald",
    "Katherine",
    "Edsger",
    "Anita",
    "Guido",
    "Sophie",
    "José",
    "Zoë",
    "Mary",
    "James",
    "Li",
    "Priya",
    "Ahmed",
    "Olga",
    "Hiroshi",
    "Fatima",
    "Lars",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Allen",
    "McCarthy",
    "Lamarr",
    "Knuth",
    "Johnson",
    "Dijkstra",
    "Borg",
    "van Rossum",
    "Wilson",
    "O'Brien",
    "Müller",
    "Smith",
    "Nguyen",
    "Patel",
    "Khan",
    "Ivanova",
    "Tanaka",
    "Haddad",
    "Larsen",
    "García",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "acme.com",
    "globex.com",
    "initech.io",
    "umbrella.co",
    "example.org",
    "hooli.com",
    "stark.de",
    "wayne.co.uk",
    "tyrell.fr",
    "cyberdyne.jp",
    "blocked.example",
];
const COUNTRIES: &[&str] = &[
    "United States",
    "United States",
    "USA",
    "U.S.A.",
    "us",
    "US",
    "United States of America",
    "Germany",
    "Deutschland",
    "DE",
    "germany",
    "France",
    "FR",
    "United Kingdom",
    "UK",
    "GB",
    "England",
    "Canada",
    "CA",
    "Brazil",
    "Brasil",
    "India",
    "IN",
    "Japan",
    "JP",
    "Australia",
    "Spain",
    "España",
    "Netherlands",
    "Holland",
    "N/A",
    "-",
];
const US_PLACES: &[(&str, &str)] = &[
    ("CA", "San Francisco"),
    ("NY", "New York"),
    ("TX", "Austin"),
    ("IL", "Chicago"),
    ("WA", "Seattle"),
    ("MA", "Boston"),
    ("California", "Los Angeles"),
    ("ny", "Brooklyn"),
];
const OTHER_CITIES: &[&str] = &[
    "Berlin",
    "München",
    "Paris",
    "London",
    "Toronto",
    "São Paulo",
    "Bengaluru",
    "Tokyo",
    "Sydney",
    "Madrid",
    "Amsterdam",
    "Lyon",
];
const TITLES: &[&str] = &[
    "Marketing Manager",
    "VP Marketing",
    "CMO",
    "Data Analyst",
    "Software Engineer",
    "Director, Demand Gen",
    "Head of Growth",
    "Sales Rep",
    "CEO",
    "Operations \"Ops\" Lead",
];
const COMPANIES: &[&str] = &[
    "Acme Inc",
    "ACME, Inc.",
    "acme",
    "Globex Corporation",
    "Initech",
    "Umbrella Corp",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Tyrell Corp.",
    "Cyberdyne Systems",
    "Smith \"Bros\" Ltd",
];
const SOURCES: &[&str] = &[
    "Web",
    "Trade Show",
    "Paid Search",
    "Webinar",
    "Partner",
    "List Import",
    "Organic Social",
];

/// Forms of the seeded Fill Out Form activities; their Webform IDs are 200 + the index.
pub(crate) const SEEDED_FORMS: &[&str] = &[
    "Contact Us",
    "Webinar Signup",
    "Ebook Download",
    "Demo Request",
    "Newsletter",
];

/// A form's Country picklist: clean names, as a select list gives them, from every region
/// (so routing by country has something to do). Seeded leads keep their messy spellings.
const FORM_COUNTRIES: &[&str] = &[
    "United States",
    "United States",
    "United States",
    "Canada",
    "Mexico",
    "Brazil",
    "United Kingdom",
    "United Kingdom",
    "Germany",
    "Germany",
    "France",
    "Spain",
    "Netherlands",
    "Sweden",
    "India",
    "Japan",
    "Australia",
    "Singapore",
];

/// The fields a generated form visitor types in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Visitor {
    pub(crate) email: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) country: String,
    pub(crate) company: String,
    pub(crate) title: String,
}

/// Seconds in the window seeded timestamps spread over (400 days).
const SPREAD_SECS: u64 = 400 * 86_400;

/// Generates seeded leads and activities.
#[derive(Debug, Clone)]
pub(crate) struct Generator {
    seed: u64,
    anchor: i64,
}

impl Generator {
    pub(crate) fn new(seed: u64, anchor: i64) -> Self {
        Self { seed, anchor }
    }

    fn rng(&self, id: u32, stream: u64) -> Rng {
        Rng(mix(self.seed ^ mix(u64::from(id) << 8 | stream)))
    }

    /// `createdAt` of seeded lead `id`, without generating the rest.
    pub(crate) fn created_at(&self, id: u32) -> i64 {
        let mut r = self.rng(id, 1);
        self.anchor - i64::try_from(r.below(SPREAD_SECS)).unwrap_or(0)
    }

    /// `updatedAt` of seeded lead `id`.
    pub(crate) fn updated_at(&self, id: u32) -> i64 {
        let created = self.created_at(id);
        let mut r = self.rng(id, 2);
        let span = u64::try_from(self.anchor - created).unwrap_or(0);
        created + i64::try_from(r.below(span + 1)).unwrap_or(0)
    }

    /// Email of seeded lead `id` (about 2% copy an earlier lead's address, 1% are null, and many
    /// carry mixed case or stray spaces).
    pub(crate) fn email(&self, id: u32) -> Option<String> {
        let mut r = self.rng(id, 3);
        if r.percent(1) {
            return None;
        }
        let mut source = id;
        if id > 1 && r.percent(2) {
            let back = u32::try_from(r.below(u64::from(id - 1).min(500))).unwrap_or(0) + 1;
            source = id - back;
        }
        let mut s = self.rng(source, 4);
        let first = ascii_fold(s.pick(FIRST));
        let last = ascii_fold(s.pick(LAST));
        let domain = s.pick(DOMAINS);
        let mut email = match s.below(4) {
            0 => format!("{first}.{last}{source}@{domain}"),
            1 => format!("{}{last}{source}@{domain}", &first[..1]),
            2 => format!("{first}_{last}.{source}@{domain}"),
            _ => format!("{last}.{first}{source}@{domain}"),
        }
        .to_ascii_lowercase();
        if source % 97 == 13 {
            // A few addresses with no '@' at all.
            email = email.replace('@', " at ");
        }
        let style = r.below(100);
        if style < 10 {
            email = capitalise(&email);
        } else if style < 13 {
            email = email.to_ascii_uppercase();
        }
        if r.percent(3) {
            email = format!("  {email} ");
        }
        Some(email)
    }

    /// The whole seeded lead `id`.
    pub(crate) fn lead(&self, id: u32) -> Lead {
        let mut l = blank_lead(id);
        let mut r = self.rng(id, 5);
        let str_or_null = |r: &mut Rng, null_pct: u64, v: String| {
            if r.percent(null_pct) {
                Value::Null
            } else {
                Value::Str(v.into())
            }
        };
        l[EMAIL] = self.email(id).map_or(Value::Null, |e| Value::Str(e.into()));
        let mut names = self.rng(id, 4);
        let first = names.pick(FIRST);
        let last = names.pick(LAST);
        let first = if r.percent(4) {
            format!(" {first}")
        } else {
            first.to_owned()
        };
        l[FIRST_NAME] = str_or_null(&mut r, 5, first);
        l[LAST_NAME] = str_or_null(&mut r, 3, last.to_owned());
        l[TITLE] = {
            let v = r_pick(&mut r, TITLES);
            str_or_null(&mut r, 20, v)
        };
        l[COMPANY] = {
            let v = r_pick(&mut r, COMPANIES);
            str_or_null(&mut r, 10, v)
        };
        let phone = match r.below(6) {
            0 => format!(
                "+1 ({}) {}-{:04}",
                200 + r.below(800),
                200 + r.below(800),
                r.below(10_000)
            ),
            1 => format!(
                "{}.{}.{:04}",
                200 + r.below(800),
                200 + r.below(800),
                r.below(10_000)
            ),
            2 => format!("{:010}", 2_000_000_000 + r.below(7_999_999_999)),
            3 => format!("+49 30 {:07}", r.below(10_000_000)),
            4 => format!(
                "({}) {} {:04} x{}",
                200 + r.below(800),
                200 + r.below(800),
                r.below(10_000),
                r.below(100)
            ),
            _ => String::new(),
        };
        l[PHONE] = if phone.is_empty() {
            Value::Null
        } else {
            Value::Str(phone.into())
        };
        let country = r.pick(COUNTRIES);
        l[COUNTRY] = str_or_null(&mut r, 8, country.to_owned());
        let us = matches!(
            country,
            "United States" | "USA" | "U.S.A." | "us" | "US" | "United States of America"
        );
        if us {
            let (state, city) =
                US_PLACES[usize::try_from(r.below(US_PLACES.len() as u64)).unwrap_or(0)];
            l[STATE] = Value::Str(state.into());
            l[CITY] = Value::Str(city.into());
            l[POSTAL_CODE] = {
                let v = format!("{:05}", r.below(100_000));
                str_or_null(&mut r, 10, v)
            };
        } else {
            l[CITY] = {
                let v = r_pick(&mut r, OTHER_CITIES);
                str_or_null(&mut r, 15, v)
            };
            l[POSTAL_CODE] = {
                let v = format!("{}", 10_000 + r.below(90_000));
                str_or_null(&mut r, 40, v)
            };
        }
        l[LEAD_SOURCE] = {
            let v = r_pick(&mut r, SOURCES);
            str_or_null(&mut r, 15, v)
        };
        l[LEAD_SCORE] = if r.percent(5) {
            Value::Null
        } else {
            Value::Int(i64::try_from(r.below(101)).unwrap_or(0))
        };
        if r.percent(30) {
            l[SFDC_LEAD_ID] = Value::Str(format!("00Q{:012X}", r.below(1 << 48)).into());
        }
        if r.percent(15) {
            l[SFDC_CONTACT_ID] = Value::Str(format!("003{:012X}", r.below(1 << 48)).into());
        }
        l[UNSUBSCRIBED] = Value::Bool(r.percent(5));
        l[CREATED_AT] = Value::Time(self.created_at(id));
        l[UPDATED_AT] = Value::Time(self.updated_at(id));
        l
    }

    /// The visitor behind form fill number `n`: a pure function of (seed, n). The address
    /// carries `n`, so no two fills of one sandbox invent the same person.
    pub(crate) fn visitor(&self, n: u64) -> Visitor {
        let mut r = Rng(mix(self.seed ^ mix(n ^ 0xF0F0_F111_0000_0000)));
        let first = r.pick(FIRST);
        let last = r.pick(LAST);
        let domain = r.pick(DOMAINS);
        Visitor {
            email: format!("{}.{}.f{n}@{domain}", ascii_fold(first), ascii_fold(last))
                .to_ascii_lowercase(),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            country: r.pick(FORM_COUNTRIES).to_owned(),
            company: r.pick(COMPANIES).to_owned(),
            title: r.pick(TITLES).to_owned(),
        }
    }

    /// A number in `0..n` for the form-fill timer's choices (fill `k`, question `q`).
    pub(crate) fn fill_choice(&self, k: u64, q: u64, n: u64) -> u64 {
        Rng(mix(self.seed ^ mix(k ^ (q << 56) ^ 0x0F0F_0222_0000_0000))).below(n)
    }

    /// The activities of seeded lead `id`: a New Lead at `createdAt`, then 0–3 more.
    pub(crate) fn activities(&self, id: u32, out: &mut Vec<Activity>) {
        out.clear();
        let created = self.created_at(id);
        let mut r = self.rng(id, 6);
        out.push(Activity {
            guid: u64::from(id) * 8,
            lead_id: id,
            date: created,
            type_id: 12,
            variant: 0,
            written: None,
        });
        let extra = r.below(4);
        let span = u64::try_from(self.anchor - created).unwrap_or(0) + 1;
        for k in 0..extra {
            let type_id = [1, 2, 10, 11][usize::try_from(r.below(4)).unwrap_or(0)];
            out.push(Activity {
                guid: u64::from(id) * 8 + k + 1,
                lead_id: id,
                date: created + i64::try_from(r.below(span)).unwrap_or(0),
                type_id,
                variant: u32::try_from(r.below(5)).unwrap_or(0),
                written: None,
            });
        }
    }
}

fn r_pick(r: &mut Rng, items: &[&str]) -> String {
    r.pick(items).to_owned()
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'é' => Some('e'),
            'ë' => Some('e'),
            'ü' => Some('u'),
            'í' => Some('i'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = true;
    for c in s.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = matches!(c, '.' | '@' | '_');
    }
    out
}

/// A generated activity, or one written by the sandbox (a form fill) with its own details.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    pub(crate) guid: u64,
    pub(crate) lead_id: u32,
    pub(crate) date: i64,
    pub(crate) type_id: u32,
    pub(crate) variant: u32,
    /// The details of an activity that happened in the sandbox (a form fill); `None` for
    /// seeded and placed ones, whose details follow from `variant`.
    pub(crate) written: Option<Arc<ActivityDetails>>,
}

/// What an activity that happened in the sandbox carries, as the bulk export's columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActivityDetails {
    pub(crate) campaign_id: Option<u32>,
    pub(crate) primary_attribute_value_id: Option<u32>,
    pub(crate) primary_attribute_value: Option<String>,
    /// The `attributes` column: a JSON object.
    pub(crate) attributes: String,
}

impl Activity {
    /// (campaignId, primaryAttributeValueId, primaryAttributeValue, attributes JSON).
    pub(crate) fn details(&self) -> (Option<u32>, Option<u32>, Option<&str>, String) {
        if let Some(d) = &self.written {
            return (
                d.campaign_id,
                d.primary_attribute_value_id,
                d.primary_attribute_value.as_deref(),
                d.attributes.clone(),
            );
        }
        const PAGES: &[&str] = &["/pricing", "/blog/etl-tips", "/", "/contact", "/docs/start"];
        const EMAILS: &[&str] = &[
            "Newsletter.March",
            "Welcome.Email 1",
            "Webinar.Invite",
            "Promo.Spring",
            "Nurture.Step 2",
        ];
        let v = self.variant as usize % 5;
        let v32 = self.variant;
        match self.type_id {
            1 => (
                None,
                Some(100 + v32),
                Some(PAGES[v]),
                format!(
                    "{{\"Client IP Address\":\"10.0.{}.{}\",\"Query Parameters\":\"utm_source=google\",\"Referrer URL\":\"https://www.google.com/\",\"User Agent\":\"Mozilla/5.0\"}}",
                    self.lead_id % 256,
                    self.guid % 256
                ),
            ),
            2 => (
                Some(2000 + v32),
                Some(200 + v32),
                Some(SEEDED_FORMS[v]),
                format!(
                    "{{\"Form Fields\":\"{{\\\"Email\\\":\\\"lead{}@example.com\\\"}}\",\"Webpage ID\":{},\"Client IP Address\":\"10.1.0.{}\"}}",
                    self.lead_id,
                    100 + v32,
                    self.guid % 256
                ),
            ),
            10 => (
                Some(3000 + v32),
                Some(300 + v32),
                Some(EMAILS[v]),
                format!(
                    "{{\"Mailing ID\":{},\"Device\":\"{}\",\"Is Mobile Device\":{}}}",
                    300 + v32,
                    if v.is_multiple_of(2) {
                        "iPhone"
                    } else {
                        "Desktop"
                    },
                    v.is_multiple_of(2)
                ),
            ),
            11 => (
                Some(3000 + v32),
                Some(300 + v32),
                Some(EMAILS[v]),
                format!(
                    "{{\"Mailing ID\":{},\"Link\":\"https://www.example.com/offer?id={}\"}}",
                    300 + v32,
                    self.guid
                ),
            ),
            _ => (
                None,
                None,
                None,
                "{\"Source Type\":\"New lead\",\"Form Name\":null}".to_owned(),
            ),
        }
    }
}

/// Activity types served by `/rest/v1/activities/types.json`: (id, name, description,
/// primary attribute name and data type, secondary attributes).
/// An activity type: (id, name, description, primary attribute (name, data type), secondary
/// attributes (name, data type)).
pub(crate) type ActivityTypeDef = (
    u32,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
    &'static [(&'static str, &'static str)],
);

pub(crate) static ACTIVITY_TYPES: &[ActivityTypeDef] = &[
    (
        1,
        "Visit Webpage",
        "User visits a web page",
        Some(("Webpage ID", "integer")),
        &[
            ("Client IP Address", "string"),
            ("Query Parameters", "string"),
            ("Referrer URL", "string"),
            ("User Agent", "string"),
        ],
    ),
    (
        2,
        "Fill Out Form",
        "User fills out and submits a form",
        Some(("Webform ID", "integer")),
        &[
            ("Client IP Address", "string"),
            ("Form Fields", "text"),
            ("Webpage ID", "integer"),
        ],
    ),
    (
        3,
        "Click Link",
        "User clicks a link on a page",
        Some(("Link ID", "integer")),
        &[("Client IP Address", "string"), ("Referrer URL", "string")],
    ),
    (
        6,
        "Send Email",
        "Send an email to a lead",
        Some(("Mailing ID", "integer")),
        &[("Campaign Run ID", "integer"), ("Step ID", "integer")],
    ),
    (
        7,
        "Email Delivered",
        "Email was delivered to a lead",
        Some(("Mailing ID", "integer")),
        &[("Campaign Run ID", "integer"), ("Step ID", "integer")],
    ),
    (
        10,
        "Open Email",
        "User opens an email",
        Some(("Mailing ID", "integer")),
        &[("Device", "string"), ("Is Mobile Device", "boolean")],
    ),
    (
        11,
        "Click Email",
        "User clicks a link in an email",
        Some(("Mailing ID", "integer")),
        &[("Link", "string"), ("Device", "string")],
    ),
    (
        12,
        "New Lead",
        "New person/record is added to the lead database",
        None,
        &[("Source Type", "string"), ("Form Name", "string")],
    ),
    (
        13,
        "Change Data Value",
        "Changed attribute value for a person",
        Some(("Attribute Name", "integer")),
        &[
            ("New Value", "string"),
            ("Old Value", "string"),
            ("Reason", "string"),
        ],
    ),
    (
        22,
        "Change Score",
        "Changed score value for a person",
        Some(("Score Name", "integer")),
        &[
            ("Change Value", "string"),
            ("New Value", "integer"),
            ("Old Value", "integer"),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generation_is_deterministic_and_messy() {
        let g = Generator::new(42, 1_700_000_000);
        assert_eq!(g.lead(17), g.lead(17));
        let emails: Vec<_> = (1..2000).filter_map(|i| g.email(i)).collect();
        assert!(emails.iter().any(|e| e.starts_with(' ')));
        assert!(
            emails
                .iter()
                .any(|e| e.chars().any(|c| c.is_ascii_uppercase()))
        );
        let mut norm: Vec<_> = emails.iter().map(|e| normalize_email(e)).collect();
        norm.sort();
        norm.dedup();
        assert!(norm.len() < emails.len(), "some duplicates");
        for id in 1..500 {
            assert!(g.created_at(id) <= g.updated_at(id));
        }
    }

    #[test]
    fn visitors_vary_and_returning_fills_are_one_in_four() {
        let g = Generator::new(42, 1_700_000_000);
        assert_eq!(g.visitor(3), g.visitor(3));
        let visitors: Vec<Visitor> = (1..=200).map(|n| g.visitor(n)).collect();
        let emails: HashSet<&str> = visitors.iter().map(|v| v.email.as_str()).collect();
        assert_eq!(
            emails.len(),
            200,
            "every visitor has an address of their own"
        );
        let countries: HashSet<&str> = visitors.iter().map(|v| v.country.as_str()).collect();
        assert!(countries.len() >= 12, "{countries:?}");
        let returning = (1..=4000).filter(|k| g.fill_choice(*k, 0, 4) == 0).count();
        assert!((850..1150).contains(&returning), "{returning} of 4000");
        let picks: HashSet<u64> = (1..=400).map(|k| g.fill_choice(k, 1, 1000)).collect();
        assert!(picks.len() > 300, "{}", picks.len());
    }
}
