//! Validation costs time in proportion to a file's size and its number of problems: a file
//! with 10,000 missing dependencies is checked in well under a second in a release build
//! (it took 35 s when each error was compared with every task id and re-scanned the file for
//! its snippet), and keeps only the first problems, with a count of the rest. A debug build
//! spends most of that time reading the YAML itself, so it gets more room.

use std::time::{Duration, Instant};

use drover_spec::dag::load_dag;
use drover_spec::diagnostic::MAX_DIAGNOSTICS_PER_FILE;

/// A DAG of `n` tasks, each depending on a task that does not exist (`n` errors).
fn missing_dependencies(n: usize) -> String {
    let mut s = String::from("id: big\ntasks:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - id: task_{i}\n    noop: {{}}\n    depends_on: [upstream_{i}]\n"
        ));
    }
    s
}

/// One task depending on `n` tasks that do not exist.
fn one_task_many_missing(n: usize) -> String {
    let mut s = String::from("id: big\ntasks:\n  - id: t\n    noop: {}\n    depends_on:\n");
    for i in 0..n {
        s.push_str(&format!("      - gone_{i}\n"));
    }
    s
}

fn time_errors(source: &str) -> (Duration, Vec<drover_spec::diagnostic::Diagnostic>) {
    let start = Instant::now();
    let result = load_dag("dags/big.yaml", source);
    let took = start.elapsed();
    let Err(diags) = result else {
        panic!("the DAG must not validate");
    };
    (took, diags)
}

#[test]
fn ten_thousand_missing_dependencies_validate_in_linear_time() {
    for source in [missing_dependencies(10_000), one_task_many_missing(10_000)] {
        let (took, diags) = time_errors(&source);
        eprintln!(
            "{} bytes, 10,000 missing dependencies: {took:?}",
            source.len()
        );
        assert_eq!(diags.len(), MAX_DIAGNOSTICS_PER_FILE + 1, "capped");
        assert!(
            diags[0].message.contains("which is not a task of this DAG"),
            "{}",
            diags[0]
        );
        assert!(diags[0].snippet.is_some(), "snippets are kept");
        let last = &diags[MAX_DIAGNOSTICS_PER_FILE];
        assert!(
            last.message.starts_with("and 9000 more problem(s)"),
            "{last}"
        );
        let limit = if cfg!(debug_assertions) {
            Duration::from_secs(6)
        } else {
            Duration::from_secs(1)
        };
        assert!(took < limit, "10,000 errors took {took:?}");
    }
}

#[test]
fn close_names_are_still_suggested() {
    let source = "id: big\ntasks:\n  - id: export_leads\n    noop: {}\n  - id: score\n    noop: {}\n    depends_on: [export_lead]\n";
    let Err(diags) = load_dag("dags/big.yaml", source) else {
        panic!("must not validate");
    };
    assert!(
        diags[0].message.ends_with("did you mean `export_leads`?"),
        "{}",
        diags[0]
    );
}
