//! When the loop logs, evaluates and saves, against `transformers`' Trainer itself: each case is a
//! `[train]` table as a user writes it, read into `TrainConfig`; the same settings train a one-weight
//! model with a real `Trainer` whose callbacks note the steps of every log, evaluation and checkpoint.
//! medqa's steps must be the Trainer's, plus the run's last step (where medqa always logs, evaluates
//! and saves), and the `epoch` it logs must be the Trainer's.

mod common;

use std::collections::BTreeSet;

use model::train::{IntervalStrategy, SaveStrategy, TrainConfig};

/// (training examples, the `[train]` keys, the metric each evaluation reports, if scripted); batches
/// of 4.
const CASES: &[(usize, &str, &[f64])] = &[
    (
        40,
        "num_train_epochs = 3\nlogging_steps = 7\neval_steps = 0.1\nsave_steps = 0.25",
        &[],
    ),
    (
        40,
        "num_train_epochs = 3\ngradient_accumulation_steps = 2\nlogging_strategy = \"epoch\"\n\
         eval_strategy = \"epoch\"\nsave_strategy = \"epoch\"",
        &[],
    ),
    (
        40,
        "num_train_epochs = 2\nlogging_strategy = \"no\"\nlogging_first_step = true\neval_on_start = true\n\
         eval_strategy = \"no\"\nsave_strategy = \"no\"",
        &[],
    ),
    (
        36,
        "num_train_epochs = 2\ngradient_accumulation_steps = 3\nlogging_steps = 0.34\neval_steps = 2\n\
         save_strategy = \"epoch\"",
        &[],
    ),
    (
        40,
        "num_train_epochs = 3\nlogging_steps = 0.05\nlogging_first_step = true\neval_strategy = \"epoch\"\n\
         eval_on_start = true\nsave_steps = 4",
        &[],
    ),
    (
        44,
        "num_train_epochs = 2\nlogging_steps = 1\neval_steps = 0.3\nsave_steps = 0.6\n\
         load_best_model_at_end = true",
        &[],
    ),
    (
        40,
        "num_train_epochs = 2\neval_steps = 3\nsave_strategy = \"best\"\nmetric_for_best_model = \"eval/score\"\n\
         greater_is_better = true\nload_best_model_at_end = true",
        &[0.1, 0.9, 0.2, 0.95, 0.3, 0.95, 0.96],
    ),
    (
        40,
        "num_train_epochs = 2\neval_steps = 3\neval_delay = 7",
        &[],
    ),
    (
        40,
        "num_train_epochs = 4\ngradient_accumulation_steps = 2\neval_strategy = \"epoch\"\neval_delay = 2",
        &[],
    ),
];

const REFERENCE: &str = r#"
import json, sys, tempfile, warnings
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

warnings.simplefilter("ignore")
torch.manual_seed(0)

class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, x, labels=None):
        y = self.w(x)
        return {"loss": ((y - labels) ** 2).mean(), "logits": y}

class Notes(TrainerCallback):
    def __init__(self):
        self.log, self.eval, self.save = [], [], []

    def on_log(self, args, state, control, logs=None, **kw):
        if "loss" in logs:
            self.log.append([state.global_step, logs["epoch"]])

    def on_evaluate(self, args, state, control, **kw):
        self.eval.append(state.global_step)

    def on_save(self, args, state, control, **kw):
        self.save.append(state.global_step)

out = []
for case in json.load(sys.stdin):
    data = [{"x": torch.tensor([float(i)]), "labels": torch.tensor([2.0 * i])} for i in range(case["n"])]
    notes = Notes()
    scores = list(case["scores"])
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, disable_tqdm=True,
                             save_only_model=True, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                             **case["args"])
    trainer = Trainer(model=Toy(), args=args, train_dataset=data, eval_dataset=data[:4], callbacks=[notes],
                      compute_metrics=(lambda p: {"score": scores.pop(0)}) if scores else None)
    trainer.train()
    out.append({"max_steps": trainer.state.max_steps, "log": notes.log, "eval": notes.eval, "save": notes.save})
print(json.dumps(out))
"#;

/// The settings as `TrainingArguments` takes them. medqa's "steps" with 0 steps means "only at the
/// end", which is `transformers`' "no" (the end is compared apart).
fn trainer_args(cfg: &TrainConfig) -> serde_json::Value {
    let strategy = |s: IntervalStrategy, steps: f64| match s {
        IntervalStrategy::Steps if steps == 0.0 => "no",
        other => other.name(),
    };
    let save_strategy = match cfg.save_strategy {
        SaveStrategy::Best => "best",
        other => strategy(other.interval(), cfg.save_steps),
    };
    serde_json::json!({
        "num_train_epochs": cfg.num_train_epochs,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "logging_strategy": strategy(cfg.logging_strategy, cfg.logging_steps),
        "logging_steps": cfg.logging_steps,
        "logging_first_step": cfg.logging_first_step,
        "eval_strategy": strategy(cfg.eval_strategy, cfg.eval_steps),
        "eval_steps": cfg.eval_steps,
        "eval_on_start": cfg.eval_on_start,
        "eval_delay": cfg.eval_delay,
        "save_strategy": save_strategy,
        "save_steps": cfg.save_steps,
        "load_best_model_at_end": cfg.load_best_model_at_end,
        // `eval/score` is the Trainer's `eval_score`, which it names `score`.
        "metric_for_best_model": cfg.metric_for_best_model.trim_start_matches("eval/").replace('/', "_"),
        "greater_is_better": cfg.greater_is_better,
    })
}

#[derive(serde::Deserialize)]
struct Noted {
    max_steps: u64,
    log: Vec<(u64, f64)>,
    eval: Vec<u64>,
    save: Vec<u64>,
}

fn reference(cases: &[serde_json::Value]) -> Vec<Noted> {
    common::python_json(REFERENCE, &cases)
}

#[test]
fn logs_evaluations_and_checkpoints_fall_on_the_trainers_steps() {
    let configs: Vec<(usize, TrainConfig)> = CASES
        .iter()
        .map(|(n, keys, _)| {
            let cfg: TrainConfig =
                toml::from_str(&format!("per_device_train_batch_size = 4\n{keys}"))
                    .unwrap_or_else(|e| panic!("{keys:?}: {e}"));
            cfg.validate().unwrap();
            (*n, cfg)
        })
        .collect();
    let requests: Vec<serde_json::Value> = configs
        .iter()
        .zip(CASES)
        .map(|((n, cfg), (_, _, scores))| {
            serde_json::json!({"n": n, "args": trainer_args(cfg), "scores": scores})
        })
        .collect();
    for (((n, cfg), theirs), (_, keys, scores)) in
        configs.iter().zip(reference(&requests)).zip(CASES)
    {
        let keys = keys.replace('\n', "; ");
        let total = cfg.total_steps(*n);
        assert_eq!(total, theirs.max_steps, "{keys}: run length");
        let micro = cfg.gradient_accumulation_steps as u64;
        let cadences = cfg.cadences(total, micro, *n).unwrap();
        let steps = |due: &dyn Fn(u64) -> bool| -> BTreeSet<u64> {
            (1..=total).filter(|&s| due(s)).chain([total]).collect()
        };
        let log = steps(&|s| cadences.log.due(s) || (cfg.logging_first_step && s == 1));
        let mut eval = steps(&|s| cadences.evaluates(s));
        if cfg.eval_on_start {
            eval.insert(0);
        }
        let mut save = steps(&|s| cadences.save.due(s));
        if cfg.save_strategy == SaveStrategy::Best {
            // After each evaluation during the run that beat every one before it.
            let mut best = f64::NEG_INFINITY;
            for (&step, &score) in eval.iter().zip(scores.iter()) {
                if score > best {
                    best = score;
                    save.insert(step);
                }
            }
        }
        let with_end = |v: &[u64]| v.iter().copied().chain([total]).collect::<BTreeSet<u64>>();
        let their_log: Vec<u64> = theirs.log.iter().map(|&(s, _)| s).collect();
        assert_eq!(log, with_end(&their_log), "{keys}: logging steps");
        assert_eq!(eval, with_end(&theirs.eval), "{keys}: evaluation steps");
        assert_eq!(save, with_end(&theirs.save), "{keys}: checkpoint steps");
        for &(step, epoch) in &theirs.log {
            let ours = model::train::cadence::epoch_at(step, micro, (*n as u64).div_ceil(4));
            assert!(
                (ours - epoch).abs() < 1e-9,
                "{keys}: epoch at step {step}: {ours} vs {epoch}"
            );
        }
        let before_end = their_log
            .iter()
            .chain(&theirs.eval)
            .chain(&theirs.save)
            .filter(|&&s| s < total)
            .count();
        assert!(before_end > 1, "{keys}: the case shows too little");
        println!("{keys:<100} log {log:?} eval {eval:?} save {save:?}: as the Trainer's");
    }
}
