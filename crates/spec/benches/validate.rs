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

const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/Berlin",
    "UTC",
    "Asia/Tokyo",
    "Australia/Sydney",
];
const SCHEDULES: &[&str] = &[
    "0 2 * * *",
    "15 * * * *",
    "*/20 8-18 * * 1-5",
    "@daily",
    "30 6 1,15 * *",
];

fn dag_source(i: usize) -> (String, String) {
    let id = format!("dag_{i:05}");
    let zone = ZONES[i % ZONES.len()];
    let schedule = SCHEDULES[i % SCHEDULES.len()];
    let header = format!(
        "id: {id}\ndescription: Generated DAG number {i}\nowner: team{}@example.com\ntags: [generated, shape{}]\nschedule: \"{schedule}\"\ntimezone: {zone}\nstart_date: 2026-01-01\nparams:\n  limit: {{ type: integer, default: {} }}\ndefaults: {{ retries: 2, retry_delay: 1m, timeout: 30m }}\ntasks:\n",
        i % 17,
        i % 4,
        100 + i
    );
    let body = match i % 4 {
        0 => r#"  - id: export_leads
    export: { object: leads, fields: [id, email, country], filter: { updated_at: { since: "{{ data_interval.start }}" } } }
  - id: export_activities
    export: { object: activities, types: [visit_web_page], since: "{{ data_interval.start }}" }
  - id: score
    depends_on: [export_leads, export_activities]
    transform:
      - normalize: { email: lower_trim }
      - dedupe: { key: email, keep: latest }
      - sql: "select * from {{ input.export_leads }} l join {{ input.export_activities }} a on a.lead_id = l.id limit {{ params.limit }}"
  - id: push
    depends_on: [score]
    return: { object: leads, lookup: id, fields: [leadScore] }
  - id: volume
    depends_on: [export_leads]
    check: { sql: "select count(*) from {{ input.export_leads }}", between: [1, 100000], severity: warn }
"#
        .to_owned(),
        1 => {
            let mut s = String::new();
            for n in 0..12 {
                s.push_str(&format!(
                    "  - id: export_{n}\n    export: {{ object: activities, types: [type_{n}], since: \"{{{{ data_interval.start }}}}\" }}\n"
                ));
            }
            let deps: Vec<String> = (0..12).map(|n| format!("export_{n}")).collect();
            s.push_str(&format!(
                "  - id: combine\n    depends_on: [{}]\n    transform:\n      - sql: \"select * from {{{{ input.export_0 }}}} union all select * from {{{{ input.export_11 }}}}\"\n",
                deps.join(", ")
            ));
            s
        }
        2 => {
            let mut s = String::new();
            for n in 0..8 {
                let dep = if n == 0 { String::new() } else { format!("    depends_on: [step_{}]\n", n - 1) };
                s.push_str(&format!(
                    "  - id: step_{n}\n{dep}    sql: \"insert into t{n} select * from source where day = '{{{{ ds }}}}'\"\n"
                ));
            }
            s
        }
        _ => r#"  - id: extract
    command: { argv: [python3, extract.py, "--since={{ data_interval.start }}"], env: { TARGET: "{{ env.name }}" } }
  - id: verify
    depends_on: [extract]
    check: { sql: "select count(*) from staged", min: 1 }
  - id: report
    depends_on: [verify]
    trigger_rule: all_done
    command: { shell: "echo done for {{ ds }}" }
"#
        .to_owned(),
    };
    (format!("dags/{id}.yaml"), header + &body)
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
