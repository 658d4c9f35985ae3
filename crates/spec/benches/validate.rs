//! Benchmark: parse and validate many DAG files.
//!
//! Workload: N generated DAG files (default 10,000), cycling through four shapes modelled on the
//! example DAGs (export → transform → return with templates and a check; an hourly fan-out of
//! 12 exports into one transform; a chain of 8 SQL steps; a command/check mix), each with a
//! unique id, its own schedule and time zone. Every file is valid, so the full validation runs
//! (structure, ids, dependencies, graph, cron, templates). Files are generated in memory and
//! loaded with `drover_spec::dag::load_dags` (all cores), the same call `drover dags validate`
//! makes after reading the files.
//!
//!     cargo bench -p drover-spec --bench validate              # 10,000 files, 5 rounds
//!     cargo bench -p drover-spec --bench validate -- 1000 1    # N files, rounds
//!     cargo bench -p drover-spec --bench validate -- 10000 1 --write /tmp/dags   # also write them
//!
//! Prints the best and median round, and files per second.

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod generated;

fn dag_source(i: usize) -> (String, String) {
    let path = format!("dags/{}.yaml", generated::dag_id(i));
    (
        path,
        generated::dag_yaml(i, &format!("Generated DAG number {i}")),
    )
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let write_to = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1));

    let files: Vec<(String, String)> = (0..n).map(dag_source).collect();
    let bytes: usize = files.iter().map(|(_, s)| s.len()).sum();
    if let Some(dir) = write_to {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {dir}: {e}");
            std::process::exit(2);
        }
        for (name, source) in &files {
            let path = std::path::Path::new(dir).join(name.trim_start_matches("dags/"));
            if let Err(e) = std::fs::write(&path, source) {
                eprintln!("cannot write {}: {e}", path.display());
                std::process::exit(2);
            }
        }
        println!("wrote {n} files to {dir}");
    }

    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let results = drover_spec::dag::load_dags(&files);
        let elapsed = start.elapsed();
        let invalid = results.iter().filter(|r| r.is_err()).count();
        if invalid > 0 {
            if let Some(Err(d)) = results.iter().find(|r| r.is_err()) {
                eprintln!("{}", d[0]);
            }
            eprintln!("{invalid} generated files were invalid: the benchmark is broken");
            std::process::exit(1);
        }
        times.push(elapsed);
    }
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "validate: {n} DAG files ({:.1} MiB) on {cores} cores: best {:.1} ms, median {:.1} ms ({:.0} files/s)",
        bytes as f64 / 1_048_576.0,
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        n as f64 / median.as_secs_f64()
    );
}
