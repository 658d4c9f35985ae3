//! The lead database: seeded leads regenerated on demand plus a patch per written lead, an email
//! index, static-list membership, a log of every write (for duplicate-write detection), and the
//! leads and activities tests placed at exact instants.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::data::{self, Activity, ActivityDetails, Generator, Lead, NFIELDS, Value};
use crate::faults::mix;

/// How a write reached the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WriteVia {
    Sync,
    Import,
    /// A form fill (`POST /_sandbox/forms/fill` or the fill timer).
    Form,
}

/// One lead write: which lead, how, and which request (sync) or batch (import) did it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WriteRecord {
    pub(crate) lead_id: u32,
    pub(crate) via: WriteVia,
    pub(crate) source: u64,
}

/// Lead ids sharing one email hash.
#[derive(Debug, Clone)]
enum Ids {
    One(u32),
    Many(Vec<u32>),
}

/// Changed fields of one lead.
type Patch = Vec<(u8, Value)>;

/// The lead database.
#[derive(Debug)]
pub(crate) struct LeadStore {
    generator: Generator,
    seeded: u32,
    next_id: u32,
    patches: HashMap<u32, Patch>,
    email_index: HashMap<u64, Ids>,
    list_members: HashMap<u32, HashSet<u32>>,
    pub(crate) writes: Vec<WriteRecord>,
    /// Activities placed through the admin API or written by form fills (seeded ones are
    /// generated on demand).
    pub(crate) placed_activities: Vec<Activity>,
    /// Webform IDs of the forms filled in the sandbox, by name.
    form_ids: HashMap<String, u32>,
}

/// First Webform ID of forms the seeded activities do not know.
const FIRST_FORM_ID: u32 = 1001;

/// First GUID of placed activities, far above the seeded ones (`leadId × 8 + k`).
const PLACED_GUID_BASE: u64 = 1 << 40;

fn email_key(email: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in email.trim().bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Static lists every sandbox has: (id, name, membership rule on the seeded id).
pub(crate) const STATIC_LISTS: &[(u32, &str, u32)] = &[
    (1001, "Newsletter Subscribers", 10),
    (1002, "Webinar Attendees", 3),
];

impl LeadStore {
    /// Seeds `n` leads (only the email index is materialised).
    pub(crate) fn seed(generator: Generator, n: u32) -> Self {
        let mut email_index: HashMap<u64, Ids> = HashMap::with_capacity(n as usize);
        for id in 1..=n {
            if let Some(e) = generator.email(id) {
                insert_index(&mut email_index, email_key(&e), id);
            }
        }
        Self {
            generator,
            seeded: n,
            next_id: n + 1,
            patches: HashMap::new(),
            email_index,
            list_members: HashMap::new(),
            writes: Vec::new(),
            placed_activities: Vec::new(),
            form_ids: HashMap::new(),
        }
    }

    /// Number of seeded leads.
    pub(crate) fn seeded(&self) -> u32 {
        self.seeded
    }

    pub(crate) fn generator(&self) -> &Generator {
        &self.generator
    }

    /// One past the highest lead id.
    pub(crate) fn id_end(&self) -> u32 {
        self.next_id
    }

    pub(crate) fn exists(&self, id: u32) -> bool {
        id >= 1 && id < self.next_id
    }

    /// The current lead `id`.
    pub(crate) fn get(&self, id: u32) -> Option<Lead> {
        if !self.exists(id) {
            return None;
        }
        let mut lead = if id <= self.seeded {
            self.generator.lead(id)
        } else {
            data::blank_lead(id)
        };
        if let Some(p) = self.patches.get(&id) {
            for (i, v) in p {
                lead[usize::from(*i)] = v.clone();
            }
        }
        Some(lead)
    }

    fn patched(&self, id: u32, idx: usize) -> Option<&Value> {
        self.patches.get(&id).and_then(|p| {
            p.iter()
                .find(|(i, _)| usize::from(*i) == idx)
                .map(|(_, v)| v)
        })
    }

    /// `createdAt` of lead `id` without building it.
    pub(crate) fn created_at(&self, id: u32) -> Option<i64> {
        match self.patched(id, data::CREATED_AT) {
            Some(Value::Time(t)) => Some(*t),
            _ if id <= self.seeded => Some(self.generator.created_at(id)),
            _ => None,
        }
    }

    /// `updatedAt` of lead `id` without building it.
    pub(crate) fn updated_at(&self, id: u32) -> Option<i64> {
        match self.patched(id, data::UPDATED_AT) {
            Some(Value::Time(t)) => Some(*t),
            _ if id <= self.seeded => Some(self.generator.updated_at(id)),
            _ => None,
        }
    }

    /// The current email of lead `id`.
    fn email(&self, id: u32) -> Option<String> {
        match self.patched(id, data::EMAIL) {
            Some(Value::Str(s)) => Some(s.to_string()),
            Some(_) => None,
            None if id <= self.seeded => self.generator.email(id),
            None => None,
        }
    }

    /// Leads whose email matches `email` (trimmed, case-insensitive), lowest id first.
    pub(crate) fn find_by_email(&self, email: &str) -> Vec<u32> {
        let want = data::normalize_email(email);
        let mut out: Vec<u32> = match self.email_index.get(&email_key(email)) {
            None => Vec::new(),
            Some(Ids::One(id)) => vec![*id],
            Some(Ids::Many(ids)) => ids.clone(),
        };
        out.retain(|id| {
            self.email(*id)
                .is_some_and(|e| data::normalize_email(&e) == want)
        });
        out.sort_unstable();
        out
    }

    /// Leads whose field `idx` equals `value` (a scan; used for the rarer filter types).
    pub(crate) fn find_by_field(&self, idx: usize, value: &str) -> Vec<u32> {
        (1..self.next_id)
            .filter(|id| {
                self.get(*id).is_some_and(|l| match &l[idx] {
                    Value::Str(s) => s.trim().eq_ignore_ascii_case(value.trim()),
                    Value::Int(i) => value.trim().parse::<i64>().is_ok_and(|v| v == *i),
                    _ => false,
                })
            })
            .collect()
    }

    /// Creates a lead from `values` (field index → value); returns its id.
    pub(crate) fn create(
        &mut self,
        values: Vec<(usize, Value)>,
        now: i64,
        write: (WriteVia, u64),
    ) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut patch: Patch = Vec::with_capacity(values.len() + 2);
        patch.push((data::CREATED_AT as u8, Value::Time(now)));
        patch.push((data::UPDATED_AT as u8, Value::Time(now)));
        self.patches.insert(id, patch);
        self.update(id, values, now, write);
        id
    }

    /// Applies `values` to lead `id` and bumps `updatedAt`.
    pub(crate) fn update(
        &mut self,
        id: u32,
        values: Vec<(usize, Value)>,
        now: i64,
        write: (WriteVia, u64),
    ) {
        self.set_fields(
            id,
            values
                .into_iter()
                .chain([(data::UPDATED_AT, Value::Time(now))])
                .collect(),
        );
        self.writes.push(WriteRecord {
            lead_id: id,
            via: write.0,
            source: write.1,
        });
    }

    /// Sets exactly `values` on lead `id` (timestamps included, nothing bumped, no write
    /// logged): how tests place a lead at an instant.
    pub(crate) fn place(&mut self, id: u32, values: Vec<(usize, Value)>) {
        self.set_fields(id, values);
    }

    /// Creates a lead holding exactly `values`; `createdAt` and `updatedAt` default to `now`.
    pub(crate) fn create_placed(&mut self, values: Vec<(usize, Value)>, now: i64) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.patches.insert(
            id,
            vec![
                (data::CREATED_AT as u8, Value::Time(now)),
                (data::UPDATED_AT as u8, Value::Time(now)),
            ],
        );
        self.set_fields(id, values);
        id
    }

    /// Adds an activity of lead `lead_id` at `date` (Unix seconds); returns its GUID.
    pub(crate) fn place_activity(&mut self, lead_id: u32, type_id: u32, date: i64) -> u64 {
        let guid = PLACED_GUID_BASE + self.placed_activities.len() as u64;
        self.placed_activities.push(Activity {
            guid,
            lead_id,
            date,
            type_id,
            variant: 0,
            written: None,
        });
        guid
    }

    /// Adds an activity that happened in the sandbox, with its own details; returns its GUID.
    pub(crate) fn add_activity(
        &mut self,
        lead_id: u32,
        type_id: u32,
        date: i64,
        details: ActivityDetails,
    ) -> u64 {
        let guid = PLACED_GUID_BASE + self.placed_activities.len() as u64;
        self.placed_activities.push(Activity {
            guid,
            lead_id,
            date,
            type_id,
            variant: 0,
            written: Some(Arc::new(details)),
        });
        guid
    }

    /// The Webform ID of the form called `name`: the seeded activities' id for their forms,
    /// otherwise one given on the form's first fill.
    pub(crate) fn form_id(&mut self, name: &str) -> u32 {
        if let Some(i) = data::SEEDED_FORMS.iter().position(|f| *f == name) {
            return 200 + u32::try_from(i).unwrap_or(0);
        }
        let next = FIRST_FORM_ID + u32::try_from(self.form_ids.len()).unwrap_or(u32::MAX - 1);
        *self.form_ids.entry(name.to_owned()).or_insert(next)
    }

    /// Of the leads whose email matches `email`, the one updated last (the highest id among
    /// equals): the lead a Marketo form fill updates when the address is in the database
    /// more than once.
    pub(crate) fn latest_by_email(&self, email: &str) -> Option<u32> {
        self.find_by_email(email)
            .into_iter()
            .max_by_key(|id| (self.updated_at(*id).unwrap_or(i64::MIN), *id))
    }

    fn set_fields(&mut self, id: u32, values: Vec<(usize, Value)>) {
        for (idx, v) in &values {
            if *idx == data::EMAIL {
                let old = self.email(id);
                if let Some(old) = old {
                    remove_index(&mut self.email_index, email_key(&old), id);
                }
                if let Value::Str(s) = v {
                    insert_index(&mut self.email_index, email_key(s), id);
                }
            }
        }
        let patch = self.patches.entry(id).or_default();
        for (idx, v) in values {
            let Ok(i) = u8::try_from(idx) else { continue };
            if idx >= NFIELDS {
                continue;
            }
            match patch.iter_mut().find(|(j, _)| *j == i) {
                Some(slot) => slot.1 = v,
                None => patch.push((i, v)),
            }
        }
    }

    /// Adds lead `id` to static list `list_id`.
    pub(crate) fn add_to_list(&mut self, list_id: u32, id: u32) {
        self.list_members.entry(list_id).or_default().insert(id);
    }

    /// Whether `list_id` is a known static list.
    pub(crate) fn list_exists(&self, list_id: u32) -> bool {
        STATIC_LISTS.iter().any(|(l, _, _)| *l == list_id)
            || self.list_members.contains_key(&list_id)
    }

    /// Id of the static list called `name`.
    pub(crate) fn list_by_name(&self, name: &str) -> Option<u32> {
        STATIC_LISTS
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
            .map(|(id, _, _)| *id)
    }

    /// Whether lead `id` is in static list `list_id`.
    pub(crate) fn in_list(&self, list_id: u32, id: u32) -> bool {
        let seeded = STATIC_LISTS
            .iter()
            .any(|(l, _, every)| *l == list_id && id <= self.seeded && id.is_multiple_of(*every));
        seeded
            || self
                .list_members
                .get(&list_id)
                .is_some_and(|m| m.contains(&id))
    }

    /// Number of writes per lead, for leads written at all.
    pub(crate) fn write_count(&self, id: u32) -> usize {
        self.writes.iter().filter(|w| w.lead_id == id).count()
    }
}

fn insert_index(index: &mut HashMap<u64, Ids>, key: u64, id: u32) {
    match index.get_mut(&key) {
        None => {
            index.insert(key, Ids::One(id));
        }
        Some(Ids::One(other)) => {
            let other = *other;
            if other != id {
                index.insert(key, Ids::Many(vec![other, id]));
            }
        }
        Some(Ids::Many(ids)) => {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
}

fn remove_index(index: &mut HashMap<u64, Ids>, key: u64, id: u32) {
    let remove = match index.get_mut(&key) {
        Some(Ids::One(other)) => *other == id,
        Some(Ids::Many(ids)) => {
            ids.retain(|x| *x != id);
            ids.is_empty()
        }
        None => false,
    };
    if remove {
        index.remove(&key);
    }
}
