//! Task logs: lines of a try, appended in batches and read back in order.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Drover's own lines about the try (started, exit code, timeout…).
    System,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::System => "system",
        }
    }
}

/// A line to append.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub ti_id: i64,
    pub try_number: i32,
    pub stream: LogStream,
    pub line: String,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct StoredLogLine {
    pub id: i64,
    pub try_number: i32,
    pub at: DateTime<Utc>,
    pub stream: String,
    pub line: String,
}

impl Store {
    pub async fn append_logs(&self, lines: &[LogLine]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_lines(&mut conn, lines).await
    }

    /// Lines of a task instance after line id `after` (0 for all), for one try or all.
    pub async fn read_logs(
        &self,
        ti_id: i64,
        try_number: Option<i32>,
        after: i64,
    ) -> Result<Vec<StoredLogLine>> {
        Ok(sqlx::query_as(
            "select id, try_number, at, stream, line from task_log \
             where task_instance_id = $1 and ($2::int is null or try_number = $2) and id > $3 \
             order by try_number, id limit 10000",
        )
        .bind(ti_id)
        .bind(try_number)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Append `lines` on `conn` (in its transaction, if it is in one).
pub(crate) async fn insert_lines(conn: &mut sqlx::PgConnection, lines: &[LogLine]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let (ids, tries, streams, texts) = line_columns(lines);
    sqlx::query(
        "insert into task_log (task_instance_id, try_number, stream, line) \
         select * from unnest($1::bigint[], $2::int[], $3::text[], $4::text[])",
    )
    .bind(ids)
    .bind(tries)
    .bind(streams)
    .bind(texts)
    .execute(conn)
    .await?;
    Ok(())
}

/// `lines` as the columns of `task_log` they fill (task instance, try, stream, text), for
/// one insert of all of them from `unnest` of four arrays.
pub(crate) fn line_columns(
    lines: &[LogLine],
) -> (Vec<i64>, Vec<i32>, Vec<&'static str>, Vec<String>) {
    (
        lines.iter().map(|l| l.ti_id).collect(),
        lines.iter().map(|l| l.try_number).collect(),
        lines.iter().map(|l| l.stream.as_str()).collect(),
        lines.iter().map(|l| l.line.replace('\0', "")).collect(),
    )
}
