//! A small chart of a check's values over time, with its thresholds as a band.

use std::fmt::Write as _;

/// One point: the value (none when the check could not compute one) and whether it passed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub(crate) value: Option<f64>,
    pub(crate) passed: bool,
}

const W: f64 = 180.0;
const H: f64 = 36.0;

/// Oldest first. `min`/`max` are the thresholds, drawn as a shaded band.
pub(crate) fn sparkline(points: &[Point], min: Option<f64>, max: Option<f64>) -> String {
    let values: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    if values.is_empty() {
        return format!(
            r#"<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="No values yet"><text x="4" y="22" class="muted">no values yet</text></svg>"#
        );
    }
    let mut lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for t in [min, max].into_iter().flatten() {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if (hi - lo).abs() < f64::EPSILON {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.1;
    let (lo, hi) = (lo - pad, hi + pad);
    let y = |v: f64| H - (v - lo) / (hi - lo) * H;
    let step = if points.len() > 1 {
        W / (points.len() - 1) as f64
    } else {
        0.0
    };
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="History of {} values">"#,
        values.len()
    );
    if min.is_some() || max.is_some() {
        let top = max.map_or(0.0, y).clamp(0.0, H);
        let bottom = min.map_or(H, y).clamp(0.0, H);
        let _ = write!(
            svg,
            r#"<rect class="band" x="0" y="{top:.1}" width="{W}" height="{:.1}"/>"#,
            (bottom - top).max(0.5)
        );
    }
    let mut path = String::new();
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = p.value {
            let cmd = if path.is_empty() { 'M' } else { 'L' };
            let _ = write!(path, "{cmd}{:.1},{:.1} ", i as f64 * step, y(v));
        }
    }
    let _ = write!(svg, r#"<path class="line" d="{}"/>"#, path.trim_end());
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = p.value {
            let _ = write!(
                svg,
                r#"<circle class="{}" cx="{:.1}" cy="{:.1}" r="2"><title>{v}</title></circle>"#,
                if p.passed { "pass" } else { "breach" },
                i as f64 * step,
                y(v)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaches_are_marked_and_the_band_spans_the_thresholds() {
        let pts = [
            Point {
                value: Some(120.0),
                passed: true,
            },
            Point {
                value: None,
                passed: false,
            },
            Point {
                value: Some(20.0),
                passed: false,
            },
        ];
        let svg = sparkline(&pts, Some(100.0), Some(500.0));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches("class=\"breach\"").count(), 1);
        assert!(svg.contains("class=\"band\""));
        assert!(sparkline(&[], None, None).contains("no values yet"));
    }
}
