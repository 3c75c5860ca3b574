//! Line charts as inline SVG, drawn by our own code so that an HTML report
//! needs no JavaScript, no chart library and nothing fetched when viewed.
//!
//! A [`Chart`] is data: series of points, labelled marks, horizontal rules and
//! axis titles. [`Chart::render`] lays it out (nice ticks, a wrapping legend,
//! gaps where a value is missing) and writes one `<svg class="chart">`
//! element, or a "no data" note when there is nothing to draw. Every text is
//! HTML-escaped on the way out.

use std::io::{self, Write};

use super::axis::Axis;
use super::escape::Esc;

/// Width of every chart in SVG units; the page scales it to its column.
const WIDTH: f64 = 1160.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 28.0;
const BOTTOM: f64 = 50.0;
/// Approximate width of one character of the 12px label font, for layout.
const CHAR_W: f64 = 6.8;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    /// CSS colour of the stroke (and of the dots).
    pub color: String,
    /// (x, y) in data units, in drawing order; a non-finite y is a gap.
    pub points: Vec<(f64, f64)>,
    pub width: f64,
    pub dashed: bool,
    /// Draw a dot at every point (for short series such as sweep steps).
    pub dots: bool,
    /// Small labels beside the points, by index (missing or empty: none).
    pub point_labels: Vec<String>,
}

impl Series {
    /// A solid 2.5px line.
    pub fn line(label: impl Into<String>, color: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            color: color.to_string(),
            points,
            width: 2.5,
            dashed: false,
            dots: false,
            point_labels: Vec::new(),
        }
    }

    /// The same line, dashed and 2px wide (secondary series such as per-agent lines).
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self.width = 2.0;
        self
    }

    /// The same line with a dot at every point.
    pub fn dots(mut self) -> Self {
        self.dots = true;
        self
    }

    /// The same line with labels beside its points.
    pub fn labelled(mut self, labels: Vec<String>) -> Self {
        self.point_labels = labels;
        self
    }
}

/// A filled, labelled circle at one point (the knee, a deadlock).
#[derive(Clone, Debug)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub color: String,
    pub label: String,
    /// Also draw a dashed vertical line through the whole plot at `x`.
    pub vline: bool,
}

/// A dashed horizontal line across the plot (a limit such as the SLO).
#[derive(Clone, Debug)]
pub struct Rule {
    pub y: f64,
    pub color: String,
    pub label: String,
}

/// A shaded span of x (a fault while it lasted), drawn under the series.
#[derive(Clone, Debug)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub color: String,
    pub label: String,
}

/// One chart: what to draw and how to label it.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Value of the `data-chart` attribute, which tests and readers look up.
    pub name: String,
    /// Accessible title (the visible caption is the page's).
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Height of the plot area itself.
    pub plot_height: f64,
    /// Fixed x ticks (position in data units, label); `None`: nice ticks.
    pub x_ticks: Option<Vec<(f64, String)>>,
    /// An x range the axis must cover (so charts of one run share a time axis).
    pub x_span: Option<(f64, f64)>,
    pub series: Vec<Series>,
    pub marks: Vec<Mark>,
    pub rules: Vec<Rule>,
    pub bands: Vec<Band>,
}

impl Chart {
    /// An empty chart with a 260-unit plot area.
    pub fn new(name: &str, title: &str, x_label: &str, y_label: &str) -> Self {
        Chart {
            name: name.to_string(),
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            plot_height: 260.0,
            x_ticks: None,
            x_span: None,
            series: Vec::new(),
            marks: Vec::new(),
            rules: Vec::new(),
            bands: Vec::new(),
        }
    }

    /// True when no series has a drawable point.
    pub fn is_empty(&self) -> bool {
        !self.series.iter().flat_map(|s| &s.points).any(|&(x, y)| x.is_finite() && y.is_finite())
    }

    /// Write the chart as one `<svg>` element, or a "no data" note.
    pub fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.is_empty() {
            return writeln!(w, r#"<p class="nodata" data-chart-empty="{}">no data</p>"#, Esc(&self.name));
        }
        let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
        let pts = self.series.iter().flat_map(|s| s.points.iter().copied()).filter(finite);
        let marks = self.marks.iter().map(|m| (m.x, m.y)).filter(finite);
        let all: Vec<(f64, f64)> = pts.chain(marks).collect();
        let fixed_x = self.x_ticks.as_ref().map(|t| t.iter().map(|&(x, _)| x).collect::<Vec<_>>());
        let mut x_extra = fixed_x.clone().unwrap_or_default();
        x_extra.extend(self.x_span.iter().flat_map(|&(a, b)| [a, b]).filter(|x| x.is_finite()));
        let x_axis = Axis::fit(all.iter().map(|p| p.0).chain(x_extra), 10);
        let rules = self.rules.iter().map(|r| r.y).filter(|y| y.is_finite());
        // About one y tick per 45 units of height: 6 on a full chart, 3 on a compact one.
        let y_axis =
            Axis::fit(all.iter().map(|p| p.1).chain(rules), (self.plot_height / 45.0).clamp(3.0, 6.0) as usize);

        let legend = self.legend_layout();
        let top = 14.0 + legend.rows as f64 * 20.0 + 8.0;
        let height = top + self.plot_height + BOTTOM;
        let plot = Plot { x0: LEFT, x1: WIDTH - RIGHT, y0: top, y1: top + self.plot_height, x: x_axis, y: y_axis };

        writeln!(
            w,
            r#"<svg class="chart" data-chart="{}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{}">"#,
            Esc(&self.name),
            Esc(&self.title)
        )?;
        writeln!(w, "<title>{}</title>", Esc(&self.title))?;
        self.render_axes(w, &plot, fixed_x.is_some())?;
        for b in &self.bands {
            // An instantaneous fault still shows: at least 3 units wide.
            let (x0, x1) = (plot.px(b.from), plot.px(b.to).max(plot.px(b.from) + 3.0));
            writeln!(
                w,
                r#"<rect data-band="{}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.15"><title>{}</title></rect>"#,
                Esc(&b.label),
                plot.y0,
                x1 - x0,
                plot.y1 - plot.y0,
                Esc(&b.color),
                Esc(&b.label)
            )?;
            writeln!(
                w,
                r#"<text x="{:.1}" y="{:.1}" class="rule" fill="{}">{}</text>"#,
                x0 + 2.0,
                plot.y0 + 12.0,
                Esc(&b.color),
                Esc(&b.label)
            )?;
        }
        for r in &self.rules {
            let y = plot.py(r.y);
            writeln!(
                w,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2" stroke-dasharray="8 5"/>"#,
                plot.x0,
                plot.x1,
                Esc(&r.color)
            )?;
            writeln!(
                w,
                // At the left end: the points crowd the right, where load is high.
                r#"<text x="{:.1}" y="{:.1}" class="rule" fill="{}">{}</text>"#,
                plot.x0 + 6.0,
                y - 6.0,
                Esc(&r.color),
                Esc(&r.label)
            )?;
        }
        for s in &self.series {
            render_series(w, s, &plot)?;
        }
        for m in &self.marks {
            render_mark(w, m, &plot)?;
        }
        self.render_legend(w, &legend)?;
        writeln!(w, "</svg>")
    }

    fn render_axes(&self, w: &mut dyn Write, p: &Plot, fixed: bool) -> io::Result<()> {
        writeln!(w, r#"<g class="grid">"#)?;
        for (v, label) in p.y.ticks() {
            let y = p.py(v);
            writeln!(w, r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#, p.x0, p.x1)?;
            writeln!(
                w,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
                p.x0 - 6.0,
                y + 4.0,
                Esc(&label)
            )?;
        }
        let x_ticks = match &self.x_ticks {
            Some(t) if fixed => t.clone(),
            _ => p.x.ticks(),
        };
        for (v, label) in x_ticks {
            let x = p.px(v);
            // A label at the right edge would be cut: it ends at its tick instead.
            let anchor = if x > p.x1 - 1.0 && label.len() > 3 { "end" } else { "middle" };
            writeln!(w, r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/>"#, p.y0, p.y1)?;
            writeln!(
                w,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" class="tick">{}</text>"#,
                p.y1 + 17.0,
                Esc(&label)
            )?;
        }
        writeln!(w, "</g>")?;
        writeln!(
            w,
            r##"<path class="axis" d="M{:.1},{:.1} V{:.1} H{:.1}" fill="none" stroke="#333" stroke-width="1.2"/>"##,
            p.x0, p.y0, p.y1, p.x1
        )?;
        writeln!(
            w,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-label">{}</text>"#,
            (p.x0 + p.x1) / 2.0,
            p.y1 + 40.0,
            Esc(&self.x_label)
        )?;
        let cy = (p.y0 + p.y1) / 2.0;
        writeln!(
            w,
            r#"<text x="18" y="{cy:.1}" text-anchor="middle" class="axis-label" transform="rotate(-90 18 {cy:.1})">{}</text>"#,
            Esc(&self.y_label)
        )
    }

    /// Where each legend entry goes: entries flow left to right and wrap.
    fn legend_layout(&self) -> Legend {
        let mut items = Vec::new();
        let (mut x, mut row) = (LEFT, 0usize);
        for (i, s) in self.series.iter().enumerate() {
            let width = 30.0 + s.label.chars().count() as f64 * CHAR_W + 22.0;
            if x + width > WIDTH - RIGHT && x > LEFT {
                x = LEFT;
                row += 1;
            }
            items.push((i, x, 14.0 + row as f64 * 20.0));
            x += width;
        }
        Legend { rows: if items.is_empty() { 0 } else { row + 1 }, items }
    }

    fn render_legend(&self, w: &mut dyn Write, legend: &Legend) -> io::Result<()> {
        writeln!(w, r#"<g class="legend">"#)?;
        for &(i, x, y) in &legend.items {
            let Some(s) = self.series.get(i) else { continue };
            writeln!(
                w,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{}"{}/>"#,
                y + 6.0,
                x + 24.0,
                y + 6.0,
                Esc(&s.color),
                s.width.max(2.0),
                if s.dashed { r#" stroke-dasharray="6 4""# } else { "" }
            )?;
            writeln!(w, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 30.0, y + 10.0, Esc(&s.label))?;
        }
        writeln!(w, "</g>")
    }
}

struct Legend {
    rows: usize,
    /// (series index, x, y of the row's top).
    items: Vec<(usize, f64, f64)>,
}

fn render_series(w: &mut dyn Write, s: &Series, p: &Plot) -> io::Result<()> {
    // Split at gaps; a run of one point is drawn as a dot so it stays visible.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in &s.points {
        if x.is_finite() && y.is_finite() {
            if let Some(run) = runs.last_mut() {
                run.push((p.px(x), p.py(y)));
            }
        } else if runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    let mut d = String::new();
    let mut lone = Vec::new();
    for run in runs.iter().filter(|r| !r.is_empty()) {
        if let [only] = run.as_slice() {
            lone.push(*only);
            continue;
        }
        for (i, (x, y)) in run.iter().enumerate() {
            d.push_str(&format!("{}{x:.1},{y:.1} ", if i == 0 { 'M' } else { 'L' }));
        }
    }
    writeln!(w, r#"<g class="series">"#)?;
    writeln!(w, "<title>{}</title>", Esc(&s.label))?;
    if !d.is_empty() {
        writeln!(
            w,
            r#"<path d="{}" fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round" stroke-linecap="round"{}/>"#,
            d.trim_end(),
            Esc(&s.color),
            s.width,
            if s.dashed { r#" stroke-dasharray="7 5""# } else { "" }
        )?;
    }
    let dots: Vec<(f64, f64)> = if s.dots { runs.iter().flatten().copied().collect() } else { lone };
    for (x, y) in dots {
        writeln!(w, r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{}"/>"#, Esc(&s.color))?;
    }
    let finite = s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite());
    for ((x, y), label) in finite.zip(&s.point_labels).filter(|(_, l)| !l.is_empty()) {
        let (x, y) = (p.px(*x), p.py(*y));
        let width = label.chars().count() as f64 * CHAR_W * 0.9;
        let (lx, anchor) = if x + 7.0 + width > p.x1 { (x - 7.0, "end") } else { (x + 7.0, "start") };
        writeln!(
            w,
            r#"<text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}" class="point-label">{}</text>"#,
            y + 16.0,
            Esc(label)
        )?;
    }
    writeln!(w, "</g>")
}

fn render_mark(w: &mut dyn Write, m: &Mark, p: &Plot) -> io::Result<()> {
    if !(m.x.is_finite() && m.y.is_finite()) {
        return Ok(());
    }
    let (x, y) = (p.px(m.x), p.py(m.y));
    let color = Esc(&m.color);
    writeln!(w, r#"<g class="mark">"#)?;
    if m.vline {
        writeln!(
            w,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 4"/>"#,
            p.y0, p.y1
        )?;
    }
    writeln!(w, r#"<circle cx="{x:.1}" cy="{y:.1}" r="7" fill="{color}" stroke="white" stroke-width="1.5"/>"#)?;
    // Keep the label inside the plot: to the left of marks near the right edge.
    let (lx, anchor) = if x > p.x1 - 80.0 { (x - 10.0, "end") } else { (x + 10.0, "start") };
    let ly = if y < p.y0 + 18.0 { y + 20.0 } else { y - 10.0 };
    writeln!(
        w,
        r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" class="mark-label" fill="{color}">{}</text>"#,
        Esc(&m.label)
    )?;
    writeln!(w, "</g>")
}

/// The plot area in SVG units and the axes that map data into it.
struct Plot {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    x: Axis,
    y: Axis,
}

impl Plot {
    fn px(&self, v: f64) -> f64 {
        self.x0 + self.x.frac(v) * (self.x1 - self.x0)
    }
    fn py(&self, v: f64) -> f64 {
        self.y1 - self.y.frac(v) * (self.y1 - self.y0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines_and_empty_charts_say_no_data() {
        let mut c = Chart::new("t", "T", "x", "y");
        let mut out = Vec::new();
        c.render(&mut out).expect("render");
        assert!(String::from_utf8_lossy(&out).contains("no data"));
        c.series.push(Series::line("a", "#000", vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 1.0)]));
        let mut out = Vec::new();
        c.render(&mut out).expect("render");
        let svg = String::from_utf8_lossy(&out);
        assert!(svg.starts_with(r#"<svg class="chart" data-chart="t""#), "{svg}");
        assert_eq!(svg.matches("<path d=\"M").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "the lone point is a dot: {svg}");
    }
}
