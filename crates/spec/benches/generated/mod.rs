//! Generated DAG files for benchmarks: four shapes modelled on the example DAGs (export →
//! transform → return with templates and a check; an hourly fan-out of 12 exports into one
//! transform; a chain of 8 SQL steps; a command/check mix), each with a unique id, its own
//! schedule and time zone. Shared by the validation and git-sync benchmarks.
#![allow(dead_code, unreachable_pub)]

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

/// The id (and file name) of generated DAG `i`.
pub fn dag_id(i: usize) -> String {
    format!("dag_{i:05}")
}

/// A realistic DAG file, one of four shapes; its id is its file name.
pub fn dag_yaml(i: usize, description: &str) -> String {
    let id = dag_id(i);
    let zone = ZONES[i % ZONES.len()];
    let schedule = SCHEDULES[i % SCHEDULES.len()];
    let header = format!(
        "id: {id}\ndescription: {description}\nowner: team{}@example.com\ntags: [generated, shape{}]\nschedule: \"{schedule}\"\ntimezone: {zone}\nstart_date: 2026-01-01\nparams:\n  limit: {{ type: integer, default: {} }}\ndefaults: {{ retries: 2, retry_delay: 1m, timeout: 30m }}\ntasks:\n",
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
                    "  - id: step_{n}\n{dep}    sql: \"insert into t{n} select * from source where day = {{{{ ds }}}}\"\n"
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
    header + &body
}
