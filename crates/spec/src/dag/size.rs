//! The size cap on DAG files: a file over it is refused before it is read, with its size and
//! the limit, so one huge file costs neither memory nor validation time.

use crate::bytes::ByteSize;
use crate::diagnostic::{Diagnostic, Position};

/// Largest DAG file read unless configured otherwise (`--max-dag-bytes`).
pub const DEFAULT_MAX_DAG_BYTES: u64 = 1_000_000;

/// `Err` with the file's one diagnostic when `size` (from the file system or git, before
/// reading) is over `limit`.
pub fn check_dag_size(file: &str, size: u64, limit: u64) -> Result<(), Diagnostic> {
    if size <= limit {
        return Ok(());
    }
    Err(Diagnostic::new(
        file,
        Position::START,
        format!(
            "file is {} ({size} bytes), over the {} limit for a DAG file: it was not read \
             (split it, or raise the limit with --max-dag-bytes or DROVER_MAX_DAG_BYTES)",
            ByteSize(size),
            ByteSize(limit)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_with_both_sizes() {
        assert!(check_dag_size("a.yaml", 1_000_000, DEFAULT_MAX_DAG_BYTES).is_ok());
        let Err(d) = check_dag_size("dags/big.yaml", 52_428_800, DEFAULT_MAX_DAG_BYTES) else {
            panic!("a 50 MB file must be refused");
        };
        assert_eq!(
            d.to_string(),
            "dags/big.yaml:1:1: file is 52.4 MB (52428800 bytes), over the 1 MB limit for a DAG \
             file: it was not read (split it, or raise the limit with --max-dag-bytes or \
             DROVER_MAX_DAG_BYTES)"
        );
    }
}
