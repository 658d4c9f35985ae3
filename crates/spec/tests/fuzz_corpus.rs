//! Replays the fuzzers' committed corpus (`fuzz/corpus/<target>/`, kept by `scripts/fuzz`) on
//! stable, in every test run: each input once more through the same entry points as the fuzz
//! targets, so an input that once broke them stays fixed.

use std::path::Path;

fn replay(target: &str, run: impl Fn(&str)) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(text) = std::str::from_utf8(&bytes) {
            run(text);
        }
        n += 1;
    }
    n
}

#[test]
fn dag_files_from_the_corpus_load_or_fail_cleanly() {
    let n = replay("dag_yaml", |t| {
        let _ = drover_spec::dag::load_dag("dags/fuzzed.yaml", t);
    });
    assert!(n >= 20, "the corpus has {n} inputs");
}

#[test]
fn environment_files_from_the_corpus_load_or_fail_cleanly() {
    let n = replay("environment_yaml", |t| {
        let _ = drover_spec::environment::load_environment("environments/dev.yaml", t);
    });
    assert!(n >= 4, "the corpus has {n} inputs");
}

#[test]
fn templates_from_the_corpus_render_or_fail_cleanly() {
    let n = replay("template", drover_spec::template::fuzz_one);
    assert!(n >= 20, "the corpus has {n} inputs");
}
