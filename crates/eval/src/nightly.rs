//! Nightly evaluation: every model of a suite on every evaluation set, scored, written to a dated report
//! directory, appended to the history and compared with the previous run and the best so far.
//!
//! Prediction runs `qa-finetune predict` (the model crate's QA inference) in a child process: the eval
//! binary itself does not link libtorch, which keeps `eval score` starting in milliseconds, and each
//! model's memory goes back to the system when its predictions are written.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::history::{self, Comparison, Row};
use crate::plot;
use crate::report::{evaluate, Options, Report};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NightlyConfig {
    /// Each run writes `report_dir/<UTC time stamp>/`.
    pub report_dir: PathBuf,
    /// Default: `report_dir/history.parquet`.
    #[serde(default)]
    pub history: Option<PathBuf>,
    /// An F1 drop from the previous run larger than this (in F1 points) is a regression.
    #[serde(default = "default_tolerance")]
    pub tolerance_f1: f64,
    #[serde(default)]
    pub predict: PredictSettings,
    pub models: Vec<ModelEntry>,
    pub sets: Vec<EvalSet>,
}

fn default_tolerance() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictSettings {
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_precision")]
    pub precision: String,
}

impl Default for PredictSettings {
    fn default() -> Self {
        Self {
            device: default_device(),
            batch_size: default_batch(),
            precision: default_precision(),
        }
    }
}

fn default_device() -> String {
    "auto".into()
}
fn default_batch() -> usize {
    32
}
fn default_precision() -> String {
    "fp32".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// A fine-tuned model directory (a qa-finetune run's `final/`, or one transformers wrote).
    pub path: PathBuf,
    /// Prediction settings over the model's `medqa.json`; for a model without one (fine-tuned by
    /// transformers), over run_qa.py's defaults: what its training used (`settings = { max_seq_length =
    /// 256, doc_stride = 64 }`).
    #[serde(default)]
    pub settings: text::qa::settings::SettingsArgs,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetFormat {
    /// v2.0 when the file says so or has unanswerable questions, else v1.1.
    #[default]
    Auto,
    V1,
    V2,
    /// SQuAD-format BioASQ: EM/F1 and the factoid strict/lenient accuracy and MRR.
    Bioasq,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    pub name: String,
    pub path: PathBuf,
    /// Overrides the file's `lang` tags.
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub format: SetFormat,
}

impl NightlyConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid nightly suite", path.display()))?;
        if cfg.models.is_empty() || cfg.sets.is_empty() {
            bail!(
                "{}: a suite needs at least one model and one set",
                path.display()
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for n in cfg
            .models
            .iter()
            .map(|m| format!("model {}", m.name))
            .chain(cfg.sets.iter().map(|s| format!("set {}", s.name)))
        {
            if !names.insert(n.clone()) {
                bail!("{}: {n} appears twice", path.display());
            }
        }
        Ok(cfg)
    }

    pub fn history_path(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(|| self.report_dir.join("history.parquet"))
    }
}

/// Where `qa-finetune` is: `explicit`, else `MEDQA_QA_FINETUNE`, else beside this binary.
pub fn find_predictor(explicit: Option<&Path>) -> Result<PathBuf> {
    let candidate = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("MEDQA_QA_FINETUNE") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()?
                .parent()
                .map(|d| d.join("qa-finetune"))
                .unwrap_or_default(),
        },
    };
    if !candidate.is_file() {
        bail!(
            "nightly predicts with `qa-finetune predict` and found no binary at {}; build it \
             (cargo build --release -p qa-finetune) or pass --predictor / set MEDQA_QA_FINETUNE",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// A file name part from a user's name: letters, digits, `-`, `_`, `.`.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What one run produced.
pub struct Outcome {
    pub dir: PathBuf,
    pub rows: Vec<Row>,
    pub comparisons: Vec<Comparison>,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn regressions(&self) -> impl Iterator<Item = &Comparison> {
        self.comparisons.iter().filter(|c| c.regression)
    }
}

/// Runs the suite at time `run` (`YYYY-MM-DDTHH:MM:SSZ`); `if_held` says whether a suite that still
/// holds the report directory (or the history's) makes this one fail or wait.
pub fn run(
    cfg: &NightlyConfig,
    predictor: &Path,
    run: &str,
    if_held: fsutil::lock::IfHeld,
) -> Result<Outcome> {
    let _locks = lock(cfg, if_held)?;
    let dir = cfg.report_dir.join(run.replace(':', ""));
    if dir.exists() {
        bail!(
            "{} exists: a run with this time stamp was already made",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rows = Vec::new();
    let mut reports: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut failures = Vec::new();
    let loaded = load_sets(cfg)?;
    for m in &cfg.models {
        let weights = match text::weight_files::WeightFiles::of_dir(&m.path) {
            Ok(w) => w,
            Err(e) => {
                failures.push(format!("model {}: {e:#}", m.name));
                continue;
            }
        };
        // The weights' hash is the one the predictor records (it hashes what it loads); hashed here
        // only for a predictor that records none, or for a sharded checkpoint (one hash over its
        // shards, which the predictor records one by one), once per model.
        let mut hashed_here: Option<String> = None;
        for set in &cfg.sets {
            let out = dir
                .join("predictions")
                .join(slug(&m.name))
                .join(slug(&set.name));
            eprintln!("nightly: {} on {}", m.name, set.name);
            if let Err(failure) = predict(cfg, predictor, m, set, &out)? {
                failures.push(failure);
                continue;
            }
            let (set_sha, data, golden) = &loaded[&set.name];
            let recorded = PredictorRecord::read(&out)?;
            if let Some(predicted) = recorded.hash(&set.path) {
                if predicted != set_sha {
                    // Scores against the file read at the start would mix two versions of the set.
                    failures.push(format!(
                        "model {} on set {}: {} changed while the suite ran (SHA-256 {} at the start, \
                         {} when predicted); not scored",
                        m.name,
                        set.name,
                        set.path.display(),
                        set_sha,
                        predicted
                    ));
                    continue;
                }
            }
            let recorded_weights = match weights.files.as_slice() {
                [single] => recorded.hash(single),
                _ => None,
            };
            let weights_sha = match recorded_weights {
                Some(h) => h.to_owned(),
                None => match &hashed_here {
                    Some(h) => h.clone(),
                    None => hashed_here.insert(weights.digest()?).clone(),
                },
            };
            let (report, bioasq) = score_set(set, data, golden.as_ref(), &out)?;
            let code_commit = recorded.commit.clone();
            let predict_settings = recorded.settings.clone();
            let base = Row {
                run: run.to_owned(),
                model: m.name.clone(),
                model_sha256: weights_sha,
                set: set.name.clone(),
                set_sha256: set_sha.clone(),
                lang: "all".into(),
                questions: report.overall.total as u64,
                exact: report.overall.exact,
                f1: report.overall.f1,
                has_ans_f1: report.overall.has_ans_f1,
                no_ans_exact: report.overall.no_ans_exact,
                bioasq_strict: bioasq.as_ref().map(|b| 100.0 * b.strict_accuracy),
                bioasq_lenient: bioasq.as_ref().map(|b| 100.0 * b.lenient_accuracy),
                bioasq_mrr: bioasq.as_ref().map(|b| 100.0 * b.mrr),
                code_commit,
                predict_settings,
            };
            if report.by_language.len() > 1 {
                rows.extend(report.by_language.iter().map(|(lang, s)| Row {
                    lang: lang.clone(),
                    questions: s.total as u64,
                    exact: s.exact,
                    f1: s.f1,
                    has_ans_f1: s.has_ans_f1,
                    no_ans_exact: s.no_ans_exact,
                    bioasq_strict: None,
                    bioasq_lenient: None,
                    bioasq_mrr: None,
                    ..base.clone()
                }));
            }
            rows.push(base);
            reports.insert(
                format!("{}/{}", m.name, set.name),
                serde_json::json!({ "squad": report, "bioasq": bioasq }),
            );
        }
    }
    let comparisons = write_results(cfg, run, &dir, &rows, &reports, &failures)?;
    Ok(Outcome {
        dir,
        rows,
        comparisons,
        failures,
    })
}

/// Holds the report directory, and the history's directory where it lies elsewhere, for the whole
/// run: a nightly run that starts while the previous one still runs (a slow night, a cron entry run
/// twice) would otherwise read the history before the other wrote its rows, and write it back without
/// them.
fn lock(cfg: &NightlyConfig, if_held: fsutil::lock::IfHeld) -> Result<Vec<fsutil::lock::DirLock>> {
    let mut held = vec![fsutil::lock::lock_dir_or(
        &cfg.report_dir,
        "report directory",
        "nightly run",
        if_held,
    )?];
    let history = cfg.history_path();
    let history_dir = match history.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&history_dir)
        .with_context(|| format!("cannot create {}", history_dir.display()))?;
    let same = |a: &Path, b: &Path| -> Result<bool> {
        let canonical = |p: &Path| {
            p.canonicalize()
                .with_context(|| format!("cannot resolve {}", p.display()))
        };
        Ok(canonical(a)? == canonical(b)?)
    };
    if !same(&history_dir, &cfg.report_dir)? {
        held.push(fsutil::lock::lock_dir_or(
            &history_dir,
            "history directory",
            "nightly run",
            if_held,
        )?);
    }
    Ok(held)
}

/// What `qa-finetune predict` recorded in `out/predict_settings.json`: its commit (`-dirty` when its
/// checkout had changes, `-stale-build` when the checkout changed after the predictor was built) and the SHA-256 of each input it read, by path as it was given. A predictor
/// older than that file records neither.
#[derive(Debug, Default)]
struct PredictorRecord {
    commit: Option<String>,
    hashes: HashMap<String, String>,
    /// `settings` and `precision`, as compact JSON.
    settings: Option<String>,
}

impl PredictorRecord {
    fn read(out: &Path) -> Result<Self> {
        let path = out.join("predict_settings.json");
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let settings: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let p = &settings["provenance"];
        let commit = p["git_commit"].as_str().map(|c| {
            let dirty = if p["git_dirty"] == true { "-dirty" } else { "" };
            // The predictor was built before its checkout moved on: the commit is the checkout's,
            // maybe not the code that answered; a rebuild then shows as a change of code.
            let stale = if p["checkout_changed_after_build"] == true {
                "-stale-build"
            } else {
                ""
            };
            format!("{c}{dirty}{stale}")
        });
        let hashes = p["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i["path"].as_str()?.to_owned(),
                    i["sha256"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let settings = (!settings["settings"].is_null()).then(|| {
            serde_json::json!({
                "settings": settings["settings"],
                "precision": settings["precision"],
            })
            .to_string()
        });
        Ok(Self {
            commit,
            hashes,
            settings,
        })
    }

    /// The hash recorded for `path`, given to the predictor as written here.
    fn hash(&self, path: &Path) -> Option<&str> {
        self.hashes
            .get(&path.display().to_string())
            .map(String::as_str)
    }
}

/// Each set read and hashed once, whatever the number of models: name → (sha256, data, BioASQ golds).
#[allow(clippy::type_complexity)]
fn load_sets(
    cfg: &NightlyConfig,
) -> Result<HashMap<String, (String, crate::data::Dataset, Option<Golden>)>> {
    let mut loaded = HashMap::new();
    for set in &cfg.sets {
        let golden = (set.format == SetFormat::Bioasq)
            .then(|| crate::bioasq::load_golden(&set.path))
            .transpose()?;
        let data = crate::data::load_dataset(&set.path)?;
        loaded.insert(
            set.name.clone(),
            (fsutil::sha256_file(&set.path)?, data, golden),
        );
    }
    Ok(loaded)
}

type Golden = BTreeMap<String, std::collections::HashSet<String>>;

/// Runs `qa-finetune predict` for one model on one set into `out`; `Ok(Err(message))` when the
/// prediction failed (recorded, the suite goes on), `Err` when the predictor could not run at all.
fn predict(
    cfg: &NightlyConfig,
    predictor: &Path,
    m: &ModelEntry,
    set: &EvalSet,
    out: &Path,
) -> Result<std::result::Result<(), String>> {
    let mut cmd = Command::new(predictor);
    cmd.arg("predict")
        .arg("--model")
        .arg(&m.path)
        .arg("--data")
        .arg(&set.path)
        .arg("--out")
        .arg(out)
        .args(["--device", &cfg.predict.device])
        .args(["--batch-size", &cfg.predict.batch_size.to_string()])
        .args(["--precision", &cfg.predict.precision])
        .args(m.settings.to_flags());
    if let Some(l) = &set.lang {
        cmd.args(["--lang", l]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", predictor.display()))?;
    Ok(if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} on {}: prediction failed ({status})",
            m.name, set.name
        ))
    })
}

/// The history (this run replaces an earlier one of the same time stamp), `results.json`, `report.md`
/// and one F1 plot per set; returns the comparisons with the previous and the best runs.
fn write_results(
    cfg: &NightlyConfig,
    run: &str,
    dir: &Path,
    rows: &[Row],
    reports: &BTreeMap<String, serde_json::Value>,
    failures: &[String],
) -> Result<Vec<Comparison>> {
    let history_path = cfg.history_path();
    let mut all = history::read(&history_path)?;
    all.retain(|r| r.run != run);
    let comparisons = history::compare(&all, rows, cfg.tolerance_f1);
    all.extend(rows.iter().cloned());
    history::write(&history_path, &all)?;
    // What ran the suite: eval's version and commit, command line, machine. The inputs' hashes are
    // each row's (weights and set), and each prediction's record has the predictor's.
    let mut provenance =
        fsutil::provenance::record("eval nightly", env!("CARGO_PKG_VERSION"), &[])?;
    if let Some(record) = provenance.as_object_mut() {
        record.remove("inputs");
    }
    let results = serde_json::json!({
        "run": run, "tolerance_f1": cfg.tolerance_f1, "config": cfg,
        "results": reports, "comparisons": comparisons, "failures": failures,
        "provenance": provenance,
    });
    write_text(
        &dir.join("results.json"),
        &(serde_json::to_string_pretty(&results)? + "\n"),
    )?;
    write_text(
        &dir.join("report.md"),
        &markdown(run, rows, &comparisons, failures)?,
    )?;
    for set in &cfg.sets {
        plot_set(
            &all,
            &set.name,
            &dir.join(format!("f1-{}.png", slug(&set.name))),
        )?;
    }
    Ok(comparisons)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    fsutil::write_atomic(path, |w| w.write_all(text.as_bytes()))
}

/// Scores one prediction directory against its set.
fn score_set(
    set: &EvalSet,
    data: &crate::data::Dataset,
    golden: Option<&Golden>,
    out: &Path,
) -> Result<(Report, Option<crate::bioasq::BioasqScores>)> {
    let preds = crate::data::load_predictions(&out.join("predictions.json"))?;
    let odds = out.join("null_odds.json");
    let na = odds
        .exists()
        .then(|| crate::data::load_na_probs(&odds))
        .transpose()?;
    let version = match set.format {
        SetFormat::V1 => Some(crate::report::Version::V1),
        SetFormat::V2 => Some(crate::report::Version::V2),
        SetFormat::Auto | SetFormat::Bioasq => None,
    };
    let opts = Options {
        version,
        lang: set.lang.as_deref(),
        na_probs: na,
        na_prob_thresh: 1.0,
    };
    let report = evaluate(data, &preds, &opts);
    let bioasq = match golden {
        Some(golden) => {
            let nbest = crate::bioasq::load_nbest(&out.join("nbest_predictions.json"))?;
            Some(crate::bioasq::score(golden, &nbest)?)
        }
        None => None,
    };
    Ok((report, bioasq))
}

fn fmt_opt(v: Option<f64>, signed: bool) -> Option<String> {
    v.map(|x| {
        if signed {
            format!("{x:+.2}")
        } else {
            format!("{x:.2}")
        }
    })
}

/// The run's Markdown report: a polars table of every result with its deltas.
pub fn markdown(
    run: &str,
    rows: &[Row],
    comparisons: &[Comparison],
    failures: &[String],
) -> Result<String> {
    use tables::polars::prelude::Column;
    let s = |f: fn(&Row) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let c = |f: fn(&Comparison) -> Option<String>| comparisons.iter().map(f).collect::<Vec<_>>();
    let df = tables::frame(vec![
        Column::new("model".into(), s(|r| r.model.clone())),
        Column::new("set".into(), s(|r| r.set.clone())),
        Column::new("lang".into(), s(|r| r.lang.clone())),
        Column::new(
            "questions".into(),
            rows.iter().map(|r| r.questions).collect::<Vec<_>>(),
        ),
        Column::new(
            "EM".into(),
            rows.iter().map(|r| r.exact).collect::<Vec<_>>(),
        ),
        Column::new("F1".into(), rows.iter().map(|r| r.f1).collect::<Vec<_>>()),
        Column::new(
            "ΔF1 previous".into(),
            c(|c| fmt_opt(c.delta_previous, true)),
        ),
        Column::new("best F1 before".into(), c(|c| fmt_opt(c.best_f1, false))),
        Column::new(
            "BioASQ strict".into(),
            rows.iter().map(|r| r.bioasq_strict).collect::<Vec<_>>(),
        ),
        Column::new(
            "BioASQ lenient".into(),
            rows.iter().map(|r| r.bioasq_lenient).collect::<Vec<_>>(),
        ),
        Column::new(
            "BioASQ MRR".into(),
            rows.iter().map(|r| r.bioasq_mrr).collect::<Vec<_>>(),
        ),
        Column::new(
            "regression".into(),
            comparisons
                .iter()
                .map(|c| if c.regression { "yes" } else { "" }.to_owned())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "changed since previous".into(),
            comparisons
                .iter()
                .map(|c| c.changed.join(", "))
                .collect::<Vec<_>>(),
        ),
    ])?;
    let mut out = format!("# Nightly evaluation {run}\n\n{}", tables::markdown(&df, 2));
    if !failures.is_empty() {
        out.push_str("\n## Failures\n\n");
        for f in failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    Ok(out)
}

/// F1 over runs for one set: a line per model × language.
fn plot_set(history: &[Row], set: &str, path: &Path) -> Result<()> {
    let mut runs: Vec<&str> = history
        .iter()
        .filter(|r| r.set == set)
        .map(|r| r.run.as_str())
        .collect();
    runs.sort();
    runs.dedup();
    if runs.is_empty() {
        return Ok(());
    }
    let index: HashMap<&str, usize> = runs.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in history.iter().filter(|r| r.set == set) {
        lines
            .entry(format!("{} / {}", r.model, r.lang))
            .or_default()
            .push((index[r.run.as_str()] as f64, r.f1));
    }
    let series: Vec<plot::Series> = lines
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            plot::Series { name, points }
        })
        .collect();
    // Dates as tick labels; the time of day only where one day has several runs.
    let ticks: Vec<String> = runs
        .iter()
        .map(|r| {
            let day = &r[..r.len().min(10)];
            if runs.iter().filter(|o| o.starts_with(day)).count() > 1 {
                r[5..r.len().min(16)].replace('T', " ")
            } else {
                day.to_owned()
            }
        })
        .collect();
    plot::line_chart(
        path,
        &plot::Chart {
            title: &format!("F1 on {set}"),
            x_label: "nightly run (UTC)",
            y_label: "F1",
            x_ticks: &ticks,
            y_range: Some((0.0, 100.0)),
        },
        &series,
    )
}

/// The comparison with the previous run, for the terminal.
pub fn summary(outcome: &Outcome) -> String {
    let mut s = format!(
        "{:<20} {:<24} {:<5} {:>8} {:>8} {:>9} {:>9}  changed\n",
        "model", "set", "lang", "F1", "Δprev", "best", "status"
    );
    for c in &outcome.comparisons {
        s.push_str(&format!(
            "{:<20} {:<24} {:<5} {:>8.2} {:>8} {:>9} {:>9}  {}\n",
            c.model,
            c.set,
            c.lang,
            c.f1,
            fmt_opt(c.delta_previous, true).unwrap_or_else(|| "new".into()),
            fmt_opt(c.best_f1, false).unwrap_or_else(|| "–".into()),
            if c.regression { "REGRESSED" } else { "ok" },
            c.changed.join(", ")
        ));
    }
    for f in &outcome.failures {
        s.push_str(&format!("failed: {f}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_predictors_commit_says_dirty_and_stale_builds() {
        let dir = tempfile::tempdir().unwrap();
        let commit_of = |provenance: serde_json::Value| {
            fsutil::write_json(
                &dir.path().join("predict_settings.json"),
                &serde_json::json!({"provenance": provenance}),
            )
            .unwrap();
            PredictorRecord::read(dir.path()).unwrap().commit
        };
        assert_eq!(
            commit_of(serde_json::json!({"git_commit": "c1", "git_dirty": false})).as_deref(),
            Some("c1")
        );
        assert_eq!(
            commit_of(serde_json::json!({"git_commit": "c1", "git_dirty": true})).as_deref(),
            Some("c1-dirty")
        );
        assert_eq!(
            commit_of(serde_json::json!({"git_commit": "c1", "git_dirty": true,
                                         "checkout_changed_after_build": true}))
            .as_deref(),
            Some("c1-dirty-stale-build")
        );
        assert_eq!(commit_of(serde_json::json!({"git_commit": null})), None);
    }
}
