//! Freshness as the DAG files declare it (`freshness: { max_age: 26h }` on a DAG or a task),
//! per environment the DAG runs in, and said in words: what the scheduler settles into stale
//! episodes, what the pages, the API, `/metrics` and the `stale` notification show.

use drover_spec::dag::Dag;
use drover_store::{FreshnessChanges, FreshnessRule, FreshnessState, StaleEpisode, Store};

use crate::{DagCache, EngineError};

/// The rules of the DAGs an environment (or every one) runs now.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub rules: Vec<FreshnessRule>,
    /// (environment, DAG) whose current version was read: their rules are all in `rules`.
    pub loaded: Vec<(String, String)>,
}

/// What `dag` asks of its data in `environment`: the DAG's own `freshness` first, then its
/// tasks' in the file's order.
pub fn rules_of(dag: &Dag, environment: &str) -> Vec<FreshnessRule> {
    let rule = |task_id: &str, max_age: drover_spec::duration::Duration| FreshnessRule {
        environment: environment.to_owned(),
        dag_id: dag.id.clone(),
        task_id: task_id.to_owned(),
        max_age_secs: i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
    };
    dag.freshness
        .iter()
        .map(|f| rule("", f.max_age))
        .chain(
            dag.tasks
                .iter()
                .filter_map(|t| t.freshness.map(|f| rule(&t.id, f.max_age))),
        )
        .collect()
}

/// The rules of the active DAGs of `environment` (all environments when `None`), from the
/// version each runs. A version that cannot be read is left out (and not `loaded`).
pub async fn declared(
    store: &Store,
    dags: &DagCache,
    environment: Option<&str>,
) -> Result<Declared, EngineError> {
    let mut out = Declared::default();
    for de in store.dag_envs(environment).await? {
        let Ok(dag) = dags.get(de.version_id).await else {
            continue;
        };
        out.rules.extend(rules_of(&dag, &de.environment));
        out.loaded.push((de.environment, de.dag_id));
    }
    Ok(out)
}

/// One pass of the scheduler: episodes opened for data that went stale, and ended for data
/// nothing asks about any more.
pub async fn settle(store: &Store, dags: &DagCache) -> Result<FreshnessChanges, EngineError> {
    let declared = declared(store, dags, None).await?;
    Ok(store
        .settle_freshness(&declared.rules, &declared.loaded)
        .await?)
}

/// How fresh the data of every DAG and task that declares `freshness` is, in `environment`
/// (all when `None`).
pub async fn states(
    store: &Store,
    dags: &DagCache,
    environment: Option<&str>,
) -> Result<Vec<FreshnessState>, EngineError> {
    let declared = declared(store, dags, environment).await?;
    Ok(store.freshness(&declared.rules).await?)
}

/// How fresh one DAG's data (and its tasks') is in each environment it runs in.
pub async fn of_dag(
    store: &Store,
    dags: &DagCache,
    dag_id: &str,
) -> Result<Vec<FreshnessState>, EngineError> {
    let mut rules = Vec::new();
    for de in store.dag_envs(None).await? {
        if de.dag_id != dag_id {
            continue;
        }
        if let Ok(dag) = dags.get(de.version_id).await {
            rules.extend(rules_of(&dag, &de.environment));
        }
    }
    Ok(store.freshness(&rules).await?)
}

/// An age or a `max_age` as people say it: "30 s", "45 min", "1 h 30 min", "31 h",
/// "3 d 4 h". Hours up to three days (a day's data is "31 h" old, not "1 d 7 h").
pub fn age_words(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 60 {
        return format!("{secs} s");
    }
    if secs < 3_600 {
        return format!("{} min", secs / 60);
    }
    if secs < 72 * 3_600 {
        let (h, m) = (secs / 3_600, secs % 3_600 / 60);
        return if m == 0 || h >= 10 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        };
    }
    let (d, h) = (secs / 86_400, secs % 86_400 / 3_600);
    if h == 0 {
        format!("{d} d")
    } else {
        format!("{d} d {h} h")
    }
}

/// "lead_scoring" for a DAG's own data, "lead_scoring.score" for a task's.
pub fn whose(dag_id: &str, task_id: &str) -> String {
    if task_id.is_empty() {
        dag_id.to_owned()
    } else {
        format!("{dag_id}.{task_id}")
    }
}

/// The notification's sentence: "lead_scoring's data in prod is stale: last refreshed 31 h
/// ago (it must be under 26 h)", or "… never refreshed since it came to prod 3 d ago (…)".
pub fn stale_sentence(
    dag_id: &str,
    task_id: &str,
    environment: &str,
    refreshed: bool,
    age_secs: i64,
    max_age_secs: i64,
) -> String {
    let (who, age, max) = (
        whose(dag_id, task_id),
        age_words(age_secs),
        age_words(max_age_secs),
    );
    if refreshed {
        format!(
            "{who}'s data in {environment} is stale: last refreshed {age} ago (it must be under {max})"
        )
    } else {
        format!(
            "{who}'s data in {environment} is stale: never refreshed since it came to {environment} {age} ago (it must be under {max})"
        )
    }
}

/// What a page says of some data: "Data 3 h old, must be under 26 h", "Stale: data 31 h old,
/// must be under 26 h", "Not refreshed yet: in prod for 2 h, must be under 26 h", "Stale:
/// never refreshed since it came to prod 3 d ago, must be under 26 h".
pub fn state_words(s: &FreshnessState) -> String {
    let detail = detail_words(s);
    if !s.stale {
        return detail;
    }
    let mut chars = detail.chars();
    match chars.next() {
        Some(first) => format!("Stale: {}{}", first.to_lowercase(), chars.as_str()),
        None => "Stale".to_owned(),
    }
}

/// [`state_words`] without "Stale: ", for a line marked stale already: "Data 31 h old, must
/// be under 26 h", "Never refreshed since it came to prod 3 d ago, must be under 26 h".
pub fn detail_words(s: &FreshnessState) -> String {
    let (age, max) = (age_words(s.age_secs), age_words(s.max_age_secs));
    match (s.last_refreshed_at.is_some(), s.stale) {
        (true, _) => format!("Data {age} old, must be under {max}"),
        (false, false) => format!(
            "Not refreshed yet: in {} for {age}, must be under {max}",
            s.environment
        ),
        (false, true) => format!(
            "Never refreshed since it came to {} {age} ago, must be under {max}",
            s.environment
        ),
    }
}

/// The line a recovery notification adds for an episode its run ended: "lead_scoring's data
/// in prod is fresh again (it was stale for 5 h)".
pub fn fresh_again_sentence(e: &StaleEpisode) -> String {
    let stale_for = e
        .cleared_at
        .map(|c| (c - e.stale_since).num_seconds())
        .unwrap_or(0);
    format!(
        "{}'s data in {} is fresh again (it was stale for {})",
        whose(&e.dag_id, &e.task_id),
        e.environment,
        age_words(stale_for)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        for (secs, words) in [
            (-5, "0 s"),
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (45 * 60 + 30, "45 min"),
            (3_600, "1 h"),
            (5_400, "1 h 30 min"),
            (9 * 3_600 + 59 * 60, "9 h 59 min"),
            (10 * 3_600 + 30 * 60, "10 h"),
            (26 * 3_600, "26 h"),
            (31 * 3_600 + 40 * 60, "31 h"),
            (72 * 3_600, "3 d"),
            (76 * 3_600 + 10, "3 d 4 h"),
        ] {
            assert_eq!(age_words(secs), words, "{secs} s");
        }
    }

    fn state(refreshed: bool, age_secs: i64, max_age_secs: i64) -> FreshnessState {
        let now = chrono::Utc::now();
        FreshnessState {
            environment: "prod".to_owned(),
            dag_id: "lead_scoring".to_owned(),
            task_id: String::new(),
            max_age_secs,
            last_refreshed_at: refreshed.then_some(now),
            last_refreshed_by: None,
            counted_from: now,
            age_secs,
            stale: age_secs > max_age_secs,
            stale_at: now,
            paused: false,
        }
    }

    #[test]
    fn pages_say_how_old_the_data_is_and_how_fresh_it_must_be() {
        for (refreshed, age, words) in [
            (true, 3 * 3_600, "Data 3 h old, must be under 26 h"),
            (true, 31 * 3_600, "Stale: data 31 h old, must be under 26 h"),
            (
                false,
                2 * 3_600,
                "Not refreshed yet: in prod for 2 h, must be under 26 h",
            ),
            (
                false,
                3 * 86_400,
                "Stale: never refreshed since it came to prod 3 d ago, must be under 26 h",
            ),
        ] {
            assert_eq!(state_words(&state(refreshed, age, 26 * 3_600)), words);
        }
        assert_eq!(
            detail_words(&state(false, 3 * 86_400, 26 * 3_600)),
            "Never refreshed since it came to prod 3 d ago, must be under 26 h"
        );
    }

    #[test]
    fn the_stale_sentence_says_how_old_and_how_fresh_it_must_be() {
        assert_eq!(
            stale_sentence("lead_scoring", "", "prod", true, 31 * 3_600 + 5, 26 * 3_600),
            "lead_scoring's data in prod is stale: last refreshed 31 h ago (it must be under 26 h)"
        );
        assert_eq!(
            stale_sentence("lead_scoring", "score", "dev", false, 3 * 86_400, 3_600),
            "lead_scoring.score's data in dev is stale: never refreshed since it came to dev 3 d ago (it must be under 1 h)"
        );
    }
}
