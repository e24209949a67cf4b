//! A minimal line-chart description rendered with plotters to PNG or SVG.

use super::font::{FAMILY, text_available};
use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Output image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageFormat {
    /// Raster (1000 px wide, 500 px per panel); what most viewers show inline.
    Png,
    /// Vector; scales in browsers and papers.
    Svg,
}

impl ImageFormat {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }
}

/// One named polyline.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// `(x, y)` points; non-finite points (and non-positive ones on a log axis) are dropped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a label and points.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
        }
    }
}

/// One panel: axes, title and series.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Caption above the panel.
    pub title: String,
    /// X-axis description.
    pub x_label: String,
    /// Y-axis description.
    pub y_label: String,
    /// Logarithmic y axis (plotted as log10, labelled as powers of ten).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

impl LineChart {
    /// A chart with a title and axis labels and no series yet.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Self::default()
        }
    }

    /// Uses a log10 y axis.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The points that will actually be drawn, per series (after the log transform).
    fn drawable(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        self.series
            .iter()
            .map(|s| {
                let pts = s
                    .points
                    .iter()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                    .map(|&(x, y)| (x, if self.log_y { y.log10() } else { y }))
                    .collect();
                (s.label.clone(), pts)
            })
            .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
            .collect()
    }

    /// True if no series has a drawable point.
    pub fn is_empty(&self) -> bool {
        self.drawable().is_empty()
    }
}

/// Several panels stacked vertically in one image.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Panels, top to bottom.
    pub panels: Vec<LineChart>,
    /// Width in pixels.
    pub width: u32,
    /// Height per panel in pixels.
    pub panel_height: u32,
}

impl Figure {
    /// A figure of the given panels at 1000×500 px each.
    pub fn new(panels: Vec<LineChart>) -> Self {
        Self {
            panels,
            width: 1000,
            panel_height: 500,
        }
    }

    /// Renders to `dir/stem.{png,svg}` and returns the path. Empty panels are skipped; a
    /// figure with nothing to draw is an error.
    pub fn save(&self, dir: &Path, stem: &str, format: ImageFormat) -> Result<PathBuf> {
        let panels: Vec<&LineChart> = self.panels.iter().filter(|p| !p.is_empty()).collect();
        if panels.is_empty() {
            bail!("figure `{stem}`: no finite data to plot");
        }
        let path = dir.join(format!("{stem}.{}", format.extension()));
        let size = (self.width, self.panel_height * panels.len() as u32);
        let text = text_available();
        match format {
            ImageFormat::Png => {
                let root = BitMapBackend::new(&path, size).into_drawing_area();
                render(&root, &panels, text)?;
                root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            ImageFormat::Svg => {
                let root = SVGBackend::new(&path, size).into_drawing_area();
                render(&root, &panels, text)?;
                root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        Ok(path)
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[&LineChart],
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    for (area, chart) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, chart, text).with_context(|| format!("drawing `{}`", chart.title))?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &LineChart,
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let data = chart.drawable();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, pts) in &data {
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let pad = if y1 > y0 {
        0.05 * (y1 - y0)
    } else {
        0.5f64.max(y0.abs() * 0.1)
    };
    let (y0, y1) = (y0 - pad, y1 + pad);

    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(&chart.title, (FAMILY, 24))
            .x_label_area_size(45)
            .y_label_area_size(80);
    }
    let mut ctx = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
    let log_fmt = |v: &f64| {
        let p = 10f64.powf(*v);
        if (v - v.round()).abs() < 1e-9 {
            format!("1e{}", v.round())
        } else {
            format!("{p:.2e}")
        }
    };
    let lin_fmt = |v: &f64| {
        if v.abs() >= 1e4 || (v.abs() < 1e-2 && *v != 0.0) {
            format!("{v:.1e}")
        } else {
            format!("{v:.3}")
        }
    };
    let x_fmt = |v: &f64| {
        if v.abs() >= 1e5 {
            format!("{v:.1e}")
        } else {
            format!("{}", (v * 100.0).round() / 100.0)
        }
    };
    let mut mesh = ctx.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235));
    if text {
        mesh.x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .x_label_formatter(&x_fmt);
        if chart.log_y {
            mesh.y_label_formatter(&log_fmt);
        } else {
            mesh.y_label_formatter(&lin_fmt);
        }
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    for (i, (label, pts)) in data.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let series = ctx
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?;
        if text {
            series.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && (data.len() > 1 || !data[0].0.is_empty()) {
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 15))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Machines without any TrueType font get text-free charts rather than an error.
    #[test]
    fn renders_without_text() {
        let chart = LineChart::new("t", "x", "y").log_y().with(Series::new(
            "a",
            vec![(0.0, 1.0), (1.0, 0.1), (2.0, f64::NAN)],
        ));
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (300, 200)).into_drawing_area();
            render(&root, &[&chart], false).unwrap();
            root.present().unwrap();
        }
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{svg}");
        assert!(!svg.contains("<text"));
    }
}
