//! The soak run's plot: its samples drawn as a self-contained SVG (six panels over time, the
//! second and last quarters of the sending time shaded: the ones the flatness verdict compares).

use std::fmt::Write as _;
use std::path::Path;

use crate::soak_run::Sample;

const PANEL_W: f64 = 520.0;
const PANEL_H: f64 = 230.0;
const MARGIN_L: f64 = 70.0;
const GAP_X: f64 = 90.0;
const GAP_Y: f64 = 70.0;

/// One line of a panel: its colour, legend and points (seconds, value).
struct Series {
    color: &'static str,
    label: &'static str,
    points: Vec<(f64, f64)>,
}

/// Per-second rate of a cumulative figure between consecutive samples.
fn rate(samples: &[Sample], f: fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].at - w[0].at).max(1e-9);
            (w[1].at, (f(&w[1]) - f(&w[0])) / dt)
        })
        .collect()
}

fn series(
    samples: &[Sample],
    color: &'static str,
    label: &'static str,
    f: fn(&Sample) -> f64,
) -> Series {
    Series {
        color,
        label,
        points: samples.iter().map(|s| (s.at, f(s))).collect(),
    }
}

/// Writes the plot of `samples` (sending stopped at `load_secs`) to `path`, titled `title` (its
/// first line in bold, one text line per line).
pub fn write_svg(
    samples: &[Sample],
    load_secs: f64,
    title: &str,
    path: &Path,
) -> std::io::Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let panels: Vec<(&str, Vec<Series>)> = vec![
        (
            "resident memory (VmRSS), MiB",
            vec![series(samples, "#1f77b4", "RSS", |s| {
                s.rss_kib as f64 / 1024.0
            })],
        ),
        (
            "open file descriptors and threads",
            vec![
                series(samples, "#d62728", "fds", |s| s.fds as f64),
                series(samples, "#2ca02c", "threads", |s| s.threads as f64),
            ],
        ),
        (
            "store files, MiB",
            vec![
                series(samples, "#9467bd", "database", |s| s.db_bytes as f64 / MIB),
                series(samples, "#ff7f0e", "WAL", |s| s.wal_bytes as f64 / MIB),
            ],
        ),
        (
            "events open (pending, processing, retrying)",
            vec![series(samples, "#8c564b", "open", |s| s.open_events as f64)],
        ),
        (
            "per second: deliveries acknowledged, events done, GHL requests",
            vec![
                Series {
                    color: "#1f77b4",
                    label: "acknowledged/s",
                    points: rate(samples, |s| s.acked as f64),
                },
                Series {
                    color: "#2ca02c",
                    label: "done/s",
                    points: rate(samples, |s| s.done as f64),
                },
                Series {
                    color: "#7f7f7f",
                    label: "GHL requests/s",
                    points: rate(samples, |s| s.ghl_requests as f64),
                },
            ],
        ),
        (
            "formbridge CPU, % of one core",
            vec![Series {
                color: "#e377c2",
                label: "CPU",
                points: rate(samples, |s| s.cpu_secs * 100.0),
            }],
        ),
    ];
    let x_max = samples.last().map_or(1.0, |s| s.at).max(1.0);
    let title_lines: Vec<&str> = title.lines().collect();
    let line_y = |n: usize| 24.0 + 18.0 * n as f64;
    let margin_t = line_y(title_lines.len()) + 40.0;
    let width = MARGIN_L + 2.0 * PANEL_W + GAP_X + 40.0;
    let rows = panels.len().div_ceil(2) as f64;
    let height = margin_t + rows * PANEL_H + (rows - 1.0) * GAP_Y + 60.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (n, line) in title_lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{MARGIN_L}" y="{}" font-size="{}" font-weight="{}">{}</text>"#,
            line_y(n),
            if n == 0 { 15 } else { 13 },
            if n == 0 { "bold" } else { "normal" },
            escape(line)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{MARGIN_L}" y="{}" fill="#555">shaded: second and last quarter of the sending time (the flatness verdict compares their peaks); dashed: sending stops</text>"##,
        line_y(title_lines.len())
    );
    for (i, (name, lines)) in panels.iter().enumerate() {
        let x0 = MARGIN_L + (i % 2) as f64 * (PANEL_W + GAP_X);
        let y0 = margin_t + (i / 2) as f64 * (PANEL_H + GAP_Y);
        panel(&mut svg, (x0, y0), name, lines, x_max, load_secs);
    }
    svg.push_str("</svg>\n");
    std::fs::write(path, svg)
}

fn panel(
    svg: &mut String,
    (x0, y0): (f64, f64),
    name: &str,
    lines: &[Series],
    x_max: f64,
    load_secs: f64,
) {
    let y_top = nice_ceiling(
        lines
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let px = |x: f64| x0 + PANEL_W * x / x_max;
    let py = |y: f64| y0 + PANEL_H - PANEL_H * y / y_top;
    for (from, to) in [(0.25, 0.5), (0.75, 1.0)] {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{y0}" width="{:.1}" height="{PANEL_H}" fill="#eeeeee"/>"##,
            px(load_secs * from),
            px(load_secs * to) - px(load_secs * from)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{x0}" y="{:.1}" font-weight="bold">{}</text>"#,
        y0 - 8.0,
        escape(name)
    );
    for k in 0..=4 {
        let v = y_top * f64::from(k) / 4.0;
        let y = py(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ccc" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y + 4.0,
            label(v)
        );
    }
    let (step, unit, div) = if x_max > 600.0 {
        (x_max / 6.0 / 60.0, "min", 60.0)
    } else {
        (x_max / 6.0, "s", 1.0)
    };
    let step = nice_ceiling(step) / 2.0;
    let mut t = 0.0;
    while t * div <= x_max + 1e-9 {
        let x = px(t * div);
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y0 + PANEL_H + 16.0,
            label(t)
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">time, {unit}</text>"##,
        x0 + PANEL_W,
        y0 + PANEL_H + 32.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#333" stroke-dasharray="4 3"/>"##,
        y0 + PANEL_H,
        x = px(load_secs)
    );
    for (n, s) in lines.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.2" points="{}"/>"#,
            s.color,
            points.join(" ")
        );
        let lx = x0 + 10.0 + n as f64 * 150.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y0 + 14.0,
            lx + 16.0,
            y0 + 14.0,
            s.color,
            lx + 20.0,
            y0 + 18.0,
            escape(s.label)
        );
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (1 for nothing to show).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn label(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
