//! What `qa-finetune` adds to the common run (`run::train`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use model::train::TrainConfig;
use tch::Device;

use crate::config::QaConfig;
use crate::task::QaTask;

/// What `qa-finetune` adds to the common run (`run::train`).
impl run::Job for QaConfig {
    type Task = QaTask;
    const NAME: &'static str = "qa-finetune";
    const PIPELINE_TAG: &'static str = "question-answering";
    // A QA evaluation gives EM/F1, no loss (as run_qa.py's): the best checkpoint is the best F1.
    const DEFAULTS: &'static [(&'static str, &'static str)] = &[
        ("train.metric_for_best_model", "\"eval/f1\""),
        ("train.greater_is_better", "true"),
    ];

    fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    fn task(&self, device: Device) -> Result<QaTask> {
        QaTask::new(self, device)
    }

    fn inputs(&self, _task: &QaTask) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (self.data.train.iter().chain(&self.data.validation))
            .map(|f| f.path.clone())
            .collect();
        // The starting weights: one file, or a sharded checkpoint's index and shards (a directory that
        // has neither fails when the task loads it, with the reason).
        files.extend(
            model::weights::WeightFiles::of_dir(&self.init_from)
                .map(|w| w.hashed())
                .unwrap_or_default(),
        );
        files
    }

    fn describe(&self, task: &QaTask) -> String {
        format!(
            "{} parameters, {} training windows, {} validation questions",
            task.model.num_parameters(),
            task.train_features(),
            task.eval_examples().len()
        )
    }

    fn save_final(
        &self,
        task: &mut QaTask,
        outcome: &model::train::TrainOutcome,
        dir: &Path,
    ) -> Result<()> {
        // run_qa.py's eval_predictions.json (and n-best, null odds) beside eval_results.json: the final
        // model's answers to the validation questions. A best checkpoint loaded after the last evaluation
        // has none yet: one more pass, in the run's precision, as that evaluation ran.
        if task.last_predictions.is_none() && !task.eval_examples().is_empty() {
            let _autocast =
                model::autocast::AutocastGuard::for_precision(self.train.precision, task.device())?;
            let progress = model::train::log::progress_bar(0, 0, "windows");
            tch::no_grad(|| model::train::Task::evaluate(task, &progress))?;
            progress.finish_and_clear();
        }
        if let Some(preds) = &task.last_predictions {
            crate::write_predictions(&self.output_dir, "eval_", preds)?;
        }
        // SQuAD v2: the no-answer threshold that maximised validation F1 goes with the model.
        if task.settings.postprocess.version_2_with_negative {
            if let Some(t) = outcome.last_eval.get("eval/best_f1_thresh") {
                task.settings.postprocess.null_score_diff_threshold = *t;
            }
        }
        task.save_final(dir)
    }
}
