//! The graph of a DAG's tasks, as a page shows it.

use drover_spec::dag::Dag;

use super::graph_svg::{GraphNode, dag_svg};

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
