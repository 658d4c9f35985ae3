//! What a page says about a DAG's tasks: their kind in a word, and the graph.

use drover_spec::dag::{Dag, TaskKind};

use super::graph_svg::{GraphNode, dag_svg};

pub(crate) fn kind_word(kind: &TaskKind) -> &'static str {
    match kind {
        TaskKind::Export(_) => "export",
        TaskKind::Transform(_) => "transform",
        TaskKind::Return(_) => "return",
        TaskKind::Sql { .. } => "sql",
        TaskKind::Check(_) => "check",
        TaskKind::Command(_) => "command",
        TaskKind::Noop(_) => "noop",
    }
}

/// The DAG's graph, each task coloured by `state_of` and linked by `href_of`.
pub(crate) fn graph(
    dag: &Dag,
    state_of: impl Fn(&str) -> Option<String>,
    href_of: impl Fn(&str) -> Option<String>,
) -> String {
    let states: Vec<Option<String>> = dag.tasks.iter().map(|t| state_of(&t.id)).collect();
    let nodes: Vec<GraphNode<'_>> = dag
        .tasks
        .iter()
        .zip(&states)
        .map(|(t, s)| GraphNode {
            id: &t.id,
            label: &t.id,
            state: s.as_deref(),
            href: href_of(&t.id),
        })
        .collect();
    let mut edges = Vec::new();
    for (i, t) in dag.tasks.iter().enumerate() {
        for up in &t.depends_on {
            if let Some(j) = dag.task_index(up) {
                edges.push((j, i));
            }
        }
    }
    dag_svg(&nodes, &edges)
}
