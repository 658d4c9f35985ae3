//! Which DAG's datasets start which DAGs (`triggers: [{ dataset: { dag, task } }]`), checked
//! across the DAGs of one environment: a trigger must name a DAG of the environment and a
//! task of it that stages a dataset, and no chain of dataset triggers may lead back to where
//! it started (each run would start the next for ever).
//!
//! A DAG's part is read once per version ([`DatasetUses::of`]) and kept with it, so checking
//! an environment needs no DAG file parsed again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Dag, Deadline, TaskKind};
use crate::diagnostic::{Diagnostic, Position};
use crate::yaml::Positions;

/// What one DAG version produces and consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetUses {
    pub dag_id: String,
    pub file: String,
    /// Every task, by id.
    pub tasks: Vec<String>,
    /// The tasks that stage a dataset (`export`, `transform`, `sql`).
    pub producers: Vec<String>,
    /// Its dataset triggers, where each is written.
    pub triggers: Vec<LocatedTrigger>,
    /// The DAG's `deadline: { within }`, for the runs its triggers start (a deadline by a
    /// time of day is left to the scheduler's runs).
    pub deadline_secs: Option<i64>,
}

/// A dataset trigger and where its file says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedTrigger {
    pub dag: String,
    pub task: String,
    pub line: usize,
    pub column: usize,
    /// The source line, for the diagnostic's snippet.
    pub snippet: Option<String>,
}

/// A trigger that holds: `consumer` runs when `producer_dag`'s `producer_task` stages its
/// dataset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DatasetLink {
    pub producer_dag: String,
    pub producer_task: String,
    pub consumer: String,
}

/// What checking an environment's dataset triggers found.
#[derive(Debug, Clone, Default)]
pub struct LinkCheck {
    /// The triggers that hold.
    pub links: Vec<DatasetLink>,
    /// (DAG, problem) for each trigger refused: an unknown DAG or task, a task that stages
    /// nothing, a cycle.
    pub problems: Vec<(String, Diagnostic)>,
}

impl DatasetUses {
    /// The part of `dag` (read from `source`) that dataset triggers need.
    pub fn of(dag: &Dag, source: &str) -> Self {
        let triggers: Vec<_> = dag.dataset_triggers().collect();
        let positions = (!triggers.is_empty()).then(|| Positions::index(source));
        let lines: Vec<&str> = source.lines().collect();
        let located = dag
            .triggers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                super::RunTrigger::Dataset(d) => Some((i, d)),
                super::RunTrigger::Webhook(_) => None,
            })
            .map(|(i, d)| {
                let pos = positions.as_ref().map_or(Position::START, |p| {
                    p.locate(&format!("triggers[{i}].dataset")).entry()
                });
                LocatedTrigger {
                    dag: d.dag.clone(),
                    task: d.task.clone(),
                    line: pos.line,
                    column: pos.column,
                    snippet: lines
                        .get(pos.line.saturating_sub(1))
                        .map(|l| l.trim_end().to_owned())
                        .filter(|l| !l.trim().is_empty()),
                }
            })
            .collect();
        Self {
            dag_id: dag.id.clone(),
            file: dag.file.clone(),
            tasks: dag.tasks.iter().map(|t| t.id.clone()).collect(),
            producers: dag
                .tasks
                .iter()
                .filter(|t| stages_dataset(&t.kind))
                .map(|t| t.id.clone())
                .collect(),
            triggers: located,
            deadline_secs: match dag.deadline {
                Some(Deadline::Within(d)) => i64::try_from(d.as_millis() / 1000).ok(),
                _ => None,
            },
        }
    }
}

/// Whether a task of this kind stages a dataset of its own.
pub fn stages_dataset(kind: &TaskKind) -> bool {
    matches!(
        kind,
        TaskKind::Export(_) | TaskKind::Transform(_) | TaskKind::Sql { .. }
    )
}

fn diagnostic(uses: &DatasetUses, t: &LocatedTrigger, message: String) -> (String, Diagnostic) {
    let mut d = Diagnostic::new(&uses.file, Position::new(t.line, t.column), message);
    d.snippet = t.snippet.clone();
    (uses.dag_id.clone(), d)
}

/// Check the dataset triggers of the DAGs of one environment (`dags`, one entry per DAG).
pub fn check_links(dags: &[DatasetUses]) -> LinkCheck {
    let by_id: BTreeMap<&str, &DatasetUses> = dags.iter().map(|d| (d.dag_id.as_str(), d)).collect();
    let mut out = LinkCheck::default();
    // (consumer, index of its trigger) of every trigger naming a real producer.
    let mut candidates: Vec<(&DatasetUses, &LocatedTrigger)> = Vec::new();
    for uses in dags {
        for t in &uses.triggers {
            let Some(producer) = by_id.get(t.dag.as_str()) else {
                let hint = crate::suggest::did_you_mean(&t.dag, by_id.keys().copied());
                out.problems.push(diagnostic(
                    uses,
                    t,
                    format!(
                        "dataset trigger: there is no DAG `{}` in this environment{hint}, so this trigger never starts a run",
                        t.dag
                    ),
                ));
                continue;
            };
            if !producer.tasks.contains(&t.task) {
                let hint = crate::suggest::did_you_mean(
                    &t.task,
                    producer.producers.iter().map(String::as_str),
                );
                out.problems.push(diagnostic(
                    uses,
                    t,
                    format!(
                        "dataset trigger: DAG `{}` has no task `{}`{hint} ({}), so this trigger never starts a run",
                        t.dag,
                        t.task,
                        producers_in_words(producer)
                    ),
                ));
                continue;
            }
            if !producer.producers.contains(&t.task) {
                out.problems.push(diagnostic(
                    uses,
                    t,
                    format!(
                        "dataset trigger: task `{}` of `{}` stages no dataset (only export, transform and sql tasks do; {}), so this trigger never starts a run",
                        t.task,
                        t.dag,
                        producers_in_words(producer)
                    ),
                ));
                continue;
            }
            candidates.push((uses, t));
        }
    }
    // Cycles: a DAG whose runs start, through dataset triggers, a run of itself. Every
    // trigger on a cycle is refused, each naming the whole cycle.
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (uses, t) in &candidates {
        edges
            .entry(t.dag.as_str())
            .or_default()
            .insert(uses.dag_id.as_str());
    }
    let mut refused: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for (uses, t) in &candidates {
        if refused.contains_key(&(uses.dag_id.as_str(), t.dag.as_str())) {
            continue;
        }
        // A path from the consumer back to the producer closes a cycle through this trigger.
        if let Some(path) = path_between(&edges, &uses.dag_id, &t.dag) {
            let mut cycle = vec![t.dag.as_str()];
            cycle.extend(path.iter().copied());
            let words = cycle.join(" → ");
            for pair in cycle.windows(2) {
                refused
                    .entry((pair[1], pair[0]))
                    .or_insert_with(|| words.clone());
            }
        }
    }
    for (uses, t) in candidates {
        if let Some(words) = refused.get(&(uses.dag_id.as_str(), t.dag.as_str())) {
            out.problems.push(diagnostic(
                uses,
                t,
                format!(
                    "dataset triggers form a cycle: {words} (each run would start the next for ever); this trigger is refused until one of them is removed"
                ),
            ));
        } else {
            out.links.push(DatasetLink {
                producer_dag: t.dag.clone(),
                producer_task: t.task.clone(),
                consumer: uses.dag_id.clone(),
            });
        }
    }
    out.links.sort();
    out.links.dedup();
    out
}

/// "its tasks that stage a dataset: a, b" or "it has no task that stages a dataset".
fn producers_in_words(producer: &DatasetUses) -> String {
    if producer.producers.is_empty() {
        format!("`{}` has no task that stages a dataset", producer.dag_id)
    } else {
        format!(
            "its tasks that stage a dataset: {}",
            producer.producers.join(", ")
        )
    }
}

/// The DAGs from `from` to `to` along `edges` (producer → consumers), both included; `None`
/// when `to` cannot be reached.
fn path_between<'a>(
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    from: &'a str,
    to: &'a str,
) -> Option<Vec<&'a str>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![to];
            let mut cur = to;
            while let Some(&prev) = came_from.get(cur) {
                path.push(prev);
                cur = prev;
            }
            path.reverse();
            return Some(path);
        }
        for &next in edges.get(at).into_iter().flatten() {
            if seen.insert(next) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(id: &str, tasks: &str, triggers: &[(&str, &str)]) -> String {
        let mut s = format!("id: {id}\n");
        if !triggers.is_empty() {
            s.push_str("triggers:\n");
            for (d, t) in triggers {
                s.push_str(&format!("  - dataset: {{ dag: {d}, task: {t} }}\n"));
            }
        }
        s.push_str("tasks:\n");
        for t in tasks.split(',') {
            s.push_str(&format!(
                "  - id: {t}\n    sql: \"create table {{{{ output }}}} as select 1 as n\"\n"
            ));
        }
        s
    }

    fn uses(id: &str, tasks: &str, triggers: &[(&str, &str)]) -> DatasetUses {
        let file = format!("dags/{id}.yaml");
        let src = dag(id, tasks, triggers);
        let d = crate::dag::load_dag(&file, &src).unwrap_or_else(|e| panic!("{e:?}"));
        DatasetUses::of(&d, &src)
    }

    #[test]
    fn a_known_producer_links_and_an_unknown_one_is_located() {
        let check = check_links(&[
            uses("lead_scoring", "score", &[]),
            uses("contact_sales", "send", &[("lead_scoring", "score")]),
            uses(
                "other",
                "x",
                &[("lead_scorin", "score"), ("lead_scoring", "scor")],
            ),
        ]);
        assert_eq!(
            check.links,
            vec![DatasetLink {
                producer_dag: "lead_scoring".into(),
                producer_task: "score".into(),
                consumer: "contact_sales".into(),
            }]
        );
        let shown: Vec<String> = check.problems.iter().map(|p| p.1.to_string()).collect();
        assert_eq!(check.problems.len(), 2, "{shown:?}");
        assert!(
            shown[0]
                .starts_with("dags/other.yaml:3:5: dataset trigger: there is no DAG `lead_scorin`"),
            "{shown:?}"
        );
        assert!(shown[0].contains("lead_scoring"), "{shown:?}");
        assert!(
            shown[1].starts_with(
                "dags/other.yaml:4:5: dataset trigger: DAG `lead_scoring` has no task `scor`"
            ),
            "{shown:?}"
        );
    }

    #[test]
    fn a_cycle_is_refused_naming_it() {
        let check = check_links(&[
            uses("a", "t", &[("c", "t")]),
            uses("b", "t", &[("a", "t")]),
            uses("c", "t", &[("b", "t")]),
            uses("d", "t", &[("a", "t")]),
        ]);
        assert_eq!(
            check.links,
            vec![DatasetLink {
                producer_dag: "a".into(),
                producer_task: "t".into(),
                consumer: "d".into(),
            }]
        );
        assert_eq!(check.problems.len(), 3);
        for (dag, p) in &check.problems {
            assert!(p.message.contains("form a cycle"), "{p}");
            assert!(p.message.contains(" → "), "{p}");
            assert_eq!(p.file, format!("dags/{dag}.yaml"));
            assert_eq!((p.line, p.column), (3, 5));
        }
        assert!(
            check.problems[0].1.message.contains("c → a → b → c"),
            "{}",
            check.problems[0].1
        );
    }
}
