//! What prediction needs to repeat training's windows and post-processing. A model medqa fine-tuned
//! carries them in `medqa.json`; a model fine-tuned elsewhere (transformers' run_qa.py, a hub
//! checkpoint) has none, and gets run_qa.py's defaults, since nothing in a Hugging Face directory
//! records them. Either way the command line may set each one (`SettingsArgs`), as may the nightly
//! suite's model entries, which pass them to `qa-finetune predict` as flags.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::qa::postprocess::PostprocessConfig;

/// Settings stored beside a fine-tuned model, so that prediction repeats training's windows and
/// post-processing, with the tuned no-answer threshold.
pub const SETTINGS_FILE: &str = "medqa.json";

/// What prediction needs to repeat training's processing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QaSettings {
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub max_query_length: usize,
    pub postprocess: PostprocessConfig,
}

impl QaSettings {
    /// `DIR/medqa.json`, which must be there.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", file.display()))
    }

    /// run_qa.py's defaults: windows of 384 tokens overlapping by 128, the question never cut (run_qa.py
    /// has no max_query_length; a question as long as the window fails either way), 20 candidates,
    /// answers of at most 30 tokens, SQuAD v1 (every question gets an answer).
    pub fn run_qa_defaults() -> Self {
        Self {
            max_seq_length: 384,
            doc_stride: 128,
            max_query_length: 384,
            postprocess: PostprocessConfig::default(),
        }
    }

    /// Values that would fail later, deep in windowing or post-processing, fail here with their name.
    pub fn check(&self) -> Result<()> {
        let p = &self.postprocess;
        for (name, value) in [
            ("max_seq_length", self.max_seq_length),
            ("max_query_length", self.max_query_length),
            ("n_best_size", p.n_best_size),
            ("max_answer_length", p.max_answer_length),
        ] {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if self.doc_stride >= self.max_seq_length {
            bail!(
                "doc_stride {} must be smaller than max_seq_length {}",
                self.doc_stride,
                self.max_seq_length
            );
        }
        if !p.null_score_diff_threshold.is_finite() {
            bail!("null_score_diff_threshold must be a finite number");
        }
        Ok(())
    }
}

/// Where a model's settings came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsOrigin {
    /// The model directory's `medqa.json`.
    MedqaJson,
    /// None there: run_qa.py's defaults.
    RunQaDefaults,
}

/// Prediction settings from the command line, over the model's `medqa.json` or run_qa.py's defaults.
/// The flags are run_qa.py's (`--max-query-length` is medqa's); in TOML the same names with `_`.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsArgs {
    /// Window length in tokens [default: medqa.json's, else run_qa.py's 384].
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Tokens shared by consecutive windows of a long context [default: medqa.json's, else 128].
    #[arg(long)]
    pub doc_stride: Option<usize>,
    /// Questions are cut to this many tokens [default: medqa.json's, else not cut].
    #[arg(long)]
    pub max_query_length: Option<usize>,
    /// Start and end candidates per window [default: medqa.json's, else 20].
    #[arg(long)]
    pub n_best_size: Option<usize>,
    /// Longest answer in tokens [default: medqa.json's, else 30].
    #[arg(long)]
    pub max_answer_length: Option<usize>,
    /// SQuAD v2: a question may have no answer (`--version-2-with-negative` alone: true)
    /// [default: medqa.json's, else false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub version_2_with_negative: Option<bool>,
    /// SQuAD v2: "no answer" when its score beats the best answer's by more than this
    /// [default: medqa.json's tuned one, else 0].
    #[arg(long, allow_negative_numbers = true)]
    pub null_score_diff_threshold: Option<f64>,
}

impl SettingsArgs {
    /// The flags that give these settings to `qa-finetune predict` (`--name=value`, so that a negative
    /// threshold is not read as a flag).
    pub fn to_flags(&self) -> Vec<String> {
        let usize_flags = [
            ("max-seq-length", self.max_seq_length),
            ("doc-stride", self.doc_stride),
            ("max-query-length", self.max_query_length),
            ("n-best-size", self.n_best_size),
            ("max-answer-length", self.max_answer_length),
        ];
        let mut flags: Vec<String> = usize_flags
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("--{name}={v}")))
            .collect();
        flags.extend(
            self.version_2_with_negative
                .map(|v| format!("--version-2-with-negative={v}")),
        );
        flags.extend(
            self.null_score_diff_threshold
                .map(|v| format!("--null-score-diff-threshold={v}")),
        );
        flags
    }
}

/// The settings a prediction runs with, where they came from, and which the command line set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedSettings {
    pub settings: QaSettings,
    pub origin: SettingsOrigin,
    pub overridden: Vec<&'static str>,
}

impl ResolvedSettings {
    /// `DIR/medqa.json` (run_qa.py's defaults where there is none) with `args` over it.
    pub fn resolve(dir: &Path, args: &SettingsArgs) -> Result<Self> {
        let file = dir.join(SETTINGS_FILE);
        let (mut s, origin) = match std::fs::metadata(&file) {
            Ok(_) => (QaSettings::load(dir)?, SettingsOrigin::MedqaJson),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (QaSettings::run_qa_defaults(), SettingsOrigin::RunQaDefaults)
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        let mut overridden = Vec::new();
        let mut set = |name: &'static str, slot: &mut usize, value: Option<usize>| {
            if let Some(v) = value {
                *slot = v;
                overridden.push(name);
            }
        };
        set("max_seq_length", &mut s.max_seq_length, args.max_seq_length);
        set("doc_stride", &mut s.doc_stride, args.doc_stride);
        set(
            "max_query_length",
            &mut s.max_query_length,
            args.max_query_length,
        );
        let p = &mut s.postprocess;
        set("n_best_size", &mut p.n_best_size, args.n_best_size);
        set(
            "max_answer_length",
            &mut p.max_answer_length,
            args.max_answer_length,
        );
        if let Some(v) = args.version_2_with_negative {
            p.version_2_with_negative = v;
            overridden.push("version_2_with_negative");
        }
        if let Some(v) = args.null_score_diff_threshold {
            p.null_score_diff_threshold = v;
            overridden.push("null_score_diff_threshold");
        }
        // run_qa.py cuts no question: the cut follows the window it was given.
        if origin == SettingsOrigin::RunQaDefaults && args.max_query_length.is_none() {
            s.max_query_length = s.max_seq_length;
        }
        s.check().with_context(|| {
            format!(
                "the prediction settings for {} are not usable",
                dir.display()
            )
        })?;
        Ok(Self {
            settings: s,
            origin,
            overridden,
        })
    }

    /// A line for stderr when the settings are not the model's own, else `None`.
    pub fn note(&self, dir: &Path) -> Option<String> {
        if self.origin == SettingsOrigin::MedqaJson {
            return None;
        }
        let s = &self.settings;
        let p = &s.postprocess;
        let question = if s.max_query_length >= s.max_seq_length {
            "questions not cut".to_owned()
        } else {
            format!("questions cut to {} tokens", s.max_query_length)
        };
        let version = if p.version_2_with_negative {
            format!(
                "SQuAD v2 (no answer when its score beats the best by more than {})",
                p.null_score_diff_threshold
            )
        } else {
            "SQuAD v1 (every question answered; --version-2-with-negative for a model trained to \
             abstain)"
                .to_owned()
        };
        Some(format!(
            "{} has no {SETTINGS_FILE} (a model fine-tuned outside medqa): predicting with run_qa.py's \
             settings{}: windows of {} tokens with stride {}, {question}, {} candidates, answers of \
             at most {} tokens, {version}",
            dir.display(),
            if self.overridden.is_empty() {
                String::new()
            } else {
                format!(" and the command line's {}", self.overridden.join(", "))
            },
            s.max_seq_length,
            s.doc_stride,
            p.n_best_size,
            p.max_answer_length,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    #[test]
    fn to_flags_gives_back_the_same_settings_through_the_command_line() {
        let all = SettingsArgs {
            max_seq_length: Some(256),
            doc_stride: Some(64),
            max_query_length: Some(32),
            n_best_size: Some(10),
            max_answer_length: Some(40),
            version_2_with_negative: Some(false),
            null_score_diff_threshold: Some(-1.5),
        };
        for settings in [all, SettingsArgs::default()] {
            let flags = settings.to_flags();
            let parsed = Cli::try_parse_from(std::iter::once("predict".to_owned()).chain(flags))
                .unwrap()
                .settings;
            assert_eq!(parsed, settings);
        }
        let bare = Cli::try_parse_from(["predict", "--version-2-with-negative"]).unwrap();
        assert_eq!(bare.settings.version_2_with_negative, Some(true));
        let toml: SettingsArgs =
            toml::from_str("doc_stride = 64\nversion_2_with_negative = true").unwrap();
        assert_eq!(
            toml.to_flags(),
            ["--doc-stride=64", "--version-2-with-negative=true"]
        );
        assert!(toml::from_str::<SettingsArgs>("doc_strid = 64").is_err());
    }

    fn dir_with(medqa_json: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = medqa_json {
            std::fs::write(dir.path().join(SETTINGS_FILE), text).unwrap();
        }
        dir
    }

    const TRAINED: &str = r#"{"max_seq_length": 256, "doc_stride": 64, "max_query_length": 32,
        "postprocess": {"n_best_size": 10, "max_answer_length": 40, "version_2_with_negative": true,
        "null_score_diff_threshold": -1.5}}"#;

    #[test]
    fn a_model_without_medqa_json_gets_run_qa_defaults_and_a_note() {
        let dir = dir_with(None);
        let r = ResolvedSettings::resolve(dir.path(), &SettingsArgs::default()).unwrap();
        assert_eq!(r.origin, SettingsOrigin::RunQaDefaults);
        assert_eq!(r.settings, QaSettings::run_qa_defaults());
        assert!(r.overridden.is_empty());
        let note = r.note(dir.path()).unwrap();
        assert!(note.contains("has no medqa.json"), "{note}");
        assert!(note.contains("windows of 384 tokens with stride 128, questions not cut, 20 candidates, answers of at most 30 tokens, SQuAD v1"), "{note}");
    }

    #[test]
    fn the_command_line_sets_what_run_qa_py_was_given() {
        let dir = dir_with(None);
        let args = SettingsArgs {
            max_seq_length: Some(256),
            doc_stride: Some(64),
            version_2_with_negative: Some(true),
            ..Default::default()
        };
        let r = ResolvedSettings::resolve(dir.path(), &args).unwrap();
        assert_eq!(
            (
                r.settings.max_seq_length,
                r.settings.doc_stride,
                r.settings.max_query_length
            ),
            (256, 64, 256),
            "the question is still not cut: its limit follows the window"
        );
        assert!(r.settings.postprocess.version_2_with_negative);
        assert_eq!(
            r.overridden,
            ["max_seq_length", "doc_stride", "version_2_with_negative"]
        );
        let note = r.note(dir.path()).unwrap();
        assert!(
            note.contains(
                "and the command line's max_seq_length, doc_stride, version_2_with_negative"
            ),
            "{note}"
        );
        assert!(note.contains("SQuAD v2"), "{note}");
    }

    #[test]
    fn medqa_json_is_used_as_saved_unless_a_flag_sets_a_value() {
        let dir = dir_with(Some(TRAINED));
        let r = ResolvedSettings::resolve(dir.path(), &SettingsArgs::default()).unwrap();
        assert_eq!(r.origin, SettingsOrigin::MedqaJson);
        assert_eq!(r.settings, QaSettings::load(dir.path()).unwrap());
        assert_eq!(r.settings.max_query_length, 32);
        assert_eq!(r.note(dir.path()), None);
        let args = SettingsArgs {
            max_answer_length: Some(12),
            null_score_diff_threshold: Some(0.25),
            ..Default::default()
        };
        let r = ResolvedSettings::resolve(dir.path(), &args).unwrap();
        let p = r.settings.postprocess;
        assert_eq!(
            (p.max_answer_length, p.null_score_diff_threshold),
            (12, 0.25)
        );
        assert_eq!((p.n_best_size, r.settings.max_query_length), (10, 32));
    }

    #[test]
    fn a_broken_medqa_json_is_an_error_not_a_fallback() {
        let dir = dir_with(Some("{\"max_seq_length\": 256"));
        let e = ResolvedSettings::resolve(dir.path(), &SettingsArgs::default()).unwrap_err();
        assert!(
            format!("{e:#}").contains("medqa.json is not valid"),
            "{e:#}"
        );
    }

    #[test]
    fn unusable_values_are_named() {
        let dir = dir_with(None);
        for (args, want) in [
            (
                SettingsArgs {
                    doc_stride: Some(384),
                    ..Default::default()
                },
                "doc_stride 384 must be smaller than max_seq_length 384",
            ),
            (
                SettingsArgs {
                    max_query_length: Some(0),
                    ..Default::default()
                },
                "max_query_length must be at least 1",
            ),
            (
                SettingsArgs {
                    n_best_size: Some(0),
                    ..Default::default()
                },
                "n_best_size must be at least 1",
            ),
            (
                SettingsArgs {
                    null_score_diff_threshold: Some(f64::NAN),
                    ..Default::default()
                },
                "null_score_diff_threshold must be a finite number",
            ),
        ] {
            let e = ResolvedSettings::resolve(dir.path(), &args).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{e:#}");
        }
    }
}
