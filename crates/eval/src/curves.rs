//! Training curves from `train_log.jsonl` files (the training loop's record) drawn as one PNG.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::plot;

/// A run's label in the legend: the directory holding its log (`runs/demo/mlm` → `mlm`).
fn label(log: &Path) -> String {
    log.parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| log.display().to_string())
}

/// Every (step, value) of `metrics` in each log; a metric absent from a log is left out.
pub fn series(logs: &[PathBuf], metrics: &[String]) -> Result<Vec<plot::Series>> {
    let mut out = Vec::new();
    for log in logs {
        let text = std::fs::read_to_string(log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        let mut lines: Vec<plot::Series> = metrics
            .iter()
            .map(|m| plot::Series {
                name: format!("{}: {m}", label(log)),
                points: Vec::new(),
            })
            .collect();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a JSON object", log.display(), i + 1))?;
            let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
                bail!("{} line {}: no step", log.display(), i + 1);
            };
            for (m, s) in metrics.iter().zip(lines.iter_mut()) {
                if let Some(y) = v.get(m).and_then(|y| y.as_f64()).filter(|y| y.is_finite()) {
                    s.points.push((step, y));
                }
            }
        }
        out.extend(lines.into_iter().filter(|s| !s.points.is_empty()));
    }
    Ok(out)
}

pub fn draw(logs: &[PathBuf], metrics: &[String], title: &str, out: &Path) -> Result<usize> {
    let series = series(logs, metrics)?;
    if series.is_empty() {
        bail!(
            "none of {} holds {}",
            logs.iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            metrics.join(", ")
        );
    }
    plot::line_chart(
        out,
        &plot::Chart {
            title,
            x_label: "step",
            y_label: &metrics.join(", "),
            x_ticks: &[],
            y_range: None,
        },
        &series,
    )?;
    Ok(series.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_per_run_and_skips_absent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("mlm");
        std::fs::create_dir_all(&run).unwrap();
        let log = run.join("train_log.jsonl");
        std::fs::write(
            &log,
            "{\"step\":1,\"train/loss\":6.9}\n{\"step\":2,\"train/loss\":6.5}\n{\"step\":2,\"eval/loss\":6.6}\n",
        )
        .unwrap();
        let metrics = [
            "train/loss".to_string(),
            "eval/loss".into(),
            "eval/f1".into(),
        ];
        let s = series(std::slice::from_ref(&log), &metrics).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "mlm: train/loss");
        assert_eq!(s[0].points, vec![(1.0, 6.9), (2.0, 6.5)]);
        let png = dir.path().join("c.png");
        assert_eq!(
            draw(std::slice::from_ref(&log), &metrics, "MLM", &png).unwrap(),
            2
        );
        assert!(png.exists());
        assert!(draw(&[log], &["eval/f1".into()], "QA", &png).is_err());
    }
}
