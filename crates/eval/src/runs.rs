//! `eval runs`: one table of training runs from the records they leave (`manifest.json`,
//! `train_results.json`, `eval_results.json`) — a row per run, or per group of runs that share some
//! settings (e.g. the seeds of one recipe) with the mean and sample standard deviation of each metric.
//! Every figure comes from the files; a run without an evaluation (stopped, or still training) is a row
//! marked as such, not left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tables::polars::prelude::{Column, DataFrame};

/// What one run directory records.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub dir: PathBuf,
    pub tool: String,
    pub seed: Option<u64>,
    pub commit: Option<String>,
    pub config: serde_json::Value,
    /// `train_results.json`'s `global_step`, `epoch` and `train_loss`, where the run finished.
    pub steps: Option<u64>,
    pub epoch: Option<f64>,
    pub train_loss: Option<f64>,
    /// `eval_results.json`; None where the run has none (stopped or still training).
    pub metrics: Option<BTreeMap<String, f64>>,
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not valid JSON", path.display()))
}

impl RunRecord {
    /// Reads `dir`'s records; its `manifest.json` must be there.
    pub fn read(dir: &Path) -> Result<Self> {
        let manifest = read_json(&dir.join("manifest.json"))?.with_context(|| {
            format!(
                "{}: no manifest.json (not a run directory of mlm-pretrain or qa-finetune)",
                dir.display()
            )
        })?;
        let train = read_json(&dir.join("train_results.json"))?.unwrap_or_default();
        let metrics = match read_json(&dir.join("eval_results.json"))? {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<BTreeMap<String, Option<f64>>>(v)
                    .with_context(|| {
                        format!(
                            "{}: not a map of metric names to numbers",
                            dir.join("eval_results.json").display()
                        )
                    })?
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect(),
            ),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            tool: manifest["tool"].as_str().unwrap_or("?").to_owned(),
            seed: manifest["seed"].as_u64(),
            commit: manifest["git_commit"]
                .as_str()
                .map(|c| c.chars().take(7).collect()),
            // Every setting with its default where the run recorded one, so that a run that wrote a
            // default out and one that left it out are the same recipe; else what the file gave.
            config: match &manifest["effective_config"] {
                serde_json::Value::Null => manifest["config"].clone(),
                effective => effective.clone(),
            },
            steps: train["global_step"].as_u64(),
            epoch: train["epoch"].as_f64(),
            train_loss: train["train_loss"].as_f64(),
            metrics,
        })
    }

    /// A dotted configuration key's value as text (`train.learning_rate` → `3e-5`); `-` where unset.
    pub fn setting(&self, key: &str) -> String {
        let value = key.split('.').fold(&self.config, |v, part| &v[part]);
        match value {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The metrics the table shows: `wanted` if given (each must occur in some run), else every one found.
fn metric_names(records: &[RunRecord], wanted: &[String]) -> Result<Vec<String>> {
    let found: std::collections::BTreeSet<&String> = records
        .iter()
        .filter_map(|r| r.metrics.as_ref())
        .flat_map(|m| m.keys())
        .collect();
    if wanted.is_empty() {
        return Ok(found.into_iter().cloned().collect());
    }
    for w in wanted {
        if !found.contains(w) {
            bail!(
                "--metric {w}: no run has it (they have: {})",
                found
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(wanted.to_vec())
}

/// A row per run: directory, tool, commit, seed, the `group_by` settings, steps, epoch, train loss,
/// then the metrics.
pub fn table(records: &[RunRecord], wanted: &[String], settings: &[String]) -> Result<DataFrame> {
    let metrics = metric_names(records, wanted)?;
    let text = |f: &dyn Fn(&RunRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
    let mut columns = vec![
        tables::text_column("run", text(&|r| r.dir.display().to_string())),
        tables::text_column("tool", text(&|r| r.tool.clone())),
        tables::text_column("commit", text(&|r| r.commit.clone().unwrap_or_default())),
        Column::new(
            "seed".into(),
            records.iter().map(|r| r.seed).collect::<Vec<_>>(),
        ),
    ];
    for key in settings {
        columns.push(tables::text_column(key, text(&|r| r.setting(key))));
    }
    columns.push(tables::text_column(
        "status",
        text(&|r| {
            if r.metrics.is_some() {
                "done"
            } else {
                "no evaluation"
            }
            .to_owned()
        }),
    ));
    columns.push(Column::new(
        "steps".into(),
        records.iter().map(|r| r.steps).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "epoch".into(),
        records.iter().map(|r| r.epoch).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "train_loss".into(),
        records.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
    ));
    for m in &metrics {
        let values: Vec<Option<f64>> = records
            .iter()
            .map(|r| r.metrics.as_ref().and_then(|ms| ms.get(m).copied()))
            .collect();
        columns.push(Column::new(m.as_str().into(), values));
    }
    tables::frame(columns)
}

/// Mean and sample standard deviation (n − 1; none for one value).
fn mean_sd(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), sd)
}

/// How runs fall into groups.
pub enum Grouping<'a> {
    /// By these dotted settings.
    Settings(&'a [String]),
    /// Runs whose configurations are the same but for their seeds and output directory: a recipe and
    /// its repeats. The group is named by its runs' directories.
    Recipe,
}

/// The settings a recipe's repeats may differ in.
const REPEAT_KEYS: &[&[&str]] = &[&["output_dir"], &["train", "seed"], &["train", "data_seed"]];

/// A run's configuration without what its repeats may change.
fn recipe(config: &serde_json::Value) -> String {
    let mut config = config.clone();
    for path in REPEAT_KEYS {
        let (last, parents) = path.split_last().expect("non-empty key");
        let parent = parents.iter().try_fold(&mut config, |v, k| v.get_mut(*k));
        if let Some(serde_json::Value::Object(map)) = parent {
            map.remove(*last);
        }
    }
    config.to_string()
}

/// A row per group of runs (in first-seen order): how many runs, how many of them evaluated, and each
/// metric's (and the train loss's) mean and standard deviation over the runs that have it.
pub fn grouped(records: &[RunRecord], wanted: &[String], grouping: Grouping) -> Result<DataFrame> {
    let metrics = metric_names(records, wanted)?;
    let group_by: Vec<String> = match grouping {
        Grouping::Settings(keys) => keys.to_vec(),
        Grouping::Recipe => vec!["recipe".to_owned()],
    };
    let mut groups: Vec<(Vec<String>, Vec<&RunRecord>)> = Vec::new();
    for r in records {
        let key: Vec<String> = match grouping {
            Grouping::Settings(keys) => keys.iter().map(|k| r.setting(k)).collect(),
            Grouping::Recipe => vec![recipe(&r.config)],
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    if let Grouping::Recipe = grouping {
        // The recipe's configuration is no name: its runs' directories are.
        for (key, members) in &mut groups {
            key[0] = members
                .iter()
                .map(|r| r.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
        }
    }
    let mut columns = Vec::new();
    for (i, key) in group_by.iter().enumerate() {
        columns.push(tables::text_column(
            key,
            groups.iter().map(|(k, _)| k[i].clone()).collect(),
        ));
    }
    columns.push(Column::new(
        "runs".into(),
        groups
            .iter()
            .map(|(_, m)| m.len() as u64)
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "evaluated".into(),
        groups
            .iter()
            .map(|(_, m)| m.iter().filter(|r| r.metrics.is_some()).count() as u64)
            .collect::<Vec<_>>(),
    ));
    let mut stat = |name: &str, value: &dyn Fn(&RunRecord) -> Option<f64>| {
        let (means, sds): (Vec<_>, Vec<_>) = groups
            .iter()
            .map(|(_, members)| {
                mean_sd(&members.iter().filter_map(|r| value(r)).collect::<Vec<_>>())
            })
            .unzip();
        columns.push(Column::new(format!("{name} mean").into(), means));
        columns.push(Column::new(format!("{name} sd").into(), sds));
    };
    stat("train_loss", &|r| r.train_loss);
    for m in &metrics {
        stat(m, &|r| r.metrics.as_ref().and_then(|ms| ms.get(m).copied()));
    }
    tables::frame(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_is_the_configuration_but_for_seeds_and_output() {
        let a = serde_json::json!({"output_dir": "runs/a", "train": {"seed": 1, "learning_rate": 3e-5}});
        let b = serde_json::json!({"output_dir": "runs/b", "train": {"seed": 2, "data_seed": 5, "learning_rate": 3e-5}});
        let c = serde_json::json!({"output_dir": "runs/c", "train": {"seed": 1, "learning_rate": 5e-5}});
        assert_eq!(recipe(&a), recipe(&b));
        assert_ne!(recipe(&a), recipe(&c));
    }

    #[test]
    fn mean_and_sample_standard_deviation() {
        assert_eq!(mean_sd(&[]), (None, None));
        assert_eq!(mean_sd(&[2.0]), (Some(2.0), None));
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, Some(2.5));
        assert!((sd.unwrap() - 1.2909944487358056).abs() < 1e-12);
    }
}
