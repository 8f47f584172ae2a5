//! What `mlm-pretrain` adds to the common run (`run::train`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use model::train::TrainConfig;
use tch::Device;

use crate::config::MlmConfig;
use crate::task::MlmTask;

/// What `mlm-pretrain` adds to the common run (`run::train`).
impl run::Job for MlmConfig {
    type Task = MlmTask;
    const NAME: &'static str = "mlm-pretrain";
    const PIPELINE_TAG: &'static str = "fill-mask";

    fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    fn task(&self, device: Device) -> Result<MlmTask> {
        let inputs = self.open_inputs()?;
        let model = self.build_model(&inputs.tokenizer, device)?;
        MlmTask::new(self, model, inputs, device)
    }

    fn inputs(&self, _task: &MlmTask) -> Vec<PathBuf> {
        let mut files = vec![
            self.data.shards.join(model::shards::MANIFEST),
            self.tokenizer_path(),
        ];
        // The starting weights: one file, or a sharded checkpoint's index and shards.
        files.extend(
            self.model
                .init_from
                .as_ref()
                .and_then(|d| model::weights::WeightFiles::of_dir(d).ok())
                .map(|w| w.hashed())
                .unwrap_or_default(),
        );
        files
    }

    fn describe(&self, task: &MlmTask) -> String {
        let all = task.inputs.train.len();
        let used = match task.train_len {
            n if n < all => format!("the first {n} of {all}"),
            n => n.to_string(),
        };
        format!(
            "{} parameters, {used} train sequences, {} validation sequences",
            task.model.num_parameters(),
            task.inputs
                .eval
                .iter()
                .map(|e| e.sequences.len())
                .sum::<usize>(),
        )
    }

    fn save_final(
        &self,
        task: &mut MlmTask,
        _: &model::train::TrainOutcome,
        dir: &Path,
    ) -> Result<()> {
        model::train::Task::save_model(task, dir)
    }
}
