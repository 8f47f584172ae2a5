//! A loss over tokens (MLM's labelled positions) in a step of several micro-batches: the step's loss and
//! gradient are the mean over all its tokens, as one batch holding them all (`transformers`'
//! `num_items_in_batch`), over gradient accumulation and over processes (`average_tokens_across_devices`,
//! or each process's own mean when it is off); a loss over examples keeps the plain mean of its
//! micro-batches. The toy MLM labels 1 to 10 positions per example, so that the two means differ.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use model::dist::{ProcessGroup, World};
use model::train::log::read_history;
use model::train::{train, train_in_group, Task, TrainConfig};
use model::weights::{load_safetensors, SaveDtype};
use model::{Pretrained, XlmRobertaConfig, XlmRobertaForMaskedLM};
use tch::{Device, Kind, Tensor};

/// torch's generator is process-wide and the loop seeds it: tests that train must not interleave.
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// Labelled positions of each of the 16 examples (of 10 tokens).
const LABELLED: [i64; 16] = [1, 9, 2, 10, 1, 7, 3, 10, 1, 8, 2, 9, 1, 10, 4, 6];
const LEN: i64 = 10;

struct Batch {
    ids: Tensor,
    positions: Tensor,
    targets: Tensor,
}

struct ToyMlm {
    model: Pretrained<XlmRobertaForMaskedLM>,
    ids: Tensor,
    /// -100 where a position is not labelled.
    labels: Tensor,
    /// Reports its loss items (a loss over tokens); otherwise it is treated as a loss over examples.
    over_tokens: bool,
    /// The examples of every micro-batch served, in order.
    served: RefCell<Vec<Vec<usize>>>,
}

impl ToyMlm {
    /// The same weights and data on every call; no dropout, so a loss is a function of the weights.
    fn new(over_tokens: bool) -> Self {
        Self::labelling(over_tokens, &LABELLED)
    }

    /// As `new`, with `labelled[i]` positions of example `i` labelled.
    fn labelling(over_tokens: bool, labelled: &[i64; 16]) -> Self {
        let mut cfg = XlmRobertaConfig::new(50, 32, 2, 4, 64);
        cfg.max_position_embeddings = 20;
        cfg.hidden_dropout_prob = 0.0;
        cfg.attention_probs_dropout_prob = 0.0;
        tch::manual_seed(3);
        let model = Pretrained::init(cfg, Device::Cpu).unwrap();
        tch::manual_seed(1000);
        let n = LABELLED.len() as i64;
        let ids = Tensor::randint_low(4, 50, [n, LEN], (Kind::Int64, Device::Cpu));
        let labelled = Tensor::arange(LEN, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&Tensor::from_slice(labelled).unsqueeze(1));
        // Each labelled position's target: the next token (learnable, and not the input itself).
        let next = ids.roll([-1], [1]);
        let labels = next.where_self(&labelled, &Tensor::from(-100i64));
        Self {
            model,
            ids,
            labels,
            over_tokens,
            served: RefCell::new(Vec::new()),
        }
    }

    fn make_batch(&self, indices: &[usize]) -> Batch {
        let idx = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let ids = self.ids.index_select(0, &idx);
        let flat = self.labels.index_select(0, &idx).flatten(0, -1);
        let positions = flat.ne(-100).nonzero().squeeze_dim(1);
        let targets = flat.index_select(0, &positions);
        Batch {
            ids,
            positions,
            targets,
        }
    }

    fn batch_loss(&self, b: &Batch) -> Tensor {
        let logits =
            self.model
                .model
                .loss_logits_at(&b.ids, &b.ids.ones_like(), None, &b.positions, true);
        model::loss::cross_entropy(&logits, &b.targets)
    }

    /// The loss of these examples as one batch, and its labelled positions.
    fn loss_of(&self, indices: &[usize]) -> (Tensor, f64) {
        let b = self.make_batch(indices);
        (self.batch_loss(&b), b.targets.size()[0] as f64)
    }
}

impl Task for ToyMlm {
    type Batch = Batch;

    fn train_len(&self) -> usize {
        LABELLED.len()
    }

    fn batch(&self, indices: &[usize]) -> Result<Batch> {
        self.served.borrow_mut().push(indices.to_vec());
        Ok(self.make_batch(indices))
    }

    fn tokens(&self, b: &Batch) -> usize {
        b.ids.numel()
    }

    fn loss(&self, b: &Batch, _train: bool) -> Tensor {
        self.batch_loss(b)
    }

    fn loss_items(&self, b: &Batch) -> Option<usize> {
        self.over_tokens.then(|| b.targets.size()[0] as usize)
    }

    fn evaluate(
        &mut self,
        _progress: &model::train::task::ProgressBar,
    ) -> Result<BTreeMap<String, f64>> {
        let all: Vec<usize> = (0..LABELLED.len()).collect();
        let loss = tch::no_grad(|| self.loss_of(&all).0.double_value(&[]));
        Ok(BTreeMap::from([("eval/loss".to_owned(), loss)]))
    }

    fn variables(&self) -> HashMap<String, Tensor> {
        self.model.vs.variables()
    }

    fn model_snapshot(&self) -> Result<model::snapshot::DirSnapshot> {
        self.model.snapshot(SaveDtype::F32, None)
    }

    fn load_model(&mut self, dir: &Path) -> Result<()> {
        let report = load_safetensors(&mut self.model.vs, &dir.join("model.safetensors"))?;
        assert!(report.is_exact(), "{report}");
        Ok(())
    }
}

fn config(batch: usize, accum: usize) -> TrainConfig {
    TrainConfig {
        seed: 9,
        learning_rate: 1e-2,
        max_steps: Some(4),
        per_device_train_batch_size: batch,
        gradient_accumulation_steps: accum,
        logging_steps: 1.0,
        save_total_limit: 1,
        async_checkpoints: false,
        ..Default::default()
    }
}

/// Each step's `(train/loss, grad_norm)`.
fn history(run: &Path) -> Vec<(f64, f64)> {
    read_history(&run.join("train_log.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| Some((*r.values.get("train/loss")?, r.values["grad_norm"])))
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(((a - b) / b).abs() <= 1e-5, "{what}: {a} vs {b}");
}

/// The gradient norm of `loss` (built on a fresh model by `loss`), over every variable, as clipping
/// takes it.
fn grad_norm(loss: impl Fn(&ToyMlm) -> Tensor) -> f64 {
    let task = ToyMlm::new(true);
    loss(&task).backward();
    let squares: Vec<Tensor> = task
        .variables()
        .values()
        .filter(|v| v.grad().defined())
        .map(|v| v.grad().square().sum(Kind::Double))
        .collect();
    Tensor::stack(&squares, 0)
        .sum(Kind::Double)
        .sqrt()
        .double_value(&[])
}

/// The task's weights after training, copied.
fn weights(task: &ToyMlm) -> HashMap<String, Tensor> {
    task.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

fn max_difference(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .map(|(k, t)| (t - &b[k]).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn accumulated_micro_batches_make_the_step_of_one_batch_of_all_their_tokens() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = |batch: usize, accum: usize, over_tokens: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut task = ToyMlm::new(over_tokens);
        train(
            &mut task,
            &config(batch, accum),
            Device::Cpu,
            dir.path(),
            None,
        )
        .unwrap();
        let served = task.served.take();
        (dir, served, weights(&task))
    };
    let (whole, served, whole_weights) = run(8, 1, true);
    let step1 = served[0].clone();
    let fresh = ToyMlm::new(true);
    let (one_batch, _) = fresh.loss_of(&step1);
    let one_batch = one_batch.double_value(&[]);
    let one_batch_norm = grad_norm(|t| t.loss_of(&step1).0);
    // The micro-batches of 2 the step is made of with accumulation 4, and the mean of their means.
    let quarters: Vec<(f64, f64)> = step1
        .chunks(2)
        .map(|c| {
            let (l, n) = fresh.loss_of(c);
            (l.double_value(&[]), n)
        })
        .collect();
    let mean_of_means = quarters.iter().map(|(l, _)| l / 4.0).sum::<f64>();
    assert!(
        ((mean_of_means - one_batch) / one_batch).abs() > 1e-3,
        "the data must tell the two means apart: {mean_of_means} vs {one_batch}"
    );

    let reference = history(whole.path());
    assert_eq!(reference.len(), 4);
    close(reference[0].0, one_batch, "step 1's loss, one batch of 8");
    close(reference[0].1, one_batch_norm, "step 1's gradient norm");
    for (batch, accum) in [(4, 2), (2, 4)] {
        let (dir, served_here, mine) = run(batch, accum, true);
        // The same examples in each step, in micro-batches of `batch`.
        for (step, chunk) in served.iter().enumerate() {
            let mine: Vec<usize> = served_here[step * accum..(step + 1) * accum].concat();
            assert_eq!(&mine, chunk, "step {}: {batch} × {accum}", step + 1);
        }
        let steps = history(dir.path());
        assert_eq!(steps.len(), reference.len());
        for (i, ((l, g), (rl, rg))) in steps.iter().zip(&reference).enumerate() {
            close(
                *l,
                *rl,
                &format!("step {}'s loss, {batch} × {accum}", i + 1),
            );
            close(
                *g,
                *rg,
                &format!("step {}'s norm, {batch} × {accum}", i + 1),
            );
        }
        // AdamW's first steps divide each gradient by its own size: where one is near zero, rounding
        // moves its weight by a share of the learning rate (1e-2), which a wrong weighting moves all.
        let diff = max_difference(&mine, &whole_weights);
        assert!(diff <= 1e-4, "{batch} × {accum}: weights differ by {diff}");
    }

    // A loss over examples: the micro-batches' plain mean, as before.
    let (examples, _, _) = run(2, 4, false);
    close(
        history(examples.path())[0].0,
        mean_of_means,
        "a loss over examples, 2 × 4",
    );
    let mean_norm = grad_norm(|t| {
        let parts: Vec<Tensor> = step1.chunks(2).map(|c| t.loss_of(c).0 / 4.0).collect();
        Tensor::stack(&parts, 0).sum(Kind::Float)
    });
    close(
        history(examples.path())[0].1,
        mean_norm,
        "its gradient norm",
    );
}

/// What a rank was served (each micro-batch's examples) and its weights after training.
type RankRun = (Vec<Vec<usize>>, HashMap<String, Tensor>);

/// Trains `ranks` ranks of a Gloo group, one thread each (one torch thread: sums in a fixed order), on
/// `dir`; returns the examples each rank was served, and each rank's weights after training.
fn train_ranks(dir: &Path, ranks: usize, cfg: &TrainConfig) -> Vec<RankRun> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Each rank makes its task (the same weights) in turn: torch's generator is the process's.
    let init = Mutex::new(());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..ranks)
            .map(|rank| {
                let init = &init;
                s.spawn(move || {
                    let mut task = {
                        let _turn = init.lock().unwrap();
                        ToyMlm::new(true)
                    };
                    let vars = HashMap::from(
                        [
                            ("WORLD_SIZE", ranks.to_string()),
                            ("RANK", rank.to_string()),
                            ("MASTER_ADDR", "127.0.0.1".to_owned()),
                            ("MASTER_PORT", port.to_string()),
                        ]
                        .map(|(k, v)| (k.to_owned(), v)),
                    );
                    let world = World::from_vars(&vars).unwrap();
                    let group =
                        ProcessGroup::join(&world, Device::Cpu, Duration::from_secs(60)).unwrap();
                    train_in_group(&mut task, cfg, Device::Cpu, dir, None, Some(&group)).unwrap();
                    group.shutdown().unwrap();
                    (task.served.take(), weights(&task))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn processes_average_over_all_their_tokens_or_over_their_own() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    // One process: 2 micro-batches of 4 per step.
    let single = tempfile::tempdir().unwrap();
    let mut task = ToyMlm::new(true);
    train(&mut task, &config(4, 2), Device::Cpu, single.path(), None).unwrap();
    let served = task.served.take();
    let single_weights = weights(&task);

    // 2 ranks with one micro-batch of 4 each: the single process's micro-batches, and its numbers.
    let across = tempfile::tempdir().unwrap();
    let ranks = train_ranks(across.path(), 2, &config(4, 1));
    for (step, pair) in served.chunks(2).enumerate() {
        assert_eq!(ranks[0].0[step], pair[0], "rank 0, step {}", step + 1);
        assert_eq!(ranks[1].0[step], pair[1], "rank 1, step {}", step + 1);
    }
    let (one, two) = (history(single.path()), history(across.path()));
    assert_eq!(one.len(), 4);
    for (i, ((l, g), (rl, rg))) in two.iter().zip(&one).enumerate() {
        close(*l, *rl, &format!("step {}'s loss over 2 ranks", i + 1));
        close(*g, *rg, &format!("step {}'s norm over 2 ranks", i + 1));
    }
    for (rank, (_, w)) in ranks.iter().enumerate() {
        let diff = max_difference(w, &single_weights);
        assert!(diff <= 1e-5, "rank {rank}'s weights differ by {diff}");
    }

    // Each rank's own mean (average_tokens_across_devices = false): step 1 is the ranks' mean of means.
    let own = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        average_tokens_across_devices: false,
        ..config(4, 1)
    };
    train_ranks(own.path(), 2, &cfg);
    let fresh = ToyMlm::new(true);
    let parts: Vec<(f64, f64)> = served[..2]
        .iter()
        .map(|c| {
            let (l, n) = fresh.loss_of(c);
            (l.double_value(&[]), n)
        })
        .collect();
    let means = (parts[0].0 + parts[1].0) / 2.0;
    let tokens = (parts[0].0 * parts[0].1 + parts[1].0 * parts[1].1) / (parts[0].1 + parts[1].1);
    assert!(
        ((means - tokens) / tokens).abs() > 1e-3,
        "the data must tell the two means apart: {means} vs {tokens}"
    );
    close(one[0].0, tokens, "step 1 over all tokens");
    let step1 = history(own.path())[0];
    close(step1.0, means, "step 1, each rank's own mean");
    let norm = grad_norm(|t| (t.loss_of(&served[0]).0 + t.loss_of(&served[1]).0) / 2.0);
    close(step1.1, norm, "its gradient norm");
}

/// fp16's loss scale starts at GradScaler's 65,536, sized for means: micro-batch losses weighted by
/// their items must not overflow it (which would skip the first steps while the scale halves), and the
/// step stays the one-batch mean.
#[test]
fn fp16_accumulation_weighs_tokens_without_overflowing_the_loss_scale() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut task = ToyMlm::new(true);
    let cfg = TrainConfig {
        precision: model::autocast::Precision::Fp16,
        ..config(8, 2)
    };
    train(&mut task, &cfg, Device::Cpu, dir.path(), None).unwrap();
    let records = read_history(&dir.path().join("train_log.jsonl")).unwrap();
    let skipped: Vec<u64> = records
        .iter()
        .filter(|r| r.values.contains_key("skipped_overflow"))
        .map(|r| r.step)
        .collect();
    assert!(
        skipped.is_empty(),
        "steps skipped for overflow: {skipped:?}"
    );
    let step1: Vec<usize> = task.served.take()[..2].concat();
    let fresh = ToyMlm::new(true);
    let one_batch = fresh.loss_of(&step1).0.double_value(&[]);
    let logged = history(dir.path())[0].0;
    assert!(
        ((logged - one_batch) / one_batch).abs() < 1e-2,
        "fp16 step 1: {logged} vs the fp32 one-batch mean {one_batch}"
    );
}

/// A micro-batch with nothing to take its loss over stops the run with a message that says so, rather
/// than a loss that is not a number.
#[test]
fn a_micro_batch_without_items_is_an_error() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut task = ToyMlm::labelling(true, &[0; 16]);
    let err = train(&mut task, &config(2, 2), Device::Cpu, dir.path(), None).unwrap_err();
    assert!(
        format!("{err:#}").contains("step 1: micro-batch 0 has no items"),
        "{err:#}"
    );
}
