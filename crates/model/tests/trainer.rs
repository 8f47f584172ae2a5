//! The shared training loop on a tiny QA model: it learns, it checkpoints, and a run that crashes and
//! resumes logs bitwise the same losses as a run never interrupted.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Result};
use model::train::log::read_history;
use model::train::task::ProgressBar;
use model::train::{checkpoint, train, Task, TrainConfig};
use model::weights::{load_safetensors, SaveDtype};
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForQuestionAnswering};
use tch::{Device, Kind, Tensor};

/// torch's generator is process-wide and the loop seeds it: tests that train must not interleave.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct ToyQa {
    model: Pretrained<XlmRobertaForQuestionAnswering>,
    ids: Tensor,
    starts: Tensor,
    ends: Tensor,
    eval_rows: i64,
    batches_served: Cell<usize>,
    fail_at_batch: Option<usize>,
    /// Micro-batches (1-based) whose loss is NaN, as a broken batch or an fp16 overflow gives.
    nan_batches: Vec<usize>,
    /// Micro-batches (1-based) whose loss is multiplied by 1e34: finite, but its gradients overflow
    /// once fp16's loss scale multiplies it.
    huge_batches: Vec<usize>,
    /// The model's files include one that cannot be written (its directory is a file), as a full or
    /// failing disk would make a checkpoint's write fail after its capture succeeded.
    unwritable_model_files: bool,
    /// `eval/score` of each evaluation in turn (for early stopping and the best checkpoint).
    scores: Vec<f64>,
    evaluations: Cell<usize>,
    /// The training examples of every micro-batch served, in order.
    served: std::cell::RefCell<Vec<Vec<usize>>>,
    /// A stop is asked for (as a signal would) when this micro-batch (1-based) is served.
    stop_at_batch: Option<usize>,
}

impl ToyQa {
    fn new(init_seed: i64, fail_at_batch: Option<usize>) -> Self {
        let mut cfg = XlmRobertaConfig::new(50, 32, 2, 4, 64);
        cfg.max_position_embeddings = 20;
        tch::manual_seed(init_seed);
        let model = Pretrained::init(cfg, Device::Cpu).unwrap();
        // The data is the same whatever the init seed: a fixed generator for it.
        tch::manual_seed(1000);
        let ids = Tensor::randint_low(4, 50, [32, 12], (Kind::Int64, Device::Cpu));
        // Learnable: the answer starts at the first token with id < 20 and ends two tokens later.
        let starts = ids
            .narrow(1, 1, 8)
            .lt(20)
            .to_kind(Kind::Int64)
            .argmax(1, false)
            + 1;
        let ends = &starts + 2;
        Self {
            model,
            ids,
            starts,
            ends,
            eval_rows: 8,
            batches_served: Cell::new(0),
            fail_at_batch,
            nan_batches: vec![],
            huge_batches: vec![],
            unwritable_model_files: false,
            scores: vec![],
            evaluations: Cell::new(0),
            served: Default::default(),
            stop_at_batch: None,
        }
    }

    fn loss_of(&self, ids: &Tensor, starts: &Tensor, ends: &Tensor, train: bool) -> Tensor {
        let mask = ids.ones_like();
        let (s, e) = self.model.model.forward_t(ids, &mask, None, train);
        let ls = s.cross_entropy_for_logits(starts);
        let le = e.cross_entropy_for_logits(ends);
        (ls + le) / 2.0
    }
}

impl Task for ToyQa {
    type Batch = (Tensor, Tensor, Tensor);

    fn train_len(&self) -> usize {
        (self.ids.size()[0] - self.eval_rows) as usize
    }

    fn batch(&self, indices: &[usize]) -> Result<Self::Batch> {
        let served = self.batches_served.get() + 1;
        self.batches_served.set(served);
        if Some(served) == self.fail_at_batch {
            bail!("simulated crash at micro-batch {served}");
        }
        self.served.borrow_mut().push(indices.to_vec());
        if Some(served) == self.stop_at_batch {
            model::train::stop::request();
        }
        let idx = Tensor::from_slice(
            &indices
                .iter()
                .map(|&i| i as i64 + self.eval_rows)
                .collect::<Vec<_>>(),
        );
        Ok((
            self.ids.index_select(0, &idx),
            self.starts.index_select(0, &idx),
            self.ends.index_select(0, &idx),
        ))
    }

    fn tokens(&self, batch: &Self::Batch) -> usize {
        batch.0.numel()
    }

    fn loss(&self, (ids, s, e): &Self::Batch, train: bool) -> Tensor {
        let loss = self.loss_of(ids, s, e, train);
        if self.nan_batches.contains(&self.batches_served.get()) {
            return loss * f64::NAN;
        }
        if self.huge_batches.contains(&self.batches_served.get()) {
            return loss.to_kind(Kind::Float) * 1e34;
        }
        loss
    }

    fn evaluate(&mut self, _progress: &ProgressBar) -> Result<BTreeMap<String, f64>> {
        let n = self.eval_rows;
        let loss = self.loss_of(
            &self.ids.narrow(0, 0, n),
            &self.starts.narrow(0, 0, n),
            &self.ends.narrow(0, 0, n),
            false,
        );
        let mut metrics = BTreeMap::from([("eval/loss".to_owned(), loss.double_value(&[]))]);
        let i = self.evaluations.get();
        self.evaluations.set(i + 1);
        if let Some(&score) = self.scores.get(i) {
            metrics.insert("eval/score".to_owned(), score);
        }
        Ok(metrics)
    }

    fn variables(&self) -> HashMap<String, Tensor> {
        self.model.vs.variables()
    }

    fn model_snapshot(&self) -> Result<model::snapshot::DirSnapshot> {
        let mut files = self.model.snapshot(SaveDtype::F32, None)?;
        if self.unwritable_model_files {
            files.add_bytes("config.json/extra", b"{}".to_vec());
        }
        Ok(files)
    }

    fn load_model(&mut self, dir: &Path) -> Result<()> {
        let report = load_safetensors(&mut self.model.vs, &dir.join("model.safetensors"))?;
        assert!(report.is_exact(), "{report}");
        Ok(())
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        seed: 5,
        learning_rate: 3e-3,
        max_steps: Some(12),
        per_device_train_batch_size: 4,
        gradient_accumulation_steps: 2,
        warmup_steps: Some(2.0),
        weight_decay: 0.01,
        logging_steps: 3.0,
        eval_steps: 4.0,
        save_steps: 4.0,
        save_total_limit: 1,
        ..Default::default()
    }
}

fn losses(run: &Path) -> Vec<(u64, u64)> {
    read_history(&run.join("train_log.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| r.values.get("train/loss").map(|l| (r.step, l.to_bits())))
        .collect()
}

#[test]
fn crashed_and_resumed_run_logs_bitwise_the_same_losses() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let straight = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    let before = task.evaluate(&ProgressBar::hidden()).unwrap()["eval/loss"];
    let outcome = train(&mut task, &config(), Device::Cpu, straight.path(), None).unwrap();
    assert_eq!(outcome.steps, 12);
    let after = outcome.last_eval["eval/loss"];
    assert!(
        after < before * 0.9,
        "the loop should learn: eval loss {before} -> {after}"
    );

    // 12 steps × 2 micro-batches; crash inside step 11, after checkpoints at 4 and 8.
    let crashed = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, Some(21));
    let err = train(&mut task, &config(), Device::Cpu, crashed.path(), None).unwrap_err();
    assert!(err.to_string().contains("simulated crash"));
    let latest = checkpoint::latest(crashed.path())
        .unwrap()
        .expect("a checkpoint was written");
    assert!(latest.ends_with("step-000008"), "{}", latest.display());

    // A fresh process would start from other random weights: the checkpoint must replace them.
    let mut task = ToyQa::new(99, None);
    train(
        &mut task,
        &config(),
        Device::Cpu,
        crashed.path(),
        Some(&latest),
    )
    .unwrap();
    let (a, b) = (losses(straight.path()), losses(crashed.path()));
    assert_eq!(a.len(), 12);
    assert_eq!(
        a, b,
        "losses after resume differ from the uninterrupted run"
    );

    // keep_last 1 plus the best; no temporary directories left behind.
    let kept: Vec<u64> = checkpoint::list(straight.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(kept.contains(&12) && kept.len() <= 2, "{kept:?}");
    let leftovers = std::fs::read_dir(straight.path().join("checkpoints"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0);
    assert!(
        straight
            .path()
            .join("tb")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "TensorBoard events written"
    );
}

/// Every file under `dir` (relative path → bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn background_checkpoints_hold_the_bytes_of_foreground_ones() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let mut runs = Vec::new();
    for async_checkpoints in [false, true] {
        let run = tempfile::tempdir().unwrap();
        let mut task = ToyQa::new(1, None);
        let cfg = TrainConfig {
            async_checkpoints,
            save_total_limit: 3,
            ..config()
        };
        train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
        runs.push(run);
    }
    let (foreground, background) = (
        tree(&runs[0].path().join("checkpoints")),
        tree(&runs[1].path().join("checkpoints")),
    );
    // Steps 4, 8 and 12, each with its model, optimizer and state: written while the next steps
    // trained, they still hold their own step's weights.
    assert_eq!(
        foreground
            .keys()
            .filter(|k| k.ends_with("model.safetensors"))
            .count(),
        3,
        "{:?}",
        foreground.keys()
    );
    assert_eq!(
        foreground.keys().collect::<Vec<_>>(),
        background.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &foreground {
        assert!(background[name] == *bytes, "{name} differs");
    }
    assert_eq!(losses(runs[0].path()), losses(runs[1].path()));
}

#[test]
fn a_failed_background_write_stops_the_run_with_its_reason() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    for async_checkpoints in [false, true] {
        let run = tempfile::tempdir().unwrap();
        let mut task = ToyQa::new(1, None);
        task.unwritable_model_files = true;
        let cfg = TrainConfig {
            async_checkpoints,
            ..config()
        };
        let err = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("cannot write checkpoint") && message.contains("step-000004"),
            "{message}"
        );
        // In the foreground the run stops at step 4; in the background the next checkpoint (step 8)
        // reports it. Either way nothing half-written is left behind.
        let logged: Vec<u64> = losses(run.path()).iter().map(|(s, _)| *s).collect();
        let last = if async_checkpoints { 8 } else { 4 };
        assert_eq!(logged, (1..=last).collect::<Vec<u64>>());
        assert!(checkpoint::latest(run.path()).unwrap().is_none());
        let leftovers = std::fs::read_dir(run.path().join("checkpoints"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0);
    }
}

#[test]
fn resuming_with_another_seed_is_refused() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    let cfg = TrainConfig {
        max_steps: Some(4),
        ..config()
    };
    train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    let latest = checkpoint::latest(run.path()).unwrap().unwrap();
    let err = train(
        &mut task,
        &TrainConfig { seed: 6, ..cfg },
        Device::Cpu,
        run.path(),
        Some(&latest),
    )
    .unwrap_err();
    assert!(err.to_string().contains("seed"), "{err:#}");
}

#[test]
fn bf16_autocast_trains_with_fp32_weights() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    let before = task.evaluate(&ProgressBar::hidden()).unwrap()["eval/loss"];
    let cfg = TrainConfig {
        precision: model::autocast::Precision::Bf16,
        save_steps: 0.0,
        ..config()
    };
    let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    assert_eq!(outcome.skipped_nonfinite_steps, 0);
    // Evaluations (steps 4, 8, 12) and the final checkpoint are timed apart from the steps.
    assert!(outcome.eval_seconds > 0.0 && outcome.checkpoint_seconds > 0.0);
    let after = outcome.last_eval["eval/loss"];
    assert!(
        after < before * 0.9,
        "bf16 training should learn too: {before} -> {after}"
    );
    assert!(
        task.model
            .vs
            .variables()
            .values()
            .all(|v| v.kind() == Kind::Float),
        "master weights stay fp32"
    );
    assert!(
        !model::autocast::state(Device::Cpu).0,
        "autocast is off again after training"
    );
}

#[test]
fn non_finite_steps_are_skipped_and_a_run_of_them_stops_training() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    task.nan_batches = vec![3, 8];
    let cfg = TrainConfig {
        save_steps: 0.0,
        ..config()
    };
    let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    assert_eq!((outcome.steps, outcome.skipped_nonfinite_steps), (12, 2));
    let history = read_history(&run.path().join("train_log.jsonl")).unwrap();
    let skipped: Vec<u64> = history
        .iter()
        .filter(|r| r.values.contains_key("skipped_nonfinite"))
        .map(|r| r.step)
        .collect();
    // Two micro-batches a step, every one served: the 3rd and 8th batches belong to steps 2 and 4.
    assert_eq!(skipped, vec![2, 4]);
    assert!(task
        .model
        .vs
        .variables()
        .values()
        .all(|v| v.isfinite().all().int64_value(&[]) == 1));

    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    task.nan_batches = (1..100).collect();
    let cfg = TrainConfig {
        max_nonfinite_steps_in_a_row: 3,
        ..cfg
    };
    let err = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap_err();
    assert!(err.to_string().contains("3 steps in a row"), "{err:#}");
}

#[test]
fn frozen_parameters_stay_as_they_are_and_a_frozen_run_resumes_exactly() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = TrainConfig {
        freeze: vec![
            "*word_embeddings*".into(),
            "*layer.0.attention.self.*".into(),
        ],
        ..config()
    };
    let straight = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    let before: HashMap<String, Tensor> = task
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect();
    train(&mut task, &cfg, Device::Cpu, straight.path(), None).unwrap();
    let after = task.variables();
    let mut frozen = 0;
    for (name, was) in &before {
        let same = was.equal(&after[name]);
        let expect_frozen =
            name.contains("word_embeddings") || name.contains("layer.0.attention.self.");
        assert_eq!(same, expect_frozen, "{name}");
        frozen += usize::from(same);
    }
    assert_eq!(
        frozen, 7,
        "word embeddings and layer 0's query, key and value"
    );

    // Crash after the step-8 checkpoint and resume: the same losses as the straight run.
    let crashed = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, Some(21));
    train(&mut task, &cfg, Device::Cpu, crashed.path(), None).unwrap_err();
    let latest = checkpoint::latest(crashed.path()).unwrap().unwrap();
    let mut task = ToyQa::new(99, None);
    train(&mut task, &cfg, Device::Cpu, crashed.path(), Some(&latest)).unwrap();
    assert_eq!(losses(straight.path()), losses(crashed.path()));

    // A pattern that matches nothing is an error, not a silent full fine-tuning.
    let typo = TrainConfig {
        freeze: vec!["*word_embedings*".into()],
        ..config()
    };
    let err = train(
        &mut ToyQa::new(1, None),
        &typo,
        Device::Cpu,
        tempfile::tempdir().unwrap().path(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("matches no parameter"), "{err}");
}

/// The weights of the task's model, by name, as bytes.
fn weights(task: &ToyQa) -> BTreeMap<String, Vec<u8>> {
    task.model
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| {
            let t = t.contiguous();
            let mut bytes = vec![0u8; t.numel() * 4];
            t.copy_data_u8(&mut bytes, t.numel());
            (name, bytes)
        })
        .collect()
}

fn early_stopping(patience: u64, threshold: f64) -> TrainConfig {
    TrainConfig {
        max_steps: Some(24),
        eval_steps: 2.0,
        save_steps: 2.0,
        save_total_limit: 1,
        metric_for_best_model: "eval/score".to_owned(),
        greater_is_better: true,
        load_best_model_at_end: true,
        early_stopping_patience: patience,
        early_stopping_threshold: threshold,
        ..config()
    }
}

#[test]
fn early_stopping_stops_after_its_patience_and_the_final_model_is_the_best_checkpoint() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    // Evaluations at steps 2, 4, …: best at 4, again at 8; then 10 and 12 do not beat 0.6.
    task.scores = vec![0.1, 0.5, 0.4, 0.6, 0.55, 0.58, 0.9, 0.9];
    let outcome = train(
        &mut task,
        &early_stopping(2, 0.0),
        Device::Cpu,
        run.path(),
        None,
    )
    .unwrap();
    assert_eq!(outcome.steps, 12);
    assert!(outcome.stopped_early);
    assert_eq!(outcome.final_from_best, Some(8));
    assert_eq!(outcome.last_eval["eval/score"], 0.6);
    assert_eq!(
        outcome.best_checkpoint,
        Some(checkpoint::dir_for(run.path(), 8))
    );
    // The last checkpoint and the best are kept.
    let kept: Vec<u64> = checkpoint::list(run.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![8, 12]);
    // The task holds the best checkpoint's weights, not the last step's.
    let mut best = ToyQa::new(7, None);
    best.load_model(&checkpoint::dir_for(run.path(), 8))
        .unwrap();
    let mut last = ToyQa::new(7, None);
    last.load_model(&checkpoint::dir_for(run.path(), 12))
        .unwrap();
    assert_eq!(weights(&task), weights(&best));
    assert_ne!(weights(&task), weights(&last));
    let logged = read_history(&run.path().join("train_log.jsonl")).unwrap();
    assert_eq!(logged.iter().map(|r| r.step).max(), Some(12));

    // Resumed, a stopped run trains no further and ends on the same best checkpoint.
    let latest = checkpoint::latest(run.path()).unwrap().unwrap();
    let mut task = ToyQa::new(99, None);
    let again = train(
        &mut task,
        &early_stopping(2, 0.0),
        Device::Cpu,
        run.path(),
        Some(&latest),
    )
    .unwrap();
    assert_eq!((again.steps, again.stopped_early), (12, true));
    assert_eq!(again.final_from_best, Some(8));
    assert_eq!(weights(&task), weights(&best));
    let relogged = read_history(&run.path().join("train_log.jsonl")).unwrap();
    assert_eq!(relogged.len(), logged.len());
}

#[test]
fn an_improvement_within_the_threshold_counts_towards_early_stopping() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    // 0.6 and 0.65 are each a new best, but by no more than 0.15: the second is the patience's end.
    task.scores = vec![0.1, 0.5, 0.6, 0.65, 0.9];
    let outcome = train(
        &mut task,
        &early_stopping(2, 0.15),
        Device::Cpu,
        run.path(),
        None,
    )
    .unwrap();
    assert_eq!((outcome.steps, outcome.stopped_early), (8, true));
    assert_eq!(outcome.final_from_best, Some(8));
    assert_eq!(outcome.last_eval["eval/score"], 0.65);

    // Without early stopping the run goes to its end; load_best_model_at_end still picks the best.
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    task.scores = vec![0.1, 0.9, 0.2, 0.3, 0.4, 0.5];
    let cfg = TrainConfig {
        max_steps: Some(12),
        ..early_stopping(0, 0.0)
    };
    let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    assert_eq!((outcome.steps, outcome.stopped_early), (12, false));
    assert_eq!(outcome.final_from_best, Some(4));
    assert_eq!(outcome.last_eval["eval/score"], 0.9);
}

#[test]
fn load_best_and_early_stopping_settings_are_checked() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let refused = |cfg: TrainConfig, says: &str| {
        let run = tempfile::tempdir().unwrap();
        let mut task = ToyQa::new(1, None);
        let err = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap_err();
        assert!(format!("{err:#}").contains(says), "{err:#}");
    };
    refused(
        TrainConfig {
            save_steps: 3.0,
            ..early_stopping(2, 0.0)
        },
        "save_steps a multiple of eval_steps",
    );
    refused(
        TrainConfig {
            load_best_model_at_end: false,
            ..early_stopping(2, 0.0)
        },
        "early_stopping_patience needs load_best_model_at_end",
    );
    refused(
        TrainConfig {
            early_stopping_threshold: -0.1,
            ..early_stopping(2, 0.0)
        },
        "early_stopping_threshold",
    );
    // The toy task reports no eval/score without a script: the first evaluation names what it has.
    refused(
        early_stopping(2, 0.0),
        "\"eval/score\" is not among the evaluation's metrics (eval/loss)",
    );
    refused(
        TrainConfig {
            load_best_model_at_end: false,
            early_stopping_patience: 0,
            save_strategy: model::train::SaveStrategy::Best,
            ..early_stopping(2, 0.0)
        },
        "save_strategy = \"best\" need it",
    );
}

/// The loop trains at the schedule's rate at every step, whatever the schedule: `lr` in the log is
/// `Schedule::learning_rate_at` (checked against transformers in tests/schedules.rs) of the steps done.
#[test]
fn every_step_runs_at_its_schedules_learning_rate() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    for keys in [
        "lr_scheduler_type = \"polynomial\"\nlr_scheduler_kwargs = { power = 2.0, lr_end = 1e-4 }",
        "lr_scheduler_type = \"warmup_stable_decay\"\nlr_scheduler_kwargs = { num_decay_steps = 5, decay_type = \"1-sqrt\" }",
        "lr_scheduler_type = \"constant\"",
    ] {
        let chosen: TrainConfig = toml::from_str(keys).unwrap();
        let cfg = TrainConfig {
            lr_scheduler_type: chosen.lr_scheduler_type,
            lr_scheduler_kwargs: chosen.lr_scheduler_kwargs,
            logging_steps: 1.0,
            ..config()
        };
        let run = tempfile::tempdir().unwrap();
        train(&mut ToyQa::new(1, None), &cfg, Device::Cpu, run.path(), None).unwrap();
        let schedule = cfg.schedule(12).unwrap();
        let logged: Vec<(u64, f64)> = read_history(&run.path().join("train_log.jsonl"))
            .unwrap()
            .iter()
            .filter_map(|r| r.values.get("lr").map(|lr| (r.step, *lr)))
            .collect();
        assert_eq!(logged.len(), 12, "{keys}: {logged:?}");
        for (step, lr) in logged {
            assert_eq!(lr, schedule.learning_rate_at(step - 1), "{keys}: step {step}");
        }
        // The rates differ from the default linear schedule's: the setting reached the loop.
        assert_ne!(
            schedule.learning_rate_at(6),
            config().schedule(12).unwrap().learning_rate_at(6),
            "{keys}"
        );
    }
}

/// `reduce_lr_on_plateau` lowers the rate after `patience` evaluations without improvement, from the
/// next step on; its state is in the checkpoint, so a crashed run resumes at the lowered rate.
#[test]
fn reduce_lr_on_plateau_lowers_the_rate_and_resumes_with_it() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let settings: TrainConfig = toml::from_str(
        "lr_scheduler_type = \"reduce_lr_on_plateau\"\nlr_scheduler_kwargs = { patience = 1, factor = 0.5 }",
    )
    .unwrap();
    let cfg = TrainConfig {
        lr_scheduler_type: settings.lr_scheduler_type,
        lr_scheduler_kwargs: settings.lr_scheduler_kwargs,
        logging_steps: 1.0,
        eval_steps: 2.0,
        save_steps: 2.0,
        metric_for_best_model: "eval/score".to_owned(),
        greater_is_better: true,
        ..config()
    };
    // Evaluations at steps 2, 4, …, 12: 1 (best), 1 (one without improvement), 1 (two: halve), 2 (best)…
    let scores = vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
    let rates = |run: &Path| -> Vec<(u64, f64)> {
        read_history(&run.join("train_log.jsonl"))
            .unwrap()
            .iter()
            .filter_map(|r| r.values.get("lr").map(|lr| (r.step, *lr)))
            .collect()
    };
    let straight = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    task.scores = scores.clone();
    train(&mut task, &cfg, Device::Cpu, straight.path(), None).unwrap();
    // No warm-up (as transformers), whatever warmup_steps says; halved from step 7 on.
    let expected: Vec<(u64, f64)> = (1..=12)
        .map(|s| (s, if s <= 6 { 3e-3 } else { 1.5e-3 }))
        .collect();
    assert_eq!(rates(straight.path()), expected);

    // Crash inside step 10 (micro-batches 19 and 20), after the checkpoint of step 8.
    let crashed = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, Some(19));
    task.scores = scores.clone();
    assert!(train(&mut task, &cfg, Device::Cpu, crashed.path(), None).is_err());
    let latest = checkpoint::latest(crashed.path()).unwrap().unwrap();
    assert!(latest.ends_with("step-000008"), "{}", latest.display());
    let mut task = ToyQa::new(99, None);
    task.scores = scores[4..].to_vec();
    train(&mut task, &cfg, Device::Cpu, crashed.path(), Some(&latest)).unwrap();
    assert_eq!(rates(crashed.path()), expected);
    assert_eq!(losses(straight.path()), losses(crashed.path()));

    // Resumed with another schedule, the run follows that schedule, not the saved plateau's rate.
    let switched = tempfile::tempdir().unwrap();
    let first = TrainConfig {
        max_steps: Some(4),
        ..cfg.clone()
    };
    let mut task = ToyQa::new(1, None);
    task.scores = scores.clone();
    train(&mut task, &first, Device::Cpu, switched.path(), None).unwrap();
    let linear = TrainConfig {
        max_steps: Some(8),
        logging_steps: 1.0,
        ..config()
    };
    let at_4 = checkpoint::latest(switched.path()).unwrap().unwrap();
    train(
        &mut ToyQa::new(1, None),
        &linear,
        Device::Cpu,
        switched.path(),
        Some(&at_4),
    )
    .unwrap();
    let schedule = linear.schedule(8).unwrap();
    let resumed: Vec<(u64, f64)> = rates(switched.path()).into_iter().skip(4).collect();
    let want: Vec<(u64, f64)> = (5..=8)
        .map(|s| (s, schedule.learning_rate_at(s - 1)))
        .collect();
    assert_eq!(resumed, want);
}

/// fp16 (autocast to fp16, as on GPUs without bf16) with GradScaler's dynamic loss scale: a step whose
/// scaled gradients overflow is skipped and halves the scale, without counting against
/// `max_nonfinite_steps_in_a_row`; the scale is in the checkpoint, so a crashed run resumes exactly.
#[test]
fn fp16_scales_the_loss_skips_overflows_and_resumes_exactly() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = TrainConfig {
        precision: model::autocast::Precision::Fp16,
        max_nonfinite_steps_in_a_row: 1,
        logging_steps: 1.0,
        ..config()
    };
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    // Steps 1 and 2 (micro-batches 1-4, two a step) overflow.
    task.huge_batches = vec![1, 3];
    let before = task.evaluate(&ProgressBar::hidden()).unwrap()["eval/loss"];
    let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    assert_eq!(outcome.steps, 12);
    let after = outcome.last_eval["eval/loss"];
    assert!(
        after < before * 0.9,
        "fp16 should learn: {before} -> {after}"
    );
    let history = read_history(&run.path().join("train_log.jsonl")).unwrap();
    let skipped: Vec<u64> = history
        .iter()
        .filter(|r| r.values.contains_key("skipped_overflow"))
        .map(|r| r.step)
        .collect();
    assert_eq!(skipped, vec![1, 2]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.path().join("checkpoints/step-000012/state.json")).unwrap(),
    )
    .unwrap();
    // 65,536 halved twice; ten good steps since.
    assert_eq!(state["loss_scale"]["scale"], 16384.0);
    assert_eq!(state["loss_scale"]["good_steps"], 10);
    assert_eq!(state["skipped_overflow_steps"], 2);

    let crashed = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, Some(21));
    task.huge_batches = vec![1, 3];
    assert!(train(&mut task, &cfg, Device::Cpu, crashed.path(), None).is_err());
    let latest = checkpoint::latest(crashed.path()).unwrap().unwrap();
    let mut task = ToyQa::new(99, None);
    train(&mut task, &cfg, Device::Cpu, crashed.path(), Some(&latest)).unwrap();
    assert_eq!(losses(run.path()), losses(crashed.path()));
}

/// Times a TensorBoard tag was written in a run's event files (each scalar record names its tag).
fn tensorboard_writes(run: &Path, tag: &str) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(run.join("tb")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        count += bytes
            .windows(tag.len())
            .filter(|w| *w == tag.as_bytes())
            .count();
    }
    count
}

/// The strategies in the loop itself (tests/cadence.rs checks the steps they give against the Trainer):
/// 24 training rows in batches of 4 and 2 micro-batches a step make 3 steps an epoch, 9 in 3 epochs.
#[test]
fn logs_evaluations_and_checkpoints_follow_their_strategies() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    let cfg: TrainConfig = toml::from_str(
        "seed = 5\nlearning_rate = 3e-3\nnum_train_epochs = 3\nper_device_train_batch_size = 4\n\
         gradient_accumulation_steps = 2\nlogging_strategy = \"no\"\nlogging_first_step = true\n\
         eval_strategy = \"epoch\"\neval_on_start = true\nsave_steps = 0.45\nsave_total_limit = 10\n\
         async_checkpoints = false",
    )
    .unwrap();
    let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    assert_eq!(outcome.steps, 9);
    let history = read_history(&run.path().join("train_log.jsonl")).unwrap();
    let evals: Vec<(u64, f64)> = history
        .iter()
        .filter(|r| r.values.contains_key("eval/loss"))
        .map(|r| (r.step, r.values["epoch"]))
        .collect();
    assert_eq!(evals, vec![(0, 0.0), (3, 1.0), (6, 2.0), (9, 3.0)]);
    let steps: Vec<(u64, f64)> = history
        .iter()
        .filter(|r| r.values.contains_key("train/loss"))
        .map(|r| (r.step, r.values["epoch"]))
        .collect();
    assert_eq!(steps.len(), 9);
    for (step, epoch) in steps {
        assert_eq!(epoch, step as f64 / 3.0, "step {step}");
    }
    // save_steps = 0.45 of 9 steps: every 5 (rounded up), and the end.
    let saved: Vec<u64> = (1..=9)
        .filter(|&s| checkpoint::dir_for(run.path(), s).exists())
        .collect();
    assert_eq!(saved, vec![5, 9]);
    // Logged (window averages to TensorBoard) at the first step and the end only.
    assert_eq!(tensorboard_writes(run.path(), "train/loss"), 2);
    assert_eq!(tensorboard_writes(run.path(), "epoch"), 2);
    // Evaluated at the start and at each epoch's end.
    assert_eq!(tensorboard_writes(run.path(), "eval/loss"), 4);
}

/// `save_strategy = "best"`: a checkpoint after each evaluation that beat every one before it, and
/// at the end; `load_best_model_at_end` takes the best of them.
#[test]
fn save_strategy_best_checkpoints_each_new_best() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    task.scores = vec![0.1, 0.9, 0.2, 0.95, 0.3, 0.95];
    let cfg: TrainConfig = toml::from_str(
        "seed = 5\nlearning_rate = 3e-3\nmax_steps = 12\nper_device_train_batch_size = 4\n\
         eval_steps = 2\nsave_strategy = \"best\"\nsave_total_limit = 10\nasync_checkpoints = false\n\
         metric_for_best_model = \"eval/score\"\ngreater_is_better = true\nload_best_model_at_end = true",
    )
    .unwrap();
    let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
    let saved: Vec<u64> = (1..=12)
        .filter(|&s| checkpoint::dir_for(run.path(), s).exists())
        .collect();
    assert_eq!(saved, vec![2, 4, 8, 12]);
    assert_eq!(outcome.final_from_best, Some(8));
    assert_eq!(outcome.last_eval["eval/score"], 0.95);
}

/// `max_grad_norm = 0` turns clipping off, as in transformers (it used to scale every gradient to 0):
/// the same losses as a bound never reached, and the run learns.
#[test]
fn max_grad_norm_zero_trains_unclipped() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run_with = |max_grad_norm: f64| {
        let run = tempfile::tempdir().unwrap();
        let mut task = ToyQa::new(1, None);
        let cfg = TrainConfig {
            max_grad_norm,
            ..config()
        };
        let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
        (losses(run.path()), outcome.last_eval["eval/loss"])
    };
    let (off, off_eval) = run_with(0.0);
    let (unreached, _) = run_with(1e30);
    let (clipped, _) = run_with(0.01);
    assert_eq!(off, unreached);
    assert_ne!(off, clipped, "the bound of 0.01 should have clipped");
    let before = ToyQa::new(1, None)
        .evaluate(&ProgressBar::hidden())
        .unwrap()["eval/loss"];
    assert!(off_eval < before * 0.9, "{before} -> {off_eval}");
}

/// `data_seed` holds the data order while `seed` varies dropout (and the other way round); a resume
/// with another data order is refused.
#[test]
fn data_seed_orders_the_data_apart_from_seed() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run_with = |seed: u64, data_seed: Option<u64>| {
        let run = tempfile::tempdir().unwrap();
        let mut task = ToyQa::new(1, None);
        let cfg = TrainConfig {
            seed,
            data_seed,
            ..config()
        };
        train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
        let served = task.served.borrow().clone();
        (served, losses(run.path()))
    };
    let (a_order, a_losses) = run_with(5, Some(7));
    let (b_order, b_losses) = run_with(6, Some(7));
    let (c_order, _) = run_with(5, None);
    let (d_order, _) = run_with(7, None);
    assert_eq!(a_order, b_order, "the same data_seed, the same batches");
    assert_ne!(a_losses, b_losses, "another seed, other dropout");
    assert_ne!(a_order, c_order, "data_seed, not seed, orders the data");
    assert_eq!(a_order, d_order, "unset, data_seed is seed");

    // Checkpoints at steps 4 and 8; the resume changes the data seed.
    let run = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        data_seed: Some(7),
        ..config()
    };
    let mut task = ToyQa::new(1, Some(21));
    train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap_err();
    let ckpt = checkpoint::latest(run.path()).unwrap().unwrap();
    let other = TrainConfig {
        data_seed: Some(8),
        dataloader_drop_last: true,
        ..cfg.clone()
    };
    let err = train(
        &mut ToyQa::new(1, None),
        &other,
        Device::Cpu,
        run.path(),
        Some(&ckpt),
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("data_seed (or seed) was 7, now 8")
            && err.contains("dataloader_drop_last was false, now true"),
        "{err}"
    );
    train(
        &mut ToyQa::new(1, None),
        &cfg,
        Device::Cpu,
        run.path(),
        Some(&ckpt),
    )
    .unwrap();
}

/// `dataloader_drop_last`: 24 training rows in batches of 5 make 4 full batches an epoch, not 5.
#[test]
fn dataloader_drop_last_serves_full_batches_only() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run_with = |drop_last: bool| {
        let run = tempfile::tempdir().unwrap();
        let mut task = ToyQa::new(1, None);
        let cfg = TrainConfig {
            max_steps: None,
            num_train_epochs: 2.0,
            per_device_train_batch_size: 5,
            gradient_accumulation_steps: 1,
            dataloader_drop_last: drop_last,
            ..config()
        };
        let outcome = train(&mut task, &cfg, Device::Cpu, run.path(), None).unwrap();
        let sizes: Vec<usize> = task.served.borrow().iter().map(Vec::len).collect();
        (outcome.steps, sizes)
    };
    assert_eq!(run_with(true), (8, vec![5; 8]));
    assert_eq!(run_with(false), (10, vec![5, 5, 5, 5, 4, 5, 5, 5, 5, 4]));
}

/// Withdraws a stop request however the test ends: the request is process-wide.
struct ClearStop;

impl Drop for ClearStop {
    fn drop(&mut self) {
        model::train::stop::clear();
    }
}

/// `save_only_model`: checkpoints without the optimizer's state, which a resume refuses; a stop asked
/// for still writes a full checkpoint at the step under way, and the run goes on from it exactly.
#[test]
fn save_only_model_checkpoints_are_not_resumed_but_a_stops_is() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let _clear = ClearStop;
    let cfg = TrainConfig {
        save_only_model: true,
        save_total_limit: 10,
        ..config()
    };
    let straight = tempfile::tempdir().unwrap();
    let outcome = train(
        &mut ToyQa::new(1, None),
        &cfg,
        Device::Cpu,
        straight.path(),
        None,
    )
    .unwrap();
    assert!(!outcome.interrupted);
    for step in [4, 8, 12] {
        let dir = checkpoint::dir_for(straight.path(), step);
        assert!(dir.join("model.safetensors").is_file());
        assert!(!dir.join("optimizer.safetensors").exists(), "step {step}");
    }
    let ckpt = checkpoint::dir_for(straight.path(), 4);
    let err = train(
        &mut ToyQa::new(1, None),
        &cfg,
        Device::Cpu,
        straight.path(),
        Some(&ckpt),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("save_only_model"), "{err:#}");

    // Micro-batch 11 opens step 6 (2 a step): the stop comes after it, at step 6.
    let stopped = tempfile::tempdir().unwrap();
    let mut task = ToyQa::new(1, None);
    task.stop_at_batch = Some(11);
    let outcome = train(&mut task, &cfg, Device::Cpu, stopped.path(), None).unwrap();
    assert!(outcome.interrupted);
    assert_eq!(outcome.steps, 6);
    let ckpt = checkpoint::dir_for(stopped.path(), 6);
    assert!(
        ckpt.join("optimizer.safetensors").is_file(),
        "a full checkpoint"
    );
    model::train::stop::clear();
    let outcome = train(
        &mut ToyQa::new(1, None),
        &cfg,
        Device::Cpu,
        stopped.path(),
        Some(&ckpt),
    )
    .unwrap();
    assert_eq!((outcome.steps, outcome.interrupted), (12, false));
    assert_eq!(losses(stopped.path()), losses(straight.path()));
}
