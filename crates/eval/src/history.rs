//! The nightly history: one row per run × model × data set × language, kept as a Parquet table, and
//! how each new result compares with the previous run and with the best so far.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use tables::polars::prelude::{Column, DataFrame};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The run's UTC time stamp, `YYYY-MM-DDTHH:MM:SSZ`; runs sort by it.
    pub run: String,
    pub model: String,
    pub model_sha256: String,
    pub set: String,
    pub set_sha256: String,
    /// A language code, or `all` for the whole set.
    pub lang: String,
    pub questions: u64,
    pub exact: f64,
    pub f1: f64,
    pub has_ans_f1: Option<f64>,
    pub no_ans_exact: Option<f64>,
    pub bioasq_strict: Option<f64>,
    pub bioasq_lenient: Option<f64>,
    pub bioasq_mrr: Option<f64>,
    /// The predictor's code (`qa-finetune predict`'s recorded git commit, `-dirty` when its checkout
    /// had changes); absent in histories written before it was kept, and where none was recorded.
    pub code_commit: Option<String>,
    /// What the predictor answered with beyond weights and code: its resolved window and
    /// post-processing settings and its precision (`predict_settings.json`'s `settings` and
    /// `precision`, as compact JSON); absent in histories written before it was kept, and where none
    /// was recorded.
    pub predict_settings: Option<String>,
}

impl Row {
    pub fn key(&self) -> (String, String, String) {
        (self.model.clone(), self.set.clone(), self.lang.clone())
    }
}

pub fn to_frame(rows: &[Row]) -> Result<DataFrame> {
    let s = |f: fn(&Row) -> &String| rows.iter().map(|r| f(r).clone()).collect::<Vec<_>>();
    let o = |f: fn(&Row) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    tables::frame(vec![
        Column::new("run".into(), s(|r| &r.run)),
        Column::new("model".into(), s(|r| &r.model)),
        Column::new("model_sha256".into(), s(|r| &r.model_sha256)),
        Column::new("set".into(), s(|r| &r.set)),
        Column::new("set_sha256".into(), s(|r| &r.set_sha256)),
        Column::new("lang".into(), s(|r| &r.lang)),
        Column::new(
            "questions".into(),
            rows.iter().map(|r| r.questions).collect::<Vec<_>>(),
        ),
        Column::new(
            "exact".into(),
            rows.iter().map(|r| r.exact).collect::<Vec<_>>(),
        ),
        Column::new("f1".into(), rows.iter().map(|r| r.f1).collect::<Vec<_>>()),
        Column::new("has_ans_f1".into(), o(|r| r.has_ans_f1)),
        Column::new("no_ans_exact".into(), o(|r| r.no_ans_exact)),
        Column::new("bioasq_strict".into(), o(|r| r.bioasq_strict)),
        Column::new("bioasq_lenient".into(), o(|r| r.bioasq_lenient)),
        Column::new("bioasq_mrr".into(), o(|r| r.bioasq_mrr)),
        Column::new(
            "code_commit".into(),
            rows.iter()
                .map(|r| r.code_commit.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "predict_settings".into(),
            rows.iter()
                .map(|r| r.predict_settings.clone())
                .collect::<Vec<_>>(),
        ),
    ])
}

fn text(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<String>> {
    let col = df
        .column(name)
        .with_context(|| format!("{}: no column '{name}'", path.display()))?;
    let ca = col
        .as_materialized_series()
        .str()
        .with_context(|| format!("{}: column '{name}' is not text", path.display()))?
        .clone();
    Ok(ca
        .iter()
        .map(|v| v.unwrap_or_default().to_owned())
        .collect())
}

/// A text column that histories written before it was kept lack: all `None` then.
fn optional_text(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let Ok(col) = df.column(name) else {
        return Ok(vec![None; df.height()]);
    };
    let ca = col
        .as_materialized_series()
        .str()
        .with_context(|| format!("{}: column '{name}' is not text", path.display()))?
        .clone();
    Ok(ca.iter().map(|v| v.map(str::to_owned)).collect())
}

fn floats(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<f64>>> {
    let col = df
        .column(name)
        .with_context(|| format!("{}: no column '{name}'", path.display()))?;
    let ca = col
        .as_materialized_series()
        .f64()
        .with_context(|| format!("{}: column '{name}' is not Float64", path.display()))?
        .clone();
    Ok(ca.iter().collect())
}

/// Reads the history; an absent file is an empty history.
pub fn read(path: &Path) -> Result<Vec<Row>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = tables::read(path)?;
    let questions: Vec<u64> = df
        .column("questions")
        .with_context(|| format!("{}: no column 'questions'", path.display()))?
        .as_materialized_series()
        .u64()
        .with_context(|| format!("{}: column 'questions' is not UInt64", path.display()))?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    let (run, model, model_sha, set, set_sha, lang) = (
        text(&df, "run", path)?,
        text(&df, "model", path)?,
        text(&df, "model_sha256", path)?,
        text(&df, "set", path)?,
        text(&df, "set_sha256", path)?,
        text(&df, "lang", path)?,
    );
    let (exact, f1, has_f1, no_em) = (
        floats(&df, "exact", path)?,
        floats(&df, "f1", path)?,
        floats(&df, "has_ans_f1", path)?,
        floats(&df, "no_ans_exact", path)?,
    );
    let (strict, lenient, mrr) = (
        floats(&df, "bioasq_strict", path)?,
        floats(&df, "bioasq_lenient", path)?,
        floats(&df, "bioasq_mrr", path)?,
    );
    let code = optional_text(&df, "code_commit", path)?;
    let settings = optional_text(&df, "predict_settings", path)?;
    Ok((0..df.height())
        .map(|i| Row {
            run: run[i].clone(),
            model: model[i].clone(),
            model_sha256: model_sha[i].clone(),
            set: set[i].clone(),
            set_sha256: set_sha[i].clone(),
            lang: lang[i].clone(),
            questions: questions[i],
            exact: exact[i].unwrap_or(0.0),
            f1: f1[i].unwrap_or(0.0),
            has_ans_f1: has_f1[i],
            no_ans_exact: no_em[i],
            bioasq_strict: strict[i],
            bioasq_lenient: lenient[i],
            bioasq_mrr: mrr[i],
            code_commit: code[i].clone(),
            predict_settings: settings[i].clone(),
        })
        .collect())
}

/// Writes the whole history atomically.
pub fn write(path: &Path, rows: &[Row]) -> Result<()> {
    let mut df = to_frame(rows)?;
    fsutil::write_atomic(path, |w| {
        tables::write(&mut df, tables::TableFormat::Parquet, w)
    })
}

/// One result next to the previous run's and the best before it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub model: String,
    pub set: String,
    pub lang: String,
    pub f1: f64,
    pub previous_f1: Option<f64>,
    pub best_f1: Option<f64>,
    /// F1 minus the previous run's.
    pub delta_previous: Option<f64>,
    pub delta_best: Option<f64>,
    /// The drop from the previous run is larger than the tolerance.
    pub regression: bool,
    /// What differs from the previous run: `model` (weights' SHA-256), `set` (the file's SHA-256),
    /// `code` (the predictor's commit), `settings` (its windows, post-processing or precision), the
    /// last two where both runs recorded them. A regression with none of them changed points at the
    /// machine or the libraries.
    pub changed: Vec<&'static str>,
}

/// Compares `current` with the runs in `past` (which must not include the current run).
pub fn compare(past: &[Row], current: &[Row], tolerance_f1: f64) -> Vec<Comparison> {
    // The latest earlier run and the best F1 for each model × set × language.
    let mut previous: BTreeMap<(String, String, String), &Row> = BTreeMap::new();
    let mut best: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for r in past {
        let k = r.key();
        if previous.get(&k).is_none_or(|p| p.run <= r.run) {
            previous.insert(k.clone(), r);
        }
        let b = best.entry(k).or_insert(f64::NEG_INFINITY);
        *b = b.max(r.f1);
    }
    current
        .iter()
        .map(|r| {
            let k = r.key();
            let previous_f1 = previous.get(&k).map(|p| p.f1);
            let best_f1 = best.get(&k).copied();
            let delta_previous = previous_f1.map(|p| r.f1 - p);
            let changed = previous
                .get(&k)
                .map(|p| {
                    let differ = |a: &Option<String>, b: &Option<String>| {
                        matches!((a, b), (Some(a), Some(b)) if a != b)
                    };
                    [
                        ("model", p.model_sha256 != r.model_sha256),
                        ("set", p.set_sha256 != r.set_sha256),
                        ("code", differ(&p.code_commit, &r.code_commit)),
                        (
                            "settings",
                            differ(&p.predict_settings, &r.predict_settings),
                        ),
                    ]
                    .into_iter()
                    .filter_map(|(what, differs)| differs.then_some(what))
                    .collect()
                })
                .unwrap_or_default();
            Comparison {
                model: r.model.clone(),
                set: r.set.clone(),
                lang: r.lang.clone(),
                f1: r.f1,
                previous_f1,
                best_f1,
                delta_previous,
                delta_best: best_f1.map(|b| r.f1 - b),
                regression: delta_previous.is_some_and(|d| -d > tolerance_f1),
                changed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, lang: &str, f1: f64) -> Row {
        Row {
            run: run.into(),
            model: "m".into(),
            model_sha256: "abc".into(),
            set: "dev".into(),
            set_sha256: "def".into(),
            lang: lang.into(),
            questions: 10,
            exact: f1 / 2.0,
            f1,
            has_ans_f1: None,
            no_ans_exact: None,
            bioasq_strict: (lang == "en").then_some(0.25),
            bioasq_lenient: None,
            bioasq_mrr: None,
            code_commit: Some("c1".into()),
            predict_settings: Some(r#"{"precision":"fp32"}"#.into()),
        }
    }

    #[test]
    fn history_round_trips_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.parquet");
        assert!(read(&path).unwrap().is_empty());
        let rows = vec![
            row("2026-11-01T03:00:00Z", "en", 50.0),
            row("2026-11-01T03:00:00Z", "ro", 40.0),
        ];
        write(&path, &rows).unwrap();
        assert_eq!(read(&path).unwrap(), rows);
    }

    #[test]
    fn deltas_against_previous_and_best_and_the_tolerance() {
        let past = vec![
            row("2026-11-01T03:00:00Z", "en", 50.0),
            row("2026-11-02T03:00:00Z", "en", 60.0),
            row("2026-11-03T03:00:00Z", "en", 55.0),
            row("2026-11-03T03:00:00Z", "ro", 40.0),
        ];
        let current = vec![
            row("2026-11-04T03:00:00Z", "en", 54.5),
            row("2026-11-04T03:00:00Z", "ro", 38.0),
            row("2026-11-04T03:00:00Z", "el", 10.0),
        ];
        let c = compare(&past, &current, 1.0);
        assert_eq!(c[0].previous_f1, Some(55.0));
        assert_eq!(c[0].best_f1, Some(60.0));
        assert!((c[0].delta_previous.unwrap() + 0.5).abs() < 1e-12);
        assert!(!c[0].regression, "a drop of 0.5 is within a tolerance of 1");
        assert!(c[1].regression, "a drop of 2 is not");
        assert_eq!(c[2].previous_f1, None);
        assert!(
            !c[2].regression,
            "a new language has nothing to regress from"
        );
        assert!(compare(&past, &current, 0.4)[0].regression);
        assert!(c[0].changed.is_empty(), "{:?}", c[0].changed);

        // What changed since the previous run: the weights, the set's file, the predictor's commit;
        // a commit only one of the two runs recorded says nothing.
        let mut now = row("2026-11-04T03:00:00Z", "en", 50.0);
        now.model_sha256 = "other".into();
        now.code_commit = Some("c2".into());
        assert_eq!(
            compare(&past, &[now.clone()], 1.0)[0].changed,
            ["model", "code"]
        );
        now.code_commit = None;
        now.set_sha256 = "changed".into();
        assert_eq!(
            compare(&past, &[now.clone()], 1.0)[0].changed,
            ["model", "set"]
        );
        // The same weights, set and code answering in another precision (or with other windows).
        let mut now = row("2026-11-04T03:00:00Z", "en", 50.0);
        now.predict_settings = Some(r#"{"precision":"bf16"}"#.into());
        assert_eq!(compare(&past, &[now.clone()], 1.0)[0].changed, ["settings"]);
        now.predict_settings = None;
        assert!(compare(&past, &[now], 1.0)[0].changed.is_empty());
    }

    #[test]
    fn a_history_from_before_the_code_commit_reads_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.parquet");
        let mut old = to_frame(&[row("2026-11-01T03:00:00Z", "en", 50.0)]).unwrap();
        old.drop_in_place("code_commit").unwrap();
        old.drop_in_place("predict_settings").unwrap();
        fsutil::write_atomic(&path, |w| {
            tables::write(&mut old, tables::TableFormat::Parquet, w)
        })
        .unwrap();
        let read = read(&path).unwrap();
        assert_eq!(
            (&read[0].code_commit, &read[0].predict_settings),
            (&None, &None)
        );
    }
}
