//! The task graph of a DAG (petgraph): order, cycles, upstream and downstream.
//!
//! Node `i` is the task at index `i` of the DAG's task list; an edge `a → b` means `b` depends
//! on `a` (a runs before b).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed, Walker};

/// A cycle, as task indices in dependency order; the first task is repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<usize>);

/// An acyclic task graph with its topological order.
#[derive(Debug, Clone)]
pub struct TaskGraph {
    graph: DiGraph<(), ()>,
    order: Vec<usize>,
}

impl TaskGraph {
    /// Build from `upstreams[i]` = indices task `i` depends on.
    pub fn build(upstreams: &[Vec<usize>]) -> Result<Self, Cycle> {
        let mut graph =
            DiGraph::with_capacity(upstreams.len(), upstreams.iter().map(Vec::len).sum());
        for _ in upstreams {
            graph.add_node(());
        }
        for (task, ups) in upstreams.iter().enumerate() {
            // Each edge once (`update_edge` would search the edges so far for every one).
            let mut seen = std::collections::HashSet::with_capacity(ups.len());
            for &up in ups {
                if seen.insert(up) {
                    graph.add_edge(NodeIndex::new(up), NodeIndex::new(task), ());
                }
            }
        }
        // Kahn's algorithm, always taking the earliest-declared ready task: a stable order that
        // reads like the file.
        let mut indegree: Vec<usize> = (0..upstreams.len())
            .map(|i| {
                graph
                    .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..upstreams.len())
            .filter(|&i| indegree[i] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(upstreams.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for next in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
                let n = next.index();
                indegree[n] -= 1;
                if indegree[n] == 0 {
                    ready.push(Reverse(n));
                }
            }
        }
        if order.len() < upstreams.len() {
            return Err(find_cycle(&graph, &indegree));
        }
        Ok(Self { graph, order })
    }

    /// Every task, upstream before downstream; ties in declaration order.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// Tasks `task` depends on directly, in declaration order.
    pub fn upstream(&self, task: usize) -> Vec<usize> {
        self.neighbours(task, Direction::Incoming)
    }

    /// Tasks that depend on `task` directly, in declaration order.
    pub fn downstream(&self, task: usize) -> Vec<usize> {
        self.neighbours(task, Direction::Outgoing)
    }

    /// Every task `task` depends on, directly or not.
    pub fn ancestors(&self, task: usize) -> Vec<usize> {
        let g = Reversed(&self.graph);
        self.reachable(
            Dfs::new(g, NodeIndex::new(task))
                .iter(g)
                .map(NodeIndex::index),
            task,
        )
    }

    /// Every task that depends on `task`, directly or not.
    pub fn descendants(&self, task: usize) -> Vec<usize> {
        let g = &self.graph;
        self.reachable(
            Dfs::new(g, NodeIndex::new(task))
                .iter(g)
                .map(NodeIndex::index),
            task,
        )
    }

    /// Tasks with no upstream.
    pub fn roots(&self) -> Vec<usize> {
        self.filter_nodes(Direction::Incoming)
    }

    /// Tasks with no downstream.
    pub fn leaves(&self) -> Vec<usize> {
        self.filter_nodes(Direction::Outgoing)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The underlying petgraph graph (node weight unit; index = task index).
    pub fn petgraph(&self) -> &DiGraph<(), ()> {
        &self.graph
    }

    fn neighbours(&self, task: usize, dir: Direction) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(task), dir)
            .map(NodeIndex::index)
            .collect();
        v.sort_unstable();
        v
    }

    fn reachable(&self, walk: impl Iterator<Item = usize>, start: usize) -> Vec<usize> {
        let mut v: Vec<usize> = walk.filter(|&i| i != start).collect();
        v.sort_unstable();
        v
    }

    fn filter_nodes(&self, dir: Direction) -> Vec<usize> {
        (0..self.order.len())
            .filter(|&i| {
                self.graph
                    .neighbors_directed(NodeIndex::new(i), dir)
                    .next()
                    .is_none()
            })
            .collect()
    }
}

/// Spell out one cycle among the nodes Kahn's algorithm could not order (indegree > 0).
fn find_cycle(graph: &DiGraph<(), ()>, indegree: &[usize]) -> Cycle {
    // Every unordered node has an unordered predecessor; walking predecessors from the first
    // such node must revisit a node, and the walk between the two visits is a cycle.
    let stuck = |i: usize| indegree[i] > 0;
    let Some(start) = (0..indegree.len()).find(|&i| stuck(i)) else {
        return Cycle(Vec::new());
    };
    let mut seen_at = vec![usize::MAX; indegree.len()];
    let mut walk = Vec::new();
    let mut node = start;
    while seen_at[node] == usize::MAX {
        seen_at[node] = walk.len();
        walk.push(node);
        node = graph
            .neighbors_directed(NodeIndex::new(node), Direction::Incoming)
            .map(NodeIndex::index)
            .filter(|&p| stuck(p))
            .min()
            .unwrap_or(node);
    }
    let mut cycle: Vec<usize> = walk[seen_at[node]..].to_vec();
    // The walk went against the edges; turn it into dependency order, starting at the
    // earliest-declared task of the cycle.
    cycle.reverse();
    if let Some(pos) = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, t)| **t)
        .map(|(p, _)| p)
    {
        cycle.rotate_left(pos);
    }
    if let Some(&first) = cycle.first() {
        cycle.push(first);
    }
    Cycle(cycle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(ups: &[&[usize]]) -> Result<TaskGraph, Cycle> {
        TaskGraph::build(&ups.iter().map(|u| u.to_vec()).collect::<Vec<_>>())
    }

    #[test]
    fn orders_diamond_in_declaration_order() {
        // 0 → 1, 0 → 2, {1,2} → 3, 4 alone
        let g = graph(&[&[], &[0], &[0], &[2, 1], &[]]).ok();
        let g = g.as_ref();
        assert_eq!(
            g.map(|g| g.topological_order().to_vec()),
            Some(vec![0, 1, 2, 3, 4])
        );
        assert_eq!(g.map(|g| g.upstream(3)), Some(vec![1, 2]));
        assert_eq!(g.map(|g| g.downstream(0)), Some(vec![1, 2]));
        assert_eq!(g.map(|g| g.ancestors(3)), Some(vec![0, 1, 2]));
        assert_eq!(g.map(|g| g.descendants(1)), Some(vec![3]));
        assert_eq!(g.map(|g| g.roots()), Some(vec![0, 4]));
        assert_eq!(g.map(|g| g.leaves()), Some(vec![3, 4]));
    }

    #[test]
    fn reports_a_cycle_in_dependency_order() {
        // 0 depends on 2, 1 on 0, 2 on 1: 0 → 1 → 2 → 0; 3 hangs below the cycle.
        let err = graph(&[&[2], &[0], &[1], &[2]]).err();
        assert_eq!(err, Some(Cycle(vec![0, 1, 2, 0])));
        let err = graph(&[&[], &[1]]).err();
        assert_eq!(err, Some(Cycle(vec![1, 1])));
    }
}
