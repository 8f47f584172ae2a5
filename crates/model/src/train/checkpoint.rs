//! Training checkpoints: `checkpoints/step-000500/` holding the model (a Hugging Face directory),
//! `optimizer.safetensors` and `state.json`, written to a temporary directory, synced, and renamed into
//! place, so that a kill at any moment leaves only complete checkpoints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::optim::AdamW;
use super::task::Task;
use crate::snapshot::{DirSnapshot, SafetensorsSnapshot};

const STATE_FILE: &str = "state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Everything besides weights and moments that the loop needs to continue. Random state is not
/// here: it is derived from (seed, step), see `trainer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed (the data position follows from it).
    pub step: u64,
    pub seed: u64,
    pub best_metric: Option<f64>,
    pub best_step: Option<u64>,
    pub nonfinite_in_a_row: u64,
    pub skipped_nonfinite_steps: u64,
    /// Processes that trained (data-parallel world size); absent in checkpoints from before it was kept.
    #[serde(default)]
    pub world_size: Option<u64>,
    /// Micro-batches per optimizer step over all processes (world size × accumulation): a resume must
    /// keep it, since step `s` covers micro-batches `s·m … s·m + m - 1` of the data order.
    #[serde(default)]
    pub micro_batches_per_step: Option<u64>,
    /// The checkpoint whose evaluation was the best so far, with that evaluation's metrics: kept when
    /// older checkpoints are removed, and `final/` with `load_best_model_at_end`. (`best_step` may be
    /// an evaluation between checkpoints.)
    #[serde(default)]
    pub best_checkpoint: Option<BestCheckpoint>,
    /// Evaluations in a row without an improvement (early stopping's count).
    #[serde(default)]
    pub evals_without_improvement: u64,
    /// Early stopping ended the run: a resume trains no further.
    #[serde(default)]
    pub stopped_early: bool,
    /// `reduce_lr_on_plateau`: the rate and what it follows.
    #[serde(default)]
    pub plateau: Option<super::schedule::Plateau>,
    /// fp16: the loss scale at this step.
    #[serde(default)]
    pub loss_scale: Option<super::loss_scale::SavedLossScale>,
    /// fp16: steps skipped because the scaled gradients overflowed.
    #[serde(default)]
    pub skipped_overflow_steps: u64,
    /// What the data order followed: a resume must keep it. Absent in checkpoints from before it was
    /// kept.
    #[serde(default)]
    pub data_order: Option<DataOrderKey>,
    /// Input tokens trained on over all ranks so far (`include_num_input_tokens_seen`; 0 when off).
    #[serde(default)]
    pub num_input_tokens_seen: u64,
}

/// The settings the data order follows (`TrainConfig::data_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataOrderKey {
    pub per_device_train_batch_size: u64,
    /// `data_seed`, or `seed` where it is unset.
    pub data_seed: u64,
    pub dataloader_drop_last: bool,
    pub group_by_length: bool,
}

/// A checkpoint's step and the metrics of its evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestCheckpoint {
    pub step: u64,
    pub metrics: std::collections::BTreeMap<String, f64>,
}

impl TrainState {
    pub fn new(seed: u64) -> Self {
        Self {
            step: 0,
            seed,
            best_metric: None,
            best_step: None,
            nonfinite_in_a_row: 0,
            skipped_nonfinite_steps: 0,
            world_size: None,
            micro_batches_per_step: None,
            best_checkpoint: None,
            evals_without_improvement: 0,
            stopped_early: false,
            plateau: None,
            loss_scale: None,
            skipped_overflow_steps: 0,
            data_order: None,
            num_input_tokens_seen: 0,
        }
    }
}

pub fn dir_for(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step-{step:06}"))
}

/// The entries of a run's `checkpoints/` with their file names (none when it does not exist).
fn entries(run_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = run_dir.join("checkpoints");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        out.push((name, path));
    }
    Ok(out)
}

/// Completed checkpoints of a run, oldest first.
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for (name, path) in entries(run_dir)? {
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            if path.join(STATE_FILE).is_file() {
                found.push((step, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The newest complete checkpoint of a run.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list(run_dir)?.pop().map(|(_, p)| p))
}

/// Clears what an interrupted `save` left in `checkpoints/` (a kill, a full disk): half-written
/// `.tmp-step-*` directories are removed, and a `.old-step-N-*` whose replacement never arrived is put
/// back as `step-N`. Only for a run whose lock is held (no save is under way).
pub fn clear_unfinished(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join("checkpoints");
    let mut cleared = Vec::new();
    for (name, path) in entries(run_dir)? {
        if name.starts_with(".tmp-step-") {
            std::fs::remove_dir_all(&path).with_context(|| {
                format!("cannot remove unfinished checkpoint {}", path.display())
            })?;
            cleared.push(path);
        } else if let Some(rest) = name.strip_prefix(".old-step-") {
            let step = rest.split('-').next().unwrap_or_default();
            let current = dir.join(format!("step-{step}"));
            if current.join(STATE_FILE).is_file() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            } else {
                if current.exists() {
                    std::fs::remove_dir_all(&current)?;
                }
                std::fs::rename(&path, &current)
                    .with_context(|| format!("cannot restore {}", current.display()))?;
            }
            cleared.push(path);
        }
    }
    for path in &cleared {
        eprintln!("cleared unfinished checkpoint {}", path.display());
    }
    Ok(cleared)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// A checkpoint's contents copied to the host at one step, ready to be written by any thread.
pub struct Checkpoint {
    model: DirSnapshot,
    /// None with `save_only_model`: a checkpoint to evaluate or deploy, not to resume.
    optimizer: Option<SafetensorsSnapshot>,
    state: TrainState,
}

/// Copies the model, the optimizer's moments (when given) and the loop state as they are now.
pub fn capture<T: Task>(
    task: &T,
    optimizer: Option<&AdamW>,
    state: &TrainState,
) -> Result<Checkpoint> {
    let capture = || -> Result<Checkpoint> {
        Ok(Checkpoint {
            model: task.model_snapshot()?,
            optimizer: optimizer.map(AdamW::snapshot).transpose()?,
            state: state.clone(),
        })
    };
    capture().with_context(|| format!("cannot capture the checkpoint of step {}", state.step))
}

impl Checkpoint {
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// Writes `checkpoints/step-N/` of `run_dir` atomically (a synced temporary directory renamed
    /// into place), then deletes all but the newest `keep_last` checkpoints and the best one.
    pub fn write(&self, run_dir: &Path, keep_last: usize) -> Result<()> {
        let state = &self.state;
        let parent = run_dir.join("checkpoints");
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let final_dir = dir_for(run_dir, state.step);
        let tmp = parent.join(format!(
            ".tmp-step-{:06}-{}",
            state.step,
            std::process::id()
        ));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        let written = (|| -> Result<()> {
            std::fs::create_dir_all(&tmp)?;
            self.model.write_into(&tmp)?;
            if let Some(optimizer) = &self.optimizer {
                optimizer.write(&tmp.join(OPTIMIZER_FILE))?;
            }
            let text = serde_json::to_string_pretty(state)? + "\n";
            std::fs::write(tmp.join(STATE_FILE), text)?;
            sync_tree(&tmp).with_context(|| format!("cannot sync {}", tmp.display()))
        })();
        if let Err(e) = written {
            // A full disk must not stay full of half a checkpoint.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e)
                .with_context(|| format!("cannot write checkpoint {}", final_dir.display()));
        }
        if final_dir.exists() {
            let old = parent.join(format!(
                ".old-step-{:06}-{}",
                state.step,
                std::process::id()
            ));
            std::fs::rename(&final_dir, &old)?;
            std::fs::rename(&tmp, &final_dir)?;
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&tmp, &final_dir)
                .with_context(|| format!("cannot move checkpoint into {}", final_dir.display()))?;
        }
        sync_dir(&parent);
        prune(
            run_dir,
            keep_last,
            state.best_checkpoint.as_ref().map(|b| b.step),
        )
    }
}

/// Writes captured checkpoints on a background thread, one at a time, so that training goes on while
/// a checkpoint is serialized and synced (seconds for a base-size model with its AdamW moments). At
/// most one write is in flight: `start` first waits for the previous one (the trainer waits before it
/// captures the next, so one capture exists at a time), and a write's error is returned by the next
/// `start` or by `finish`, never lost.
#[derive(Default)]
pub struct BackgroundWriter {
    in_flight: Option<(u64, std::thread::JoinHandle<Result<()>>)>,
}

impl BackgroundWriter {
    /// Starts writing `checkpoint` into `run_dir` after the previous write has finished; returns the
    /// previous write's outcome.
    pub fn start(
        &mut self,
        checkpoint: Checkpoint,
        run_dir: &Path,
        keep_last: usize,
    ) -> Result<()> {
        self.finish()?;
        let run_dir = run_dir.to_path_buf();
        let step = checkpoint.step();
        let handle = std::thread::Builder::new()
            .name(format!("checkpoint-{step}"))
            .spawn(move || checkpoint.write(&run_dir, keep_last))
            .context("cannot start the checkpoint writer thread")?;
        self.in_flight = Some((step, handle));
        Ok(())
    }

    /// Waits for the write in flight, if any, and returns its outcome.
    pub fn finish(&mut self) -> Result<()> {
        match self.in_flight.take() {
            None => Ok(()),
            Some((step, handle)) => match handle.join() {
                Ok(result) => result,
                Err(_) => bail!("the writer of the checkpoint of step {step} panicked"),
            },
        }
    }
}

impl Drop for BackgroundWriter {
    /// A run that stops on an error still lets the checkpoint in flight complete (or clean up after
    /// itself) before the process exits; its own error is reported, not lost.
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            eprintln!("{e:#}");
        }
    }
}

/// Deletes all but the newest `keep_last` checkpoints and the best one.
fn prune(run_dir: &Path, keep_last: usize, best_step: Option<u64>) -> Result<()> {
    let all = list(run_dir)?;
    let cut = all.len().saturating_sub(keep_last.max(1));
    for (step, path) in &all[..cut] {
        if Some(*step) != best_step {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("cannot remove old checkpoint {}", path.display()))?;
        }
    }
    Ok(())
}

/// Restores model weights and optimizer moments from `dir`; returns the loop state.
pub fn load<T: Task>(dir: &Path, task: &mut T, optimizer: &mut AdamW) -> Result<TrainState> {
    let state_file = dir.join(STATE_FILE);
    if !state_file.is_file() {
        bail!(
            "{} is not a complete checkpoint (no {STATE_FILE})",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&state_file)?;
    let state: TrainState = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid state file", state_file.display()))?;
    if !dir.join(OPTIMIZER_FILE).is_file() {
        bail!(
            "{} holds no optimizer state (written with train.save_only_model): a run cannot go on \
             from it; its model can start another run",
            dir.display()
        );
    }
    task.load_model(dir)?;
    optimizer.load(&dir.join(OPTIMIZER_FILE))?;
    if optimizer.step_count() as u64 > state.step {
        bail!("{}: optimizer is ahead of the loop state", dir.display());
    }
    Ok(state)
}
