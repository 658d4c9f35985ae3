//! Server-side SVG for the web UI: the task graph of a DAG (left to right, in layers) and the
//! Gantt timeline of a run. Standard library only.
//!
//! Colours come from the page's CSS through classes: every node box and bar carries
//! `state-<state>` (`state-success`, `state-failed`, `state-running`, `state-queued`,
//! `state-up_for_retry`, `state-upstream_failed`, `state-skipped`, `state-pending`,
//! `state-none`). Other classes: `node`, `node-box`, `node-label`, `edge`, `edge back-edge`,
//! `arrowhead`, `axis`, `tick`, `tick-label`, `row`, `row-label`, `bar`, `not-started`,
//! `empty`. Only edges and arrowheads get default paint (presentation attributes, which any
//! CSS rule overrides), so the graph stays readable without styles.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write as _;

/// One task in the graph.
#[derive(Debug, Clone)]
pub(crate) struct GraphNode<'a> {
    pub(crate) id: &'a str,
    pub(crate) label: &'a str,
    /// Task instance state (`success`, `up_for_retry`, ...); `None` for "no run yet".
    pub(crate) state: Option<&'a str>,
    /// Link target for the node, if any.
    pub(crate) href: Option<String>,
}

/// One task instance on the timeline.
#[derive(Debug, Clone)]
pub(crate) struct GanttBar<'a> {
    pub(crate) label: &'a str,
    pub(crate) state: &'a str,
    /// Start (Unix ms). Zero or negative (e.g. [`NOT_STARTED`]) means the task has not
    /// started: the row shows "not started".
    pub(crate) start_ms: i64,
    /// End (Unix ms); `None` while running (the bar then ends at `now_ms`).
    pub(crate) end_ms: Option<i64>,
    pub(crate) href: Option<String>,
}

const STATES: [&str; 10] = [
    "success",
    "failed",
    "running",
    "queued",
    "up_for_retry",
    "upstream_failed",
    "skipped",
    "pending",
    "awaiting_approval",
    "none",
];

/// The CSS class for a state: `state-success`, ...; unknown or missing states give
/// `state-none`. Accepts any case and `-`/space for `_` (`Up-For-Retry`).
pub(crate) fn state_class(state: Option<&str>) -> String {
    let normalized = state
        .map(|s| s.trim().to_ascii_lowercase().replace(['-', ' '], "_"))
        .unwrap_or_default();
    let known = STATES
        .iter()
        .find(|&&s| s == normalized)
        .copied()
        .unwrap_or("none");
    format!("state-{known}")
}

/// XML-escape text for element content and (double- or single-quoted) attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to at most `max` characters, ending in `…` if cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn svg_open(out: &mut String, width: f64, height: f64, label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}">"#,
        w = num(width),
        h = num(height),
        label = escape(label),
    );
}

/// A small SVG holding only a message.
fn message_svg(aria: &str, message: &str) -> String {
    let mut out = String::new();
    svg_open(&mut out, 200.0, 40.0, aria);
    let _ = write!(
        out,
        r#"<text class="empty" x="100" y="24" text-anchor="middle">{}</text></svg>"#,
        escape(message)
    );
    out
}

/// A coordinate without needless decimals: `12`, `12.5`, `12.33`.
fn num(v: f64) -> String {
    let rounded = (v * 100.0).round() / 100.0;
    let text = format!("{rounded:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn open_link(out: &mut String, href: Option<&str>) {
    if let Some(href) = href {
        let _ = write!(out, r#"<a href="{}">"#, escape(href));
    }
}

fn close_link(out: &mut String, href: Option<&str>) {
    if href.is_some() {
        out.push_str("</a>");
    }
}

// ------------------------------------------------------------------------------------------
// Task graph
// ------------------------------------------------------------------------------------------

const NODE_W: f64 = 160.0;
const NODE_H: f64 = 36.0;
/// Height a long edge takes where it passes through a layer.
const DUMMY_H: f64 = 8.0;
const LAYER_GAP: f64 = 64.0;
const ROW_GAP: f64 = 16.0;
const PAD: f64 = 12.0;
const LABEL_CHARS: usize = 20;
/// Barycenter passes (one down and one up each); the ordering with fewest crossings wins.
const SWEEPS: usize = 4;

/// `(upstream, downstream)` node indices.
type Edge = (usize, usize);

/// The edges that layering uses: in range, no self-loops, no duplicates, and no edges that
/// close a cycle (found by a depth-first search from the roots, then in node order; those are returned
/// second).
fn split_edges(n: usize, edges: &[Edge]) -> (Vec<Edge>, Vec<Edge>) {
    let unique: BTreeSet<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| a < n && b < n && a != b)
        .collect();
    let mut succ = vec![Vec::new(); n];
    for &(a, b) in &unique {
        succ[a].push(b);
    }
    // Iterative DFS; an edge to a node still on the stack is a back edge.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut back = BTreeSet::new();
    // Roots first, so that the edges dropped are the ones closing a cycle seen from them.
    let mut has_pred = vec![false; n];
    for &(_, b) in &unique {
        has_pred[b] = true;
    }
    let starts = (0..n).filter(|&v| !has_pred[v]).chain(0..n);
    for root in starts {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Open;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = succ[v].get(*next) {
                *next += 1;
                match mark[w] {
                    Mark::New => {
                        mark[w] = Mark::Open;
                        stack.push((w, 0));
                    }
                    Mark::Open => {
                        back.insert((v, w));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[v] = Mark::Done;
                stack.pop();
            }
        }
    }
    let (back_edges, forward): (Vec<_>, Vec<_>) =
        unique.into_iter().partition(|e| back.contains(e));
    (forward, back_edges)
}

/// Layer of each node: the length of the longest path to it from a root. `edges` must be
/// acyclic (as returned by [`split_edges`]).
fn layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut succ = vec![Vec::new(); n];
    for &(a, b) in edges {
        succ[a].push(b);
        indegree[b] += 1;
    }
    let mut layer = vec![0usize; n];
    let mut queue: VecDeque<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = queue.pop_front() {
        for &w in &succ[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    layer
}

/// Nodes in layers, long edges broken by dummy vertices so every edge joins adjacent layers.
#[derive(Debug)]
struct Layout {
    /// Vertex ids per layer, in drawing order. Ids `< n` are nodes, the rest dummies.
    order: Vec<Vec<usize>>,
    /// Layer of every vertex.
    layer: Vec<usize>,
    /// For every forward edge, its chain of vertices from source to target.
    chains: Vec<Vec<usize>>,
    /// Edges between adjacent layers (vertex ids).
    links: Vec<(usize, usize)>,
    /// Real node count.
    n: usize,
}

impl Layout {
    fn new(n: usize, forward: &[(usize, usize)]) -> Layout {
        let node_layer = layers(n, forward);
        let mut layer = node_layer.clone();
        let mut chains = Vec::with_capacity(forward.len());
        let mut links = Vec::new();
        for &(a, b) in forward {
            let mut chain = vec![a];
            for l in node_layer[a] + 1..node_layer[b] {
                layer.push(l);
                chain.push(layer.len() - 1);
            }
            chain.push(b);
            links.extend(chain.windows(2).map(|w| (w[0], w[1])));
            chains.push(chain);
        }
        let depth = layer.iter().max().map_or(0, |&m| m + 1);
        let mut order = vec![Vec::new(); depth];
        for (v, &l) in layer.iter().enumerate() {
            order[l].push(v);
        }
        let mut layout = Layout {
            order,
            layer,
            chains,
            links,
            n,
        };
        layout.reduce_crossings();
        layout
    }

    fn positions(&self) -> Vec<usize> {
        let mut pos = vec![0; self.layer.len()];
        for row in &self.order {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i;
            }
        }
        pos
    }

    /// Crossings between adjacent layers, counting pairs of links that swap order.
    fn crossings(&self) -> usize {
        let pos = self.positions();
        let mut by_layer: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.order.len()];
        for &(a, b) in &self.links {
            by_layer[self.layer[a]].push((pos[a], pos[b]));
        }
        let mut count = 0;
        for links in &by_layer {
            for (i, &(a1, b1)) in links.iter().enumerate() {
                for &(a2, b2) in &links[i + 1..] {
                    if (a1 < a2 && b1 > b2) || (a1 > a2 && b1 < b2) {
                        count += 1;
                    }
                }
            }
        }
        count
    }

    /// Barycenter heuristic: reorder each layer by the mean position of its neighbours in the
    /// previous layer (down pass) or the next one (up pass). Vertices without neighbours on
    /// that side keep their place.
    fn reduce_crossings(&mut self) {
        let vertices = self.layer.len();
        let mut preds = vec![Vec::new(); vertices];
        let mut succs = vec![Vec::new(); vertices];
        for &(a, b) in &self.links {
            succs[a].push(b);
            preds[b].push(a);
        }
        let mut best = self.order.clone();
        let mut best_crossings = self.crossings();
        for _ in 0..SWEEPS {
            if best_crossings == 0 {
                break;
            }
            for down in [true, false] {
                let layers: Vec<usize> = if down {
                    (1..self.order.len()).collect()
                } else {
                    (0..self.order.len().saturating_sub(1)).rev().collect()
                };
                for l in layers {
                    let pos = self.positions();
                    let neighbours = if down { &preds } else { &succs };
                    let mut keyed: Vec<(f64, usize)> = self.order[l]
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            let ns = &neighbours[v];
                            let key = if ns.is_empty() {
                                i as f64
                            } else {
                                ns.iter().map(|&w| pos[w] as f64).sum::<f64>() / ns.len() as f64
                            };
                            (key, v)
                        })
                        .collect();
                    keyed.sort_by(|x, y| x.0.total_cmp(&y.0));
                    self.order[l] = keyed.into_iter().map(|(_, v)| v).collect();
                }
                let crossings = self.crossings();
                if crossings < best_crossings {
                    best_crossings = crossings;
                    best = self.order.clone();
                }
            }
        }
        self.order = best;
    }

    fn height_of(&self, v: usize) -> f64 {
        if v < self.n { NODE_H } else { DUMMY_H }
    }

    /// Top-left corner of every vertex, and the drawing's size. Layers are centred vertically.
    fn coordinates(&self) -> (Vec<(f64, f64)>, f64, f64) {
        let column = |row: &[usize]| -> f64 {
            row.iter().map(|&v| self.height_of(v)).sum::<f64>()
                + ROW_GAP * row.len().saturating_sub(1) as f64
        };
        let tallest = self.order.iter().map(|r| column(r)).fold(0.0, f64::max);
        let mut at = vec![(0.0, 0.0); self.layer.len()];
        for (l, row) in self.order.iter().enumerate() {
            let x = PAD + l as f64 * (NODE_W + LAYER_GAP);
            let mut y = PAD + (tallest - column(row)) / 2.0;
            for &v in row {
                at[v] = (x, y);
                y += self.height_of(v) + ROW_GAP;
            }
        }
        let layers = self.order.len() as f64;
        let width = 2.0 * PAD + layers * NODE_W + (layers - 1.0).max(0.0) * LAYER_GAP;
        (at, width, tallest + 2.0 * PAD)
    }
}

/// A cubic from `(x1, y1)` to `(x2, y2)`, leaving and arriving horizontally.
fn curve_to(d: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64)) {
    let dx = ((x2 - x1) / 2.0).abs().max(24.0);
    let _ = write!(
        d,
        " C{} {} {} {} {} {}",
        num(x1 + dx),
        num(y1),
        num(x2 - dx),
        num(y2),
        num(x2),
        num(y2)
    );
}

/// The task graph, left to right. `edges` are `(upstream, downstream)` indices into
/// `nodes`; out-of-range indices, self-loops and duplicates are ignored, and edges closing a
/// cycle are drawn (class `back-edge`) but not used for layering.
pub(crate) fn dag_svg(nodes: &[GraphNode<'_>], edges: &[(usize, usize)]) -> String {
    if nodes.is_empty() {
        return message_svg("Task graph", "No tasks");
    }
    let n = nodes.len();
    let (forward, back) = split_edges(n, edges);
    let layout = Layout::new(n, &forward);
    let (at, width, height) = layout.coordinates();

    let mut out = String::new();
    svg_open(&mut out, width, height, "Task graph");
    out.push_str(concat!(
        r#"<defs><marker id="drover-arrow" viewBox="0 0 10 10" refX="10" refY="5" "#,
        r#"markerWidth="8" markerHeight="8" orient="auto-start-reverse">"#,
        r##"<path class="arrowhead" d="M0 0L10 5L0 10z" fill="#888"/></marker></defs>"##,
    ));

    out.push_str(r#"<g class="edges">"#);
    let right_mid = |v: usize| (at[v].0 + NODE_W, at[v].1 + layout.height_of(v) / 2.0);
    let left_mid = |v: usize| (at[v].0, at[v].1 + layout.height_of(v) / 2.0);
    for chain in &layout.chains {
        let start = right_mid(chain[0]);
        let mut d = format!("M{} {}", num(start.0), num(start.1));
        let mut from = start;
        for &v in &chain[1..] {
            curve_to(&mut d, from, left_mid(v));
            if v >= n {
                // Straight through the layer a long edge passes.
                let through = right_mid(v);
                let _ = write!(d, " L{} {}", num(through.0), num(through.1));
                from = through;
            }
        }
        let _ = write!(
            out,
            r##"<path class="edge" d="{d}" fill="none" stroke="#888" marker-end="url(#drover-arrow)"/>"##
        );
    }
    for &(a, b) in &back {
        let mut d = String::new();
        let (start, end) = (right_mid(a), left_mid(b));
        let _ = write!(d, "M{} {}", num(start.0), num(start.1));
        let _ = write!(
            d,
            " C{} {} {} {} {} {}",
            num(start.0 + 80.0),
            num(start.1 + NODE_H),
            num(end.0 - 80.0),
            num(end.1 + NODE_H),
            num(end.0),
            num(end.1)
        );
        let _ = write!(
            out,
            r##"<path class="edge back-edge" d="{d}" fill="none" stroke="#888" stroke-dasharray="4 3" marker-end="url(#drover-arrow)"/>"##
        );
    }
    out.push_str("</g>");

    out.push_str(r#"<g class="nodes">"#);
    for (v, node) in nodes.iter().enumerate() {
        let (x, y) = at[v];
        let href = node.href.as_deref();
        open_link(&mut out, href);
        let _ = write!(
            out,
            r#"<g class="node {class}" data-id="{id}"><title>{id} — {state}</title>"#,
            class = state_class(node.state),
            id = escape(node.id),
            state = escape(node.state.unwrap_or("none")),
        );
        let _ = write!(
            out,
            r#"<rect class="node-box" x="{}" y="{}" width="{}" height="{}" rx="6" ry="6"/>"#,
            num(x),
            num(y),
            num(NODE_W),
            num(NODE_H)
        );
        let _ = write!(
            out,
            r#"<text class="node-label" x="{}" y="{}" dominant-baseline="middle">{}</text></g>"#,
            num(x + 10.0),
            num(y + NODE_H / 2.0),
            escape(&truncate(node.label, LABEL_CHARS))
        );
        close_link(&mut out, href);
    }
    out.push_str("</g></svg>");
    out
}

// ------------------------------------------------------------------------------------------
// Gantt timeline
// ------------------------------------------------------------------------------------------

const LABEL_COL: f64 = 180.0;
const CHART_W: f64 = 600.0;
const RIGHT_PAD: f64 = 24.0;
const AXIS_H: f64 = 24.0;
const ROW_H: f64 = 24.0;
const BAR_H: f64 = 16.0;
const BOTTOM_PAD: f64 = 8.0;
const MIN_BAR_W: f64 = 2.0;
const GANTT_LABEL_CHARS: usize = 24;
/// The axis spans at least this long (ms), so instant runs still get a sensible scale.
const MIN_SPAN_MS: i64 = 1_000;

/// `start_ms` of a task that has not started (any value `<= 0` counts).
pub(crate) const NOT_STARTED: i64 = 0;

/// Tick steps (ms): consecutive steps differ by at most a factor 2, so the chosen step always
/// gives 4 to 6 ticks.
const TICK_STEPS: [i64; 27] = [
    200,
    250,
    500,
    1_000,
    2_000,
    3_000,
    5_000,
    10_000,
    15_000,
    20_000,
    30_000,
    60_000,
    2 * 60_000,
    3 * 60_000,
    5 * 60_000,
    10 * 60_000,
    15 * 60_000,
    20 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    24 * 3_600_000,
    2 * 24 * 3_600_000,
    4 * 24 * 3_600_000,
];

/// The tick step for a span (ms): the smallest step giving at most 6 ticks (0 included).
fn tick_step(span_ms: i64) -> i64 {
    let fits = |step: i64| span_ms / step <= 5;
    if let Some(&step) = TICK_STEPS.iter().find(|&&s| fits(s)) {
        return step;
    }
    let mut step = TICK_STEPS[TICK_STEPS.len() - 1];
    while !fits(step) {
        step *= 2;
    }
    step
}

/// Tick offsets (ms from the start) for a span.
fn ticks(span_ms: i64) -> Vec<i64> {
    let step = tick_step(span_ms);
    (0..=span_ms / step).map(|i| i * step).collect()
}

/// A compact duration: "0s", "0.25s", "30s", "1m", "1m30s", "2h", "1h5m", "1d12h".
/// Below a minute, fractions are kept to two decimals; from a minute on, whole seconds.
pub(crate) fn short_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 && ms % 1_000 != 0 {
        let text = format!("{:.2}", ms as f64 / 1_000.0);
        return format!("{}s", text.trim_end_matches('0').trim_end_matches('.'));
    }
    let mut secs = (ms + 500) / 1_000;
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            let _ = write!(out, "{}{unit}", secs / size);
            secs %= size;
        }
    }
    out
}

/// A Gantt timeline of task instances, one row per bar in the given order. The time axis
/// runs from the earliest start to the latest end (running bars end at `now_ms`); bars with
/// `start_ms <= 0` ([`NOT_STARTED`]) show as "not started".
pub(crate) fn gantt_svg(bars: &[GanttBar<'_>], now_ms: i64) -> String {
    if bars.is_empty() {
        return message_svg("Task timeline", "No tasks");
    }
    let started = |b: &GanttBar<'_>| b.start_ms > NOT_STARTED;
    let end_of = |b: &GanttBar<'_>| b.end_ms.unwrap_or(now_ms).max(b.start_ms);
    let t0 = bars
        .iter()
        .filter(|b| started(b))
        .map(|b| b.start_ms)
        .min()
        .unwrap_or(now_ms);
    let t1 = bars
        .iter()
        .filter(|b| started(b))
        .map(end_of)
        .max()
        .unwrap_or(now_ms);
    let span = t1.saturating_sub(t0).max(MIN_SPAN_MS);
    let x_of = |t: i64| LABEL_COL + (t.saturating_sub(t0)) as f64 / span as f64 * CHART_W;

    let width = LABEL_COL + CHART_W + RIGHT_PAD;
    let height = AXIS_H + bars.len() as f64 * ROW_H + BOTTOM_PAD;
    let mut out = String::new();
    svg_open(&mut out, width, height, "Task timeline");

    out.push_str(r#"<g class="axis">"#);
    for tick in ticks(span) {
        let x = num(x_of(t0 + tick));
        let _ = write!(
            out,
            r##"<line class="tick" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#ddd"/>"##,
            num(AXIS_H - 4.0),
            num(height - BOTTOM_PAD),
        );
        let _ = write!(
            out,
            r#"<text class="tick-label" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            num(AXIS_H - 8.0),
            short_duration(tick),
        );
    }
    out.push_str("</g>");

    for (i, bar) in bars.iter().enumerate() {
        let top = AXIS_H + i as f64 * ROW_H;
        let middle = num(top + ROW_H / 2.0);
        let href = bar.href.as_deref();
        let class = state_class(Some(bar.state));
        open_link(&mut out, href);
        let _ = write!(out, r#"<g class="row {class}">"#);
        let duration = if started(bar) {
            let took = short_duration(end_of(bar) - bar.start_ms);
            if bar.end_ms.is_none() {
                format!("{took} so far")
            } else {
                took
            }
        } else {
            "not started".to_owned()
        };
        let _ = write!(
            out,
            r#"<title>{} — {} — {}</title>"#,
            escape(bar.label),
            escape(bar.state),
            escape(&duration)
        );
        let _ = write!(
            out,
            r#"<text class="row-label" x="{}" y="{middle}" dominant-baseline="middle">{}</text>"#,
            num(8.0),
            escape(&truncate(bar.label, GANTT_LABEL_CHARS))
        );
        if started(bar) {
            let x = x_of(bar.start_ms);
            let w = (x_of(end_of(bar)) - x).max(MIN_BAR_W);
            let _ = write!(
                out,
                r#"<rect class="bar {class}" x="{}" y="{}" width="{}" height="{}" rx="3" ry="3"/>"#,
                num(x),
                num(top + (ROW_H - BAR_H) / 2.0),
                num(w),
                num(BAR_H)
            );
        } else {
            let _ = write!(
                out,
                r#"<text class="not-started" x="{}" y="{middle}" dominant-baseline="middle">not started</text>"#,
                num(LABEL_COL + 4.0)
            );
        }
        out.push_str("</g>");
        close_link(&mut out, href);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> GraphNode<'_> {
        GraphNode {
            id,
            label: id,
            state: None,
            href: None,
        }
    }

    fn nodes<'a>(ids: &[&'a str]) -> Vec<GraphNode<'a>> {
        ids.iter().map(|id| node(id)).collect()
    }

    fn layering(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
        layers(n, &split_edges(n, edges).0)
    }

    /// A minimal XML check: tags nest and close, attributes are quoted, `&` starts an
    /// entity, there is one root element, and no text sits outside it.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut rest = svg;
        while !rest.is_empty() {
            if let Some(tag_start) = rest.strip_prefix('<') {
                let end = tag_start.find('>').expect("unclosed tag");
                let tag = &tag_start[..end];
                assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
                assert_eq!(
                    tag.matches('"').count() % 2,
                    0,
                    "unbalanced quotes in {tag:?}"
                );
                if let Some(name) = tag.strip_prefix('/') {
                    assert_eq!(stack.pop().as_deref(), Some(name), "mismatched close");
                } else {
                    let name: String = tag
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '/')
                        .collect();
                    assert!(!name.is_empty(), "empty tag name");
                    if stack.is_empty() {
                        roots += 1;
                    }
                    if !tag.ends_with('/') {
                        stack.push(name);
                    }
                }
                rest = &tag_start[end + 1..];
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = &rest[..end];
                assert!(!text.contains('>'), "raw '>' in text {text:?}");
                assert!(
                    !stack.is_empty() || text.trim().is_empty(),
                    "text outside root"
                );
                for (i, _) in text.match_indices('&') {
                    let entity = &text[i..];
                    assert!(
                        ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                            .iter()
                            .any(|e| entity.starts_with(e)),
                        "bare '&' in {text:?}"
                    );
                }
                rest = &rest[end..];
            }
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert_eq!(roots, 1, "one root element");
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
    }

    #[test]
    fn escape_handles_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" + 'y') && 1</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;) &amp;&amp; 1&lt;/script&gt;"
        );
        assert_eq!(escape("plain ü…"), "plain ü…");
        assert_eq!(escape("a\u{1}b"), "a b");
    }

    #[test]
    fn hostile_text_is_escaped_in_the_svg() {
        let evil = GraphNode {
            id: "x\"><script>alert(1)</script>",
            label: "<script>alert('hi')</script>",
            state: Some("<b>"),
            href: Some("/dags/a?x=1&y=\"2\"".to_owned()),
        };
        let svg = dag_svg(&[evil], &[]);
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains(r#"href="/dags/a?x=1&amp;y=&quot;2&quot;""#));
        assert!(svg.contains("state-none"));
        assert_well_formed(&svg);
        let bar = GanttBar {
            label: "<script>",
            state: "\"running\"",
            start_ms: 1,
            end_ms: None,
            href: Some("'onload='x".to_owned()),
        };
        let svg = gantt_svg(&[bar], 1_000);
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&#39;onload=&#39;x"));
        assert_well_formed(&svg);
    }

    #[test]
    fn chain_layers() {
        assert_eq!(layering(4, &[(0, 1), (1, 2), (2, 3)]), [0, 1, 2, 3]);
        // Given in any order.
        assert_eq!(layering(3, &[(2, 0), (1, 2)]), [2, 0, 1]);
    }

    #[test]
    fn diamond_layers() {
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, plus a shortcut 0 -> 3: still layer 2 (longest path).
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)];
        assert_eq!(layering(4, &edges), [0, 1, 1, 2]);
        let layout = Layout::new(4, &split_edges(4, &edges).0);
        assert_eq!(layout.order.len(), 3);
        // The shortcut passes layer 1 through one dummy vertex.
        assert_eq!(layout.order[1].len(), 3);
        assert_eq!(layout.crossings(), 0);
    }

    #[test]
    fn parallel_roots_layers() {
        // Two independent chains and a lone task.
        let edges = [(0, 1), (2, 3), (3, 4)];
        assert_eq!(layering(6, &edges), [0, 1, 0, 1, 2, 0]);
        let layout = Layout::new(6, &edges);
        assert_eq!(layout.order[0], [0, 2, 5]);
    }

    #[test]
    fn barycenter_removes_crossings() {
        // a0 -> b1, a1 -> b0 in input order crosses; the sweeps untangle it.
        let edges = [(0, 3), (1, 2)];
        let layout = Layout::new(4, &edges);
        assert_eq!(layout.crossings(), 0);
        // A wider case: K-shaped fan-out with the targets listed in reverse.
        let edges = [(0, 7), (1, 6), (2, 5), (3, 4)];
        let layout = Layout::new(8, &edges);
        assert_eq!(layout.crossings(), 0);
    }

    #[test]
    fn cycles_terminate_and_drop_back_edges() {
        let edges = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 3), (9, 1)];
        let (forward, back) = split_edges(4, &edges);
        assert_eq!(back, [(2, 0)]);
        assert_eq!(forward, [(0, 1), (1, 2), (2, 3)]);
        assert_eq!(layers(4, &forward), [0, 1, 2, 3]);
        let svg = dag_svg(&nodes(&["a", "b", "c", "d"]), &edges);
        assert!(svg.contains("back-edge"));
        assert_well_formed(&svg);
        // The cycle 0 -> 1 -> 2 -> 0 is entered from root 3 at 1, so 0 -> 1 closes it.
        let (forward, back) = split_edges(4, &[(0, 1), (1, 2), (2, 0), (3, 1)]);
        assert_eq!(back, [(0, 1)]);
        assert_eq!(layers(4, &forward), [3, 1, 2, 0]);
        // Every node on a cycle, no root at all.
        let svg = dag_svg(&nodes(&["a", "b"]), &[(0, 1), (1, 0)]);
        assert_eq!(svg.matches("class=\"node ").count(), 2);
        assert_well_formed(&svg);
    }

    #[test]
    fn dag_svg_output() {
        let mut graph = nodes(&[
            "extract",
            "transform",
            "a_task_with_a_very_long_name",
            "load",
        ]);
        graph[0].state = Some("success");
        graph[1].state = Some("up_for_retry");
        graph[2].state = Some("Upstream-Failed");
        graph[0].href = Some("/runs/1/tasks/extract".to_owned());
        let svg = dag_svg(&graph, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert_well_formed(&svg);
        assert!(svg.contains(r#"role="img" aria-label="Task graph""#));
        assert!(svg.contains(r#"class="node state-success""#));
        assert!(svg.contains(r#"class="node state-up_for_retry""#));
        assert!(svg.contains(r#"class="node state-upstream_failed""#));
        assert!(svg.contains(r#"class="node state-none""#));
        assert!(svg.contains("<title>extract — success</title>"));
        assert!(svg.contains("<title>load — none</title>"));
        assert!(svg.contains(r#"<a href="/runs/1/tasks/extract"><g class="node"#));
        assert_eq!(svg.matches("<a ").count(), 1);
        assert!(svg.contains(">a_task_with_a_very_…</text>"));
        assert_eq!(svg.matches(r#"class="edge""#).count(), 4);
        assert_eq!(svg.matches("marker-end=").count(), 4);
        assert!(svg.contains(" C"));
        assert!(!svg.contains("NaN"));
        // Three layers: 2*12 + 3*160 + 2*64 wide; two rows: 2*12 + 2*36 + 16 tall.
        assert!(svg.contains(r#"viewBox="0 0 632 112" width="632" height="112""#));
        // No fills on nodes.
        assert!(!svg.contains("<rect class=\"node-box\" fill"));
    }

    #[test]
    fn empty_graph() {
        let svg = dag_svg(&[], &[(0, 1)]);
        assert!(svg.contains("No tasks"));
        assert!(svg.contains(r#"aria-label="Task graph""#));
        assert_well_formed(&svg);
        let svg = gantt_svg(&[], 0);
        assert!(svg.contains("No tasks"));
        assert_well_formed(&svg);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(short_duration(0), "0s");
        assert_eq!(short_duration(250), "0.25s");
        assert_eq!(short_duration(1_500), "1.5s");
        assert_eq!(short_duration(30_000), "30s");
        assert_eq!(short_duration(60_000), "1m");
        assert_eq!(short_duration(90_000), "1m30s");
        assert_eq!(short_duration(7_200_000), "2h");
        assert_eq!(short_duration(3_900_000), "1h5m");
        assert_eq!(short_duration(129_600_000), "1d12h");
        assert_eq!(short_duration(61_499), "1m1s");

        let labels =
            |span: i64| -> Vec<String> { ticks(span).into_iter().map(short_duration).collect() };
        assert_eq!(labels(120_000), ["0s", "30s", "1m", "1m30s", "2m"]);
        assert_eq!(labels(7_200_000), ["0s", "30m", "1h", "1h30m", "2h"]);
        assert_eq!(labels(1_000), ["0s", "0.2s", "0.4s", "0.6s", "0.8s", "1s"]);
        // Always 4 to 6 ticks, from a second to months.
        let mut span = 1_000;
        while span < 100 * 86_400_000 {
            let count = ticks(span).len();
            assert!((4..=6).contains(&count), "{count} ticks for {span} ms");
            span = span * 11 / 10 + 7;
        }
    }

    #[test]
    fn gantt_scaling() {
        let bars = [
            GanttBar {
                label: "extract",
                state: "success",
                start_ms: 10_000,
                end_ms: Some(40_000),
                href: Some("/t/extract".to_owned()),
            },
            GanttBar {
                label: "transform",
                state: "running",
                start_ms: 40_000,
                end_ms: None,
                href: None,
            },
            GanttBar {
                label: "blink",
                state: "failed",
                start_ms: 40_000,
                end_ms: Some(40_001),
                href: None,
            },
            GanttBar {
                label: "load",
                state: "pending",
                start_ms: NOT_STARTED,
                end_ms: None,
                href: None,
            },
        ];
        // Span: 10 s (earliest start) to 130 s (now, the running bar): 120 s over 600 px.
        let svg = gantt_svg(&bars, 130_000);
        assert_well_formed(&svg);
        assert!(svg.contains(r#"viewBox="0 0 804 128""#));
        // extract: 0 s..30 s -> x 180, width 150.
        assert!(
            svg.contains(
                r#"<rect class="bar state-success" x="180" y="28" width="150" height="16""#
            )
        );
        // transform: 30 s..120 s -> x 330, width 450.
        assert!(svg.contains(r#"<rect class="bar state-running" x="330" y="52" width="450""#));
        // blink: 1 ms, widened to the minimum.
        assert!(svg.contains(r#"<rect class="bar state-failed" x="330" y="76" width="2""#));
        assert!(svg.contains("<title>extract — success — 30s</title>"));
        assert!(svg.contains("<title>transform — running — 1m30s so far</title>"));
        assert!(svg.contains("<title>load — pending — not started</title>"));
        assert!(svg.contains(">not started</text>"));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches(r#"<a href="/t/extract">"#).count(), 1);
        for label in ["0s", "30s", "1m", "1m30s", "2m"] {
            assert!(svg.contains(&format!(">{label}</text>")), "tick {label}");
        }
        assert_eq!(svg.matches(r#"class="tick""#).count(), 5);
    }

    #[test]
    fn gantt_nothing_started() {
        let bars = [GanttBar {
            label: "load",
            state: "queued",
            start_ms: NOT_STARTED,
            end_ms: None,
            href: None,
        }];
        let svg = gantt_svg(&bars, 5_000);
        assert_well_formed(&svg);
        assert!(svg.contains(">not started</text>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
