//! Every broken fixture in `tests/fixtures/invalid` produces exactly the diagnostics its
//! `# expect: LINE:COL: message` comments announce (message matched as a prefix).

use std::path::{Path, PathBuf};

use drover_spec::dag::load_dag;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn expectations(source: &str) -> Vec<(usize, usize, String)> {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let mut parts = e.splitn(3, ':');
            let num = |p: Option<&str>| p.and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            let line = num(parts.next());
            let col = num(parts.next());
            (line, col, parts.next().unwrap_or("").trim().to_owned())
        })
        .collect()
}

#[test]
fn each_fixture_reports_its_expected_diagnostics() {
    let files = fixtures();
    assert!(files.len() >= 14, "fixtures missing: found {}", files.len());
    let mut failures = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let expected = expectations(&source);
        assert!(!expected.is_empty(), "{name} has no `# expect:` line");
        let diags = match load_dag(&name, &source) {
            Ok(_) => {
                failures.push(format!("{name}: loaded without errors"));
                continue;
            }
            Err(d) => d,
        };
        let found: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect();
        if diags.len() != expected.len() {
            failures.push(format!(
                "{name}: expected {} diagnostics, got {found:#?}",
                expected.len()
            ));
            continue;
        }
        for ((line, col, message), d) in expected.iter().zip(&diags) {
            if (d.line, d.column) != (*line, *col) || !d.message.starts_with(message.as_str()) {
                failures.push(format!(
                    "{name}: expected {line}:{col}: {message}\n  got {found:#?}"
                ));
            }
            assert!(
                d.to_string()
                    .starts_with(&format!("{name}:{}:{}: ", d.line, d.column))
            );
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn shipped_example_dags_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dags");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let result = load_dag(&path.display().to_string(), &source);
        if let Err(diags) = &result {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("{}", text.join("\n"));
        }
        count += 1;
    }
    assert!(count >= 4, "expected the example DAGs, found {count}");
}
