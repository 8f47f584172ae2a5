//! Line charts as PNG (plotters): F1 over nightly runs, and training curves.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;

/// A named line of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Labels for integer x positions (run dates, say); numbers when empty.
    pub x_ticks: &'a [String],
    /// Fixed y range (F1 is 0–100); the data's range when `None`.
    pub y_range: Option<(f64, f64)>,
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    // A single value gets a visible range around it.
    let pad = if hi - lo < 1e-9 {
        (lo.abs() * 0.1).max(1.0)
    } else {
        (hi - lo) * 0.05
    };
    (lo - pad, hi + pad)
}

/// Axis numbers without float noise: integers as integers, else up to 4 significant digits.
fn number(x: f64) -> String {
    if (x - x.round()).abs() < 1e-6 * x.abs().max(1.0) {
        format!("{}", x.round() as i64)
    } else {
        let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
        format!("{x:.digits$}")
    }
}

/// Draws `series` into a 1000×600 PNG at `path` (written beside, then renamed into place).
pub fn line_chart(path: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    if series.iter().all(|s| s.points.is_empty()) {
        bail!("{}: nothing to plot", path.display());
    }
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 600)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
        let (y0, y1) = chart
            .y_range
            .unwrap_or_else(|| range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1))));
        let mut ctx = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        let ticks = chart.x_ticks;
        let fmt_x = |x: &f64| {
            let i = x.round();
            if !ticks.is_empty() && (x - i).abs() < 1e-6 && i >= 0.0 {
                ticks.get(i as usize).cloned().unwrap_or_default()
            } else if ticks.is_empty() {
                number(*x)
            } else {
                String::new()
            }
        };
        ctx.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&|y| number(*y))
            .x_labels(ticks.len().clamp(2, 10))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            ctx.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(&s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
            if s.points.len() < 40 {
                ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(&e))?;
            }
        }
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow!("cannot move {} into place: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let chart = Chart {
            title: "F1",
            x_label: "run",
            y_label: "F1",
            x_ticks: &["11-01".into(), "11-02".into()],
            y_range: Some((0.0, 100.0)),
        };
        let s = [Series {
            name: "m / en".into(),
            points: vec![(0.0, 40.0), (1.0, 45.5)],
        }];
        line_chart(&path, &chart, &s).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(line_chart(&path, &chart, &[]).is_err());
        assert_eq!(number(29.999999999999996), "30");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(1500.0), "1500");
    }
}
