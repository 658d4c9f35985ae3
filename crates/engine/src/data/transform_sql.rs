//! A transform's steps compiled to one SQL statement: each step a CTE over the one before,
//! identifiers from YAML always quoted, expressions the DAG wrote kept as written (they run as
//! the staging role, which reaches nothing but staged data).

use drover_spec::dag::map_kinds::{Dedupe, JoinHow, Keep, Normalizer, Step};
use drover_spec::dataset::quote_ident;
use drover_spec::suggest::did_you_mean;

/// A step's SQL and the columns it yields.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) sql: String,
    pub(crate) columns: Vec<String>,
}

/// A step that cannot be compiled, in words for the DAG's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step} (`{kind}`): {message}")]
pub(crate) struct StepError {
    pub(crate) step: usize,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

/// The relation a step reads and its columns.
#[derive(Debug, Clone)]
pub(crate) struct Source<'a> {
    pub(crate) relation: &'a str,
    pub(crate) columns: &'a [String],
}

/// The SQL of one step (not `from`, not `sql`, whose text is the DAG's) over `prev`.
/// `text` holds the step's rendered expressions (filter condition, derive expressions).
pub(crate) fn compile_step(
    index: usize,
    step: &Step,
    prev: &Source<'_>,
    rendered: &[String],
    joined: Option<&Source<'_>>,
) -> Result<Compiled, StepError> {
    let fail = |message: String| StepError {
        step: index + 1,
        kind: step.name(),
        message,
    };
    let need = |name: &str| -> Result<(), StepError> {
        if prev.columns.iter().any(|c| c == name) {
            Ok(())
        } else {
            Err(fail(missing_column(name, prev.columns)))
        }
    };
    let from = prev.relation;
    match step {
        Step::Select(cols) => {
            for c in cols {
                need(c)?;
            }
            Ok(Compiled {
                sql: format!("select {} from {from}", list(cols)),
                columns: cols.clone(),
            })
        }
        Step::Rename(map) => {
            for old in map.keys() {
                need(old)?;
            }
            let columns: Vec<String> = prev
                .columns
                .iter()
                .map(|c| map.get(c).cloned().unwrap_or_else(|| c.clone()))
                .collect();
            if let Some(dup) = first_duplicate(&columns) {
                return Err(fail(format!("two columns would be named `{dup}`")));
            }
            let items: Vec<String> = prev
                .columns
                .iter()
                .zip(&columns)
                .map(|(old, new)| format!("{} as {}", quote_ident(old), quote_ident(new)))
                .collect();
            Ok(Compiled {
                sql: format!("select {} from {from}", items.join(", ")),
                columns,
            })
        }
        Step::Filter(_) => {
            let cond = rendered.first().map(String::as_str).unwrap_or("true");
            Ok(Compiled {
                sql: format!("select * from {from} where ({cond})"),
                columns: prev.columns.to_vec(),
            })
        }
        Step::Normalize(map) => {
            for col in map.keys() {
                need(col)?;
            }
            // Country codes come from a lookup table: a hash join per converted column, far
            // cheaper than a function call per row.
            let mut joins = Vec::new();
            let items: Vec<String> = prev
                .columns
                .iter()
                .map(|c| match map.get(c) {
                    Some(ops) => {
                        let start = format!("(s.{})::text", quote_ident(c));
                        let expr = ops.as_slice().iter().fold(start, |x, op| {
                            if *op == Normalizer::IsoAlpha2 {
                                let alias = format!("\"iso{}\"", joins.len());
                                joins.push(format!(
                                    "left join drover_lib.country_alias {alias} on {alias}.alias = lower(regexp_replace(btrim({x}), '\\s+', ' ', 'g'))"
                                ));
                                format!("{alias}.code::text")
                            } else {
                                normalizer(*op, &x)
                            }
                        });
                        format!("{expr} as {}", quote_ident(c))
                    }
                    None => format!("s.{}", quote_ident(c)),
                })
                .collect();
            Ok(Compiled {
                sql: format!(
                    "select {} from {from} s {}",
                    items.join(", "),
                    joins.join(" ")
                ),
                columns: prev.columns.to_vec(),
            })
        }
        Step::Dedupe(d) => dedupe(d, prev).map_err(fail),
        Step::Derive(map) => {
            let mut columns = prev.columns.to_vec();
            let mut exprs: Vec<String> = prev.columns.iter().map(|c| quote_ident(c)).collect();
            for ((name, _), expr) in map.iter().zip(rendered) {
                let item = format!("({expr}) as {}", quote_ident(name));
                match columns.iter().position(|c| c == name) {
                    Some(i) => exprs[i] = item,
                    None => {
                        columns.push(name.clone());
                        exprs.push(item);
                    }
                }
            }
            Ok(Compiled {
                sql: format!("select {} from {from}", exprs.join(", ")),
                columns,
            })
        }
        Step::Join(j) => {
            let Some(right) = joined else {
                return Err(fail(format!("input `{}` has no dataset", j.input)));
            };
            let pairs = j.on.pairs();
            for (l, r) in &pairs {
                need(l)?;
                if !right.columns.iter().any(|c| c == r) {
                    return Err(fail(format!(
                        "`{}` has no column `{r}`{}",
                        j.input,
                        did_you_mean(r, right.columns.iter().map(String::as_str))
                    )));
                }
            }
            let take: Vec<String> = match &j.columns {
                Some(cols) => cols.clone(),
                None => right
                    .columns
                    .iter()
                    .filter(|c| !pairs.iter().any(|(_, r)| r == c))
                    .cloned()
                    .collect(),
            };
            for c in &take {
                if !right.columns.iter().any(|rc| rc == c) {
                    return Err(fail(format!(
                        "`{}` has no column `{c}`{}",
                        j.input,
                        did_you_mean(c, right.columns.iter().map(String::as_str))
                    )));
                }
                if prev.columns.iter().any(|pc| pc == c) {
                    return Err(fail(format!(
                        "both sides have a column `{c}`: list the columns to take in `columns`, or rename first"
                    )));
                }
            }
            let on: Vec<String> = pairs
                .iter()
                .map(|(l, r)| format!("l.{} = r.{}", quote_ident(l), quote_ident(r)))
                .collect();
            let kind = match j.how {
                JoinHow::Left => "left join",
                JoinHow::Inner => "join",
            };
            let mut items: Vec<String> = prev
                .columns
                .iter()
                .map(|c| format!("l.{}", quote_ident(c)))
                .collect();
            items.extend(take.iter().map(|c| format!("r.{}", quote_ident(c))));
            let mut columns = prev.columns.to_vec();
            columns.extend(take);
            Ok(Compiled {
                sql: format!(
                    "select {} from {from} l {kind} {} r on {}",
                    items.join(", "),
                    right.relation,
                    on.join(" and ")
                ),
                columns,
            })
        }
        Step::From(_) | Step::Sql(_) => Err(fail("compiled elsewhere".to_owned())),
    }
}

fn dedupe(d: &Dedupe, prev: &Source<'_>) -> Result<Compiled, String> {
    let keys = d.key.as_slice();
    for k in keys {
        if !prev.columns.iter().any(|c| c == k) {
            return Err(missing_column(k, prev.columns));
        }
    }
    let default_by = match d.keep {
        Keep::Latest => "updatedAt",
        Keep::First => "id",
    };
    let by = d.by.as_deref().unwrap_or(default_by);
    if !prev.columns.iter().any(|c| c == by) {
        return Err(format!(
            "{}; say which column orders duplicates with `by:`",
            missing_column(by, prev.columns)
        ));
    }
    let direction = match d.keep {
        Keep::Latest => "desc",
        Keep::First => "asc",
    };
    // Rows whose key is null are not duplicates of each other: they all stay.
    let null_key: Vec<String> = keys
        .iter()
        .map(|k| format!("{} is null", quote_ident(k)))
        .collect();
    let cols = list(prev.columns);
    let rank = "\"__drover_rank\"";
    Ok(Compiled {
        sql: format!(
            "select {cols} from (select *, row_number() over (partition by {} order by {} {direction} nulls last) as {rank} from {}) d where {rank} = 1 or {}",
            list(keys),
            quote_ident(by),
            prev.relation,
            null_key.join(" or ")
        ),
        columns: prev.columns.to_vec(),
    })
}

fn normalizer(op: Normalizer, x: &str) -> String {
    match op {
        Normalizer::Trim => format!("btrim({x})"),
        Normalizer::Lower => format!("lower({x})"),
        Normalizer::Upper => format!("upper({x})"),
        Normalizer::LowerTrim => format!("lower(btrim({x}))"),
        Normalizer::Whitespace => format!("regexp_replace(btrim({x}), '\\s+', ' ', 'g')"),
        Normalizer::TitleCase => format!("initcap({x})"),
        Normalizer::NullIfBlank => format!("nullif(btrim({x}), '')"),
        Normalizer::E164 => format!("drover_lib.e164({x})"),
        // Compiled as a join in `compile_step`; the function is the same mapping.
        Normalizer::IsoAlpha2 => format!("drover_lib.iso_country({x})"),
    }
}

fn list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_duplicate(cols: &[String]) -> Option<&str> {
    cols.iter()
        .enumerate()
        .find(|(i, c)| cols[..*i].contains(c))
        .map(|(_, c)| c.as_str())
}

pub(crate) fn missing_column(name: &str, columns: &[String]) -> String {
    format!(
        "no column `{name}` here{} (columns: {})",
        did_you_mean(name, columns.iter().map(String::as_str)),
        columns.join(", ")
    )
}

/// A SQL text without its trailing semicolons and whitespace (it becomes a sub-query).
pub(crate) fn as_subquery(sql: &str) -> &str {
    sql.trim_end().trim_end_matches(';').trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_spec::dag::map_kinds::{Join, JoinOn, OneOrMany};
    use indexmap::IndexMap;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn names_from_yaml_are_quoted_never_spliced() {
        let c = cols(&["id", "email"]);
        let prev = Source {
            relation: "s0",
            columns: &c,
        };
        let evil = r#"email" from x; drop table run; --"#;
        let step = Step::Select(vec![evil.to_owned()]);
        let err = compile_step(0, &step, &prev, &[], None).err();
        assert!(err.is_some_and(|e| e.message.starts_with("no column")));
        let mut map = IndexMap::new();
        map.insert("email".to_owned(), evil.to_owned());
        let out = compile_step(0, &Step::Rename(map), &prev, &[], None).expect("rename");
        assert!(
            out.sql.contains(r#""email"" from x; drop table run; --""#),
            "{}",
            out.sql
        );
    }

    #[test]
    fn dedupe_keeps_null_keys_and_orders_by_the_default_column() {
        let c = cols(&["id", "email", "updatedAt"]);
        let prev = Source {
            relation: "s0",
            columns: &c,
        };
        let step = Step::Dedupe(Dedupe {
            key: OneOrMany::One("email".to_owned()),
            keep: Keep::Latest,
            by: None,
        });
        let out = compile_step(1, &step, &prev, &[], None).expect("dedupe");
        assert!(
            out.sql.contains(r#"order by "updatedAt" desc nulls last"#),
            "{}",
            out.sql
        );
        assert!(out.sql.contains(r#""email" is null"#));
        assert_eq!(out.columns, c);
        let no_ts = cols(&["id", "email"]);
        let prev = Source {
            relation: "s0",
            columns: &no_ts,
        };
        let err = compile_step(1, &step, &prev, &[], None).expect_err("needs by");
        assert_eq!(err.step, 2);
        assert!(err.message.contains("`by:`"), "{}", err.message);
    }

    #[test]
    fn joins_refuse_clashing_columns_and_suggest_names() {
        let l = cols(&["id", "email"]);
        let r = cols(&["id", "email", "score"]);
        let prev = Source {
            relation: "s0",
            columns: &l,
        };
        let right = Source {
            relation: "\"staging\".\"x\"",
            columns: &r,
        };
        let join = |columns| {
            Step::Join(Join {
                input: "scores".to_owned(),
                on: JoinOn::Same("id".to_owned()),
                columns,
                how: JoinHow::Left,
            })
        };
        let err = compile_step(0, &join(None), &prev, &[], Some(&right)).expect_err("clash");
        assert!(
            err.message.contains("both sides have a column `email`"),
            "{}",
            err.message
        );
        let out = compile_step(
            0,
            &join(Some(vec!["score".to_owned()])),
            &prev,
            &[],
            Some(&right),
        )
        .expect("join");
        assert_eq!(out.columns, cols(&["id", "email", "score"]));
        let err = compile_step(
            0,
            &join(Some(vec!["scor".to_owned()])),
            &prev,
            &[],
            Some(&right),
        )
        .expect_err("typo");
        assert!(
            err.message.contains("did you mean `score`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn derive_replaces_existing_columns_in_place() {
        let c = cols(&["id", "leadScore"]);
        let prev = Source {
            relation: "s0",
            columns: &c,
        };
        let mut map = IndexMap::new();
        map.insert("leadScore".to_owned(), String::new());
        map.insert("tier".to_owned(), String::new());
        let rendered = vec!["\"leadScore\" + 1".to_owned(), "'a'".to_owned()];
        let out = compile_step(0, &Step::Derive(map), &prev, &rendered, None).expect("derive");
        assert_eq!(out.columns, cols(&["id", "leadScore", "tier"]));
        assert!(
            out.sql
                .starts_with(r#"select "id", ("leadScore" + 1) as "leadScore", ('a') as "tier""#),
            "{}",
            out.sql
        );
    }
}
