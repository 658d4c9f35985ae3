//! `/healthz` (the process answers), `/readyz` (the database answers) and `/metrics`
//! (Prometheus text: runs by state, task durations, schedule lag, queue depth, MAP API calls
//! and errors, check values, data SLOs, deadlines and data freshness).

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::WebState;

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

async fn ready(State(state): State<WebState>) -> Response {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database does not answer ({e})\n"),
        )
            .into_response(),
    }
}

/// A label value escaped as the exposition format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];

async fn metrics(State(state): State<WebState>) -> Response {
    let m = match state.store().metric_counts().await {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("# the database does not answer: {e}\n"),
            )
                .into_response();
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP drover_up Whether this Drover web process is up.\n# TYPE drover_up gauge\ndrover_up 1"
    );
    let _ = writeln!(
        out,
        "# HELP drover_uptime_seconds Seconds since this process started.\n# TYPE drover_uptime_seconds gauge\ndrover_uptime_seconds {:.0}",
        state.uptime().as_secs_f64()
    );
    let maintenance = state.store().maintenance().await.ok().flatten();
    let _ = writeln!(
        out,
        "# HELP drover_maintenance Whether Drover is in maintenance (no run created or started, no task claimed).
# TYPE drover_maintenance gauge
drover_maintenance {}",
        u8::from(maintenance.is_some())
    );
    write_slos(&mut out, &state).await;
    write_freshness(&mut out, &state).await;
    let _ = writeln!(
        out,
        "# HELP drover_deadlines_missed Runs and tasks that missed their deadline in the last day.\n# TYPE drover_deadlines_missed gauge"
    );
    for (env, n) in state
        .store()
        .deadline_misses_last_day()
        .await
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "drover_deadlines_missed{{environment=\"{}\"}} {n}",
            label(&env)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_runs_with_warnings Runs that succeeded with warnings (a warn check breached, rows rejected, a deadline missed, a partial interval) in the last day.\n# TYPE drover_runs_with_warnings gauge"
    );
    for (env, n) in state
        .store()
        .warned_runs_last_day()
        .await
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "drover_runs_with_warnings{{environment=\"{}\"}} {n}",
            label(&env)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_runs Runs by state: unfinished ones, and those finished in the last day.\n# TYPE drover_runs gauge"
    );
    for (env, st, n) in &m.runs_by_state {
        let _ = writeln!(
            out,
            "drover_runs{{environment=\"{}\",state=\"{}\"}} {n}",
            label(env),
            label(st)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_task_instances Unfinished task instances by state.\n# TYPE drover_task_instances gauge"
    );
    for (env, st, n) in &m.tasks_by_state {
        let _ = writeln!(
            out,
            "drover_task_instances{{environment=\"{}\",state=\"{}\"}} {n}",
            label(env),
            label(st)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_queue_depth Task instances queued for a worker.\n# TYPE drover_queue_depth gauge"
    );
    let _ = writeln!(
        out,
        "# HELP drover_queue_oldest_seconds Age of the oldest queued task instance.\n# TYPE drover_queue_oldest_seconds gauge"
    );
    for (env, n, age) in &m.queue {
        let _ = writeln!(
            out,
            "drover_queue_depth{{environment=\"{}\"}} {n}",
            label(env)
        );
        let _ = writeln!(
            out,
            "drover_queue_oldest_seconds{{environment=\"{}\"}} {age:.1}",
            label(env)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_task_duration_seconds Durations of task tries finished in the last hour.\n# TYPE drover_task_duration_seconds histogram"
    );
    let mut by_env: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for (env, secs) in &m.task_durations {
        by_env.entry(env).or_default().push(*secs);
    }
    for (env, secs) in &by_env {
        for b in DURATION_BUCKETS {
            let n = secs.iter().filter(|s| **s <= b).count();
            let _ = writeln!(
                out,
                "drover_task_duration_seconds_bucket{{environment=\"{}\",le=\"{b}\"}} {n}",
                label(env)
            );
        }
        let _ = writeln!(
            out,
            "drover_task_duration_seconds_bucket{{environment=\"{}\",le=\"+Inf\"}} {}",
            label(env),
            secs.len()
        );
        let _ = writeln!(
            out,
            "drover_task_duration_seconds_sum{{environment=\"{}\"}} {:.3}",
            label(env),
            secs.iter().sum::<f64>()
        );
        let _ = writeln!(
            out,
            "drover_task_duration_seconds_count{{environment=\"{}\"}} {}",
            label(env),
            secs.len()
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_task_failures_1h Task tries that failed in the last hour.\n# TYPE drover_task_failures_1h gauge"
    );
    for (env, n) in &m.failed_tries_1h {
        let _ = writeln!(
            out,
            "drover_task_failures_1h{{environment=\"{}\"}} {n}",
            label(env)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_schedule_lag_seconds How long after its interval ended the latest scheduled run was created.\n# TYPE drover_schedule_lag_seconds gauge"
    );
    for (env, dag, lag) in &m.schedule_lag {
        let _ = writeln!(
            out,
            "drover_schedule_lag_seconds{{environment=\"{}\",dag=\"{}\"}} {lag:.1}",
            label(env),
            label(dag)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_map_api_calls_today MAP API calls spent today from the environment's daily budget.\n# TYPE drover_map_api_calls_today gauge"
    );
    for (env, n) in &m.api_calls_today {
        let _ = writeln!(
            out,
            "drover_map_api_calls_today{{environment=\"{}\"}} {n}",
            label(env)
        );
    }
    let _ = writeln!(
        out,
        "# HELP drover_check_value Latest value of each data check.\n# TYPE drover_check_value gauge"
    );
    let _ = writeln!(
        out,
        "# HELP drover_check_passed Whether each data check's latest result held (1) or not (0).\n# TYPE drover_check_passed gauge"
    );
    for (env, dag, task, value, passed) in &m.checks {
        let l = format!(
            "environment=\"{}\",dag=\"{}\",check=\"{}\"",
            label(env),
            label(dag),
            label(task)
        );
        if let Some(v) = value {
            let _ = writeln!(out, "drover_check_value{{{l}}} {v}");
        }
        let _ = writeln!(out, "drover_check_passed{{{l}}} {}", u8::from(*passed));
    }
    let _ = writeln!(
        out,
        "# HELP drover_http_request_duration_seconds Server time of requests to the UI and API, by route, since this process started.\n# TYPE drover_http_request_duration_seconds histogram"
    );
    for ((method, route), h) in crate::timing::snapshot() {
        let l = format!("method=\"{}\",route=\"{}\"", label(&method), label(&route));
        let mut cumulative = 0;
        for (b, n) in crate::timing::BOUNDS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "drover_http_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "drover_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "drover_http_request_duration_seconds_sum{{{l}}} {:.6}",
            h.sum
        );
        let _ = writeln!(
            out,
            "drover_http_request_duration_seconds_count{{{l}}} {}",
            h.count
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Each data SLO's indicator, error budget left and burn rates.
async fn write_slos(out: &mut String, state: &WebState) {
    let Ok(slos) = crate::slos::slo_lines(state, None).await else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP drover_slo_objective Share of checks that must pass over the SLO's period.\n# TYPE drover_slo_objective gauge\n\
         # HELP drover_slo_sli Share of checks that passed over the SLO's period.\n# TYPE drover_slo_sli gauge\n\
         # HELP drover_slo_error_budget_remaining Share of the error budget left (below 0: overspent).\n# TYPE drover_slo_error_budget_remaining gauge\n\
         # HELP drover_slo_burn_rate How fast the error budget is spent (1: exactly over the period).\n# TYPE drover_slo_burn_rate gauge"
    );
    for s in &slos {
        let labels = format!(
            "environment=\"{}\",dag=\"{}\",check=\"{}\"",
            label(&s.environment),
            label(&s.dag_id),
            label(&s.task_id)
        );
        let _ = writeln!(out, "drover_slo_objective{{{labels}}} {}", num(s.objective));
        if let Some(sli) = s.status.sli {
            let _ = writeln!(out, "drover_slo_sli{{{labels}}} {}", num(sli));
        }
        let _ = writeln!(
            out,
            "drover_slo_error_budget_remaining{{{labels}}} {}",
            num(s.status.budget_remaining)
        );
        for (window, burn) in [("1h", s.status.burn_1h), ("6h", s.status.burn_6h)] {
            if let Some(b) = burn {
                let _ = writeln!(
                    out,
                    "drover_slo_burn_rate{{{labels},window=\"{window}\"}} {}",
                    num(b)
                );
            }
        }
    }
}

/// Whether each DAG's (`task=""`) and task's data that declares `freshness` is stale, and
/// how old it is.
async fn write_freshness(out: &mut String, state: &WebState) {
    let Ok(lines) = crate::freshness::lines(state, None).await else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP drover_data_stale Whether a DAG's (task=\"\") or task's data is older than its freshness max_age allows.\n# TYPE drover_data_stale gauge\n\
         # HELP drover_data_age_seconds Seconds since a DAG's (task=\"\") or task's data was refreshed (never refreshed: since the DAG came into the environment).\n# TYPE drover_data_age_seconds gauge"
    );
    for l in &lines {
        let s = &l.state;
        let labels = format!(
            "environment=\"{}\",dag=\"{}\",task=\"{}\"",
            label(&s.environment),
            label(&s.dag_id),
            label(&s.task_id)
        );
        let _ = writeln!(out, "drover_data_stale{{{labels}}} {}", u8::from(s.stale));
        let _ = writeln!(out, "drover_data_age_seconds{{{labels}}} {}", s.age_secs);
    }
}

/// A ratio without float noise: `25`, not `24.999999999999975`.
fn num(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}
