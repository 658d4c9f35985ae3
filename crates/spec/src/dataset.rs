//! Names of staged datasets: one table per task output per run, in the schema of the run's
//! environment (`staging_<env>`); return receipts and the values before a write in the
//! environment's receipts schema (`receipts_<env>`), which user SQL can only read.

/// The schema of the layout before one schema per environment; its tables move to their
/// environment's schema when Drover provisions the environment.
pub const OLD_STAGING_SCHEMA: &str = "staging";

/// The schema holding an environment's staged datasets: user SQL of that environment can
/// read and write it, and nothing of another environment.
pub fn staging_schema(environment: &str) -> String {
    format!("staging_{environment}")
}

/// The schema holding an environment's return receipts and values-before snapshots: written
/// only by Drover, readable by that environment's SQL role.
pub fn receipts_schema(environment: &str) -> String {
    format!("receipts_{environment}")
}

/// The role an environment's user SQL runs as.
pub fn sql_role(environment: &str) -> String {
    format!("drover_sql_{environment}")
}

/// Postgres truncates identifiers longer than this many bytes.
const MAX_IDENTIFIER: usize = 63;

/// The table of a task's dataset in a run (`run` is the run id without dashes), optionally a
/// companion table (`suffix`, e.g. `receipt`). Names that would exceed Postgres's identifier
/// limit are shortened with a hash of the full name, so distinct tasks never share a table.
pub fn table_name(run: &str, task_id: &str, suffix: Option<&str>) -> String {
    let full = match suffix {
        Some(s) => format!("{run}__{task_id}__{s}"),
        None => format!("{run}__{task_id}"),
    };
    if full.len() <= MAX_IDENTIFIER {
        return full;
    }
    let hash = format!("{:016x}", fnv1a(full.as_bytes()));
    let keep = MAX_IDENTIFIER - hash.len() - 1;
    let mut cut = keep;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}", &full[..cut])
}

/// A task's dataset in a run of `environment`, as a quoted, schema-qualified SQL relation:
/// `"staging_<env>"."<run>__<task>"`.
pub fn relation(environment: &str, run: &str, task_id: &str) -> String {
    quoted_relation(
        &staging_schema(environment),
        &table_name(run, task_id, None),
    )
}

/// `"<schema>"."<table>"`.
pub fn quoted_relation(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// A SQL identifier, always quoted (embedded quotes doubled), so names from YAML can never
/// change the statement they appear in.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal (embedded quotes doubled), for names that must appear as text, such as
/// JSON keys. Values are bound, never written this way.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "0193a5b2c3d4e5f6a7b8c9d0e1f2a3b4";

    #[test]
    fn short_names_are_readable() {
        assert_eq!(table_name(RUN, "score", None), format!("{RUN}__score"));
        assert_eq!(
            table_name(RUN, "push", Some("receipt")),
            format!("{RUN}__push__receipt")
        );
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let a = table_name(RUN, "a_very_long_task_identifier_number_one", None);
        let b = table_name(RUN, "a_very_long_task_identifier_number_two", None);
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(
            quote_ident(r#"x"; drop table run; --"#),
            r#""x""; drop table run; --""#
        );
        assert_eq!(
            relation("dev", RUN, "t"),
            format!("\"staging_dev\".\"{RUN}__t\"")
        );
    }
}
