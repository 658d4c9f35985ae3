//! `transform`: the steps compiled to one `create table … as with …` in the staging schema.

use drover_spec::dag::map_kinds::Step;
use drover_spec::template::render_sql;
use drover_store::TryMetrics;
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr};

use super::transform_sql::{Source, as_subquery, compile_step};
use super::{DataPlane, TaskError, TryId, rows_metrics, staged};
use crate::runner::Job;

pub(super) async fn run(
    plane: &DataPlane,
    conn: &mut sqlx::PgConnection,
    id: &TryId,
    job: &Job<'_>,
    steps: &[Step],
) -> Result<TryMetrics, TaskError> {
    let primary = match steps.first() {
        Some(Step::From(task)) => task.clone(),
        _ => job.task.depends_on.first().cloned().ok_or_else(|| {
            TaskError::Invalid("a transform needs an upstream task to read".to_owned())
        })?,
    };
    let input = staged::input(plane, id, &primary).await?;
    job.log
        .system(format!("reading {} rows of `{primary}`", input.rows));
    let mut ctes = vec![format!("\"s0\" as (select * from {})", input.relation)];
    let mut prev = "\"s0\"".to_owned();
    let mut columns = input.column_names();
    for (i, step) in steps.iter().enumerate() {
        let field = format!("transform[{i}].{}", step.name());
        let name = format!("\"s{}\"", i + 1);
        let sql = match step {
            Step::From(_) => continue,
            Step::Sql(text) => {
                let mut ctx = job.context.clone();
                ctx.previous = Some(prev.clone());
                let sql = render_sql(text, &field, &ctx)
                    .map_err(|e| TaskError::Invalid(e.to_string()))?;
                let body = as_subquery(&sql).to_owned();
                let probe = format!(
                    "with {}, {name} as ({body}) select * from {name}",
                    ctes.join(", ")
                );
                let described = (&mut *conn)
                    .describe(AssertSqlSafe(probe).into_sql_str())
                    .await
                    .map_err(|e| step_error(i, step, e))?;
                columns = described
                    .columns()
                    .iter()
                    .map(|c| sqlx::Column::name(c).to_owned())
                    .collect();
                body
            }
            _ => {
                let rendered = expressions(step)
                    .iter()
                    .map(|text| render_sql(text, &field, &job.context))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TaskError::Invalid(e.to_string()))?;
                let joined = match step {
                    Step::Join(j) => Some(staged::input(plane, id, &j.input).await?),
                    _ => None,
                };
                let joined_cols = joined.as_ref().map(staged::Input::column_names);
                let right = joined
                    .as_ref()
                    .zip(joined_cols.as_ref())
                    .map(|(j, c)| Source {
                        relation: &j.relation,
                        columns: c,
                    });
                let compiled = compile_step(
                    i,
                    step,
                    &Source {
                        relation: &prev,
                        columns: &columns,
                    },
                    &rendered,
                    right.as_ref(),
                )
                .map_err(|e| TaskError::Invalid(e.to_string()))?;
                columns = compiled.columns;
                compiled.sql
            }
        };
        ctes.push(format!("{name} as ({sql})"));
        prev = name;
    }
    let table = staged::output_table(id);
    let relation = staged::output_relation(id);
    let create = format!(
        "create table {relation} as with {} select * from {prev}",
        ctes.join(", ")
    );
    let rows = staged::replace(conn, &relation, create).await?;
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    staged::register_output(plane, conn, id, &table, rows).await?;
    job.log.system(format!("wrote {rows} rows"));
    Ok(rows_metrics(Some(input.rows), rows))
}

/// The texts of a step that are templates to render before compiling.
fn expressions(step: &Step) -> Vec<String> {
    match step {
        Step::Filter(cond) => vec![cond.clone()],
        Step::Derive(map) => map.values().cloned().collect(),
        _ => Vec::new(),
    }
}

fn step_error(i: usize, step: &Step, e: sqlx::Error) -> TaskError {
    let message = match &e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    };
    match TaskError::from(e) {
        TaskError::Invalid(_) => {
            TaskError::Invalid(format!("step {} (`{}`): {message}", i + 1, step.name()))
        }
        other => other,
    }
}
