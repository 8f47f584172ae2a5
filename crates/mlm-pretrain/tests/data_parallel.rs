//! Data-parallel MLM on c10d with Gloo, 2 CPU processes (issue 17): under torchrun the ranks compute
//! what one process computes over the same global batches; a 2-rank run resumes exactly; a rank that
//! dies stops the other in bounded time (launched as SLURM's srun would); ranks that disagree stop
//! before training.
//!
//! What holds bitwise: the ranks' micro-batches, masks and dropout are exactly the single process's,
//! and every micro-batch's loss reaches every rank in the single process's order. With one micro-batch
//! per rank per step, 2 ranks sum the gradients in the order one process accumulates them (g0 + g1), so
//! the log and the weights are bitwise the same as one process at the same thread count (torchrun
//! gives each rank one thread; libtorch's CPU reductions depend on the thread count). With
//! accumulation on each rank the order differs ((g0 + g2) + (g1 + g3) against g0 + g1 + g2 + g3):
//! equal within 1e-5.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{losses, make_shards, tokens_seen, write_config};
use model::train::log::read_history;
use tch::Tensor;
use test_support::{free_port, ok_all, rank_command, run_ok, slurm_rank_command, torchrun};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_mlm-pretrain");

/// The tiny run of `common::write_config` with accumulation `accum`, `steps` steps, a checkpoint every
/// 4 steps (all kept) and one evaluation at the end.
fn args(cfg: &Path, accum: usize) -> Vec<String> {
    [
        "--config",
        cfg.to_str().unwrap(),
        "--device",
        "cpu",
        "--dist-timeout",
        "60",
        "--set",
        &format!("train.gradient_accumulation_steps={accum}"),
        "--set",
        "train.save_total_limit=10",
        "--set",
        "train.eval_steps=0",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn weights(dir: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_weight_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .map(|(k, t)| (t - &b[k]).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_close_losses(a: &[(u64, u64)], b: &[(u64, u64)]) {
    assert_eq!(a.len(), b.len());
    for ((sa, la), (sb, lb)) in a.iter().zip(b) {
        assert_eq!(sa, sb);
        let (la, lb) = (f64::from_bits(*la), f64::from_bits(*lb));
        assert!(
            ((la - lb) / la).abs() <= 1e-5,
            "step {sa}: loss {la} vs {lb}"
        );
    }
}

/// One process with one thread, as torchrun runs each rank.
fn single(cfg: &Path, accum: usize) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args(cfg, accum)).env("OMP_NUM_THREADS", "1");
    cmd
}

#[test]
fn two_ranks_train_as_one_process_over_the_same_global_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let steps = 12;
    let config = |name: &str| {
        let dir = tmp.path().join(format!("cfg-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = tmp.path().join(name);
        (write_config(&dir, &shards, &out, steps), out)
    };

    // One process, 2 micro-batches of 8 per step; then 2 ranks with one micro-batch of 8 each.
    let (cfg_one, one) = config("one");
    run_ok(&mut single(&cfg_one, 2));
    let (cfg_two, two) = config("two");
    let log = ok_all(
        torchrun(2, BIN, &strs(&args(&cfg_two, 1)))
            .output()
            .unwrap(),
    );
    assert!(log.contains("2 process(es) (Torchrun)"), "{log}");
    assert_eq!(
        losses(&one).len(),
        steps as usize,
        "one record per step: rank 1 writes none"
    );
    // The records (compared below) count both ranks' input tokens.
    assert_eq!(tokens_seen(&two).len(), steps as usize);
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    for file in [
        "train_log.jsonl",
        "final/model.safetensors",
        "eval_results.json",
    ] {
        assert!(
            read(&one, file) == read(&two, file),
            "{file}: not bitwise the same"
        );
    }

    // Accumulation on each rank: 2 ranks × 2 micro-batches against one process × 4.
    let (cfg_four, four) = config("four");
    run_ok(&mut single(&cfg_four, 4));
    let (cfg_accum, accum) = config("accum");
    ok_all(
        torchrun(2, BIN, &strs(&args(&cfg_accum, 2)))
            .output()
            .unwrap(),
    );
    let (a, b) = (losses(&four), losses(&accum));
    assert_close_losses(&a, &b);
    assert_eq!(
        a[0], b[0],
        "step 1's losses come before any update: the same bits"
    );
    let diff = max_weight_difference(&four.join("final"), &accum.join("final"));
    assert!(diff <= 1e-5, "final weights differ by up to {diff}");
    let (ea, eb) = (
        json(&four.join("eval_results.json")),
        json(&accum.join("eval_results.json")),
    );
    let (pa, pb) = (
        ea["eval/loss"].as_f64().unwrap(),
        eb["eval/loss"].as_f64().unwrap(),
    );
    assert!(((pa - pb) / pa).abs() <= 1e-5, "eval loss {pa} vs {pb}");
    assert_eq!(ea["eval/masked_tokens"], eb["eval/masked_tokens"]);

    // The run records its world size, and the checkpoint the micro-batches per step.
    assert_eq!(json(&two.join("manifest.json"))["world_size"], 2);
    let state = json(&accum.join("checkpoints/step-000004/state.json"));
    assert_eq!(state["world_size"], 2);
    assert_eq!(state["micro_batches_per_step"], 4);
    assert_eq!(
        json(&one.join("checkpoints/step-000004/state.json"))["world_size"],
        1
    );
}

/// `reduce_lr_on_plateau` lowers the rate on rank 0's evaluation; every rank must take it, or the
/// ranks' weights part and the run stops being the single process's. `save_strategy = "best"`
/// checkpoints after rank 0's evaluations that improve: every rank must join those checkpoints'
/// collectives.
#[test]
fn a_plateau_lowered_rate_and_best_checkpoints_reach_every_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    // Every evaluation after the first misses a 50% improvement: the rate halves at each.
    let plateau = [
        "--set",
        "train.lr_scheduler_type=reduce_lr_on_plateau",
        "--set",
        "train.eval_steps=3",
        "--set",
        "train.lr_scheduler_kwargs={ patience = 0, threshold = 0.5, factor = 0.5 }",
        "--set",
        "train.save_strategy=best",
        "--set",
        "train.save_total_limit=10",
    ];
    let run = |name: &str, ranks: usize| {
        let dir = tmp.path().join(format!("cfg-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = tmp.path().join(name);
        let cfg = write_config(&dir, &shards, &out, 12);
        // After args()'s overrides, so that eval_steps = 3 replaces its 0.
        let mut all = args(&cfg, 2 / ranks);
        all.extend(plateau.map(String::from));
        if ranks == 1 {
            let mut cmd = Command::new(BIN);
            cmd.args(&all).env("OMP_NUM_THREADS", "1");
            run_ok(&mut cmd);
        } else {
            ok_all(torchrun(ranks, BIN, &strs(&all)).output().unwrap());
        }
        out
    };
    let (one, two) = (run("one", 1), run("two", 2));
    let rates: Vec<f64> = read_history(&one.join("train_log.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| r.values.get("lr").copied())
        .collect();
    assert!(
        rates.windows(2).filter(|w| w[1] < w[0]).count() >= 2,
        "the rate should fall at the evaluations: {rates:?}"
    );
    for file in ["train_log.jsonl", "final/model.safetensors"] {
        assert!(
            std::fs::read(one.join(file)).unwrap() == std::fs::read(two.join(file)).unwrap(),
            "{file}: not bitwise the same"
        );
    }
    let checkpoints = |run: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let saved = checkpoints(&one);
    assert!(
        saved.len() >= 2 && saved.contains(&"step-000003".to_owned()),
        "best checkpoints at evaluations: {saved:?}"
    );
    assert_eq!(saved, checkpoints(&two));
}

#[test]
fn a_two_rank_run_resumes_exactly_and_only_with_the_same_micro_batches_per_step() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let steps = 12;
    let straight = tmp.path().join("straight");
    let cfg = write_config(tmp.path(), &shards, &straight, steps);
    let a = args(&cfg, 1);
    ok_all(torchrun(2, BIN, &strs(&a)).output().unwrap());
    let reference = losses(&straight);

    // A copy of the run as it stood at step 4, resumed on 2 ranks: the same bits.
    let copy = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        let ckpt = dir.join("checkpoints/step-000004");
        copy_dir(&straight.join("checkpoints/step-000004"), &ckpt);
        std::fs::copy(
            straight.join("train_log.jsonl"),
            dir.join("train_log.jsonl"),
        )
        .unwrap();
        let cfg_dir = tmp.path().join(format!("cfg-{name}"));
        std::fs::create_dir_all(&cfg_dir).unwrap();
        let cfg = write_config(&cfg_dir, &shards, &dir, steps);
        (dir, cfg)
    };
    let (resumed, cfg_r) = copy("resumed");
    let mut r = args(&cfg_r, 1);
    r.push("--resume".into());
    ok_all(torchrun(2, BIN, &strs(&r)).output().unwrap());
    assert_eq!(
        losses(&resumed),
        reference,
        "resumed on 2 ranks: bitwise the same"
    );

    // One process with accumulation 2 has the same micro-batches per step: it continues the run,
    // bitwise as the 2 ranks would (one thread, as they had); with accumulation 1 it is refused.
    let (resharded, cfg_s) = copy("resharded");
    let out = single(&cfg_s, 1).arg("--resume").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("2 micro-batches per step")
            && err.contains("gradient_accumulation_steps"),
        "{err}"
    );
    run_ok(single(&cfg_s, 2).arg("--resume"));
    assert_eq!(losses(&resharded), reference);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Rank `rank` of 2, launched as torch's `env://` (`RANK`, `WORLD_SIZE`) or, with `slurm`, as `srun`
/// starts tasks.
fn spawn_rank(cfg: &Path, rank: usize, port: u16, slurm: bool, extra: &[&str]) -> Child {
    let mut cmd = if slurm {
        slurm_rank_command(BIN, rank, 2, port)
    } else {
        rank_command(BIN, rank, 2, port)
    };
    cmd.args(args(cfg, 1))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit`; its status and standard error.
fn wait_for(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status, err, started.elapsed());
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rank_that_dies_stops_the_other_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let dir = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &shards, &dir, 1_000_000);
    let port = free_port();
    // Launched as srun would: SLURM's variables are enough to train.
    let main = spawn_rank(&cfg, 0, port, true, &[]);
    let mut other = spawn_rank(&cfg, 1, port, true, &[]);
    // Both are training once rank 0 has logged a few steps.
    let started = Instant::now();
    while read_history(&dir.join("train_log.jsonl")).map_or(0, |h| h.len()) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run did not get going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    other.kill().unwrap(); // SIGKILL: no goodbye
    other.wait().unwrap();
    let (status, err, took) = wait_for(main, Duration::from_secs(90));
    assert!(!status.success(), "rank 0 went on alone: {err}");
    assert!(err.contains("another rank has stopped"), "{err}");
    eprintln!("rank 0 stopped {took:?} after rank 1 was killed");
}

#[test]
fn ranks_that_disagree_on_the_configuration_stop_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let dir = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &shards, &dir, 8);
    let port = free_port();
    let main = spawn_rank(&cfg, 0, port, false, &[]);
    let other = spawn_rank(&cfg, 1, port, false, &["--set", "train.learning_rate=1e-3"]);
    for child in [main, other] {
        let (status, err, _) = wait_for(child, Duration::from_secs(90));
        assert!(!status.success());
        assert!(
            err.contains("the ranks disagree on the configuration"),
            "{err}"
        );
    }
    assert!(!dir.join("train_log.jsonl").exists(), "nothing was trained");
}

/// A stop asked of one rank only (SIGTERM to rank 1, launched as srun starts ranks): the ranks agree at
/// their next common reading of the numbers, checkpoint that step and exit with 75; resumed on 2 ranks
/// the run logs bitwise what one process does.
#[test]
fn a_signal_to_one_rank_stops_every_rank_at_one_checkpointed_step() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = tmp.path().join("corpus");
    make_shards(&shards);
    let steps = 80;
    let one = tmp.path().join("one");
    let cfg_dir = tmp.path().join("cfg-one");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = write_config(&cfg_dir, &shards, &one, steps);
    let mut cmd = Command::new(BIN);
    cmd.args(args(&cfg, 2)).env("OMP_NUM_THREADS", "1");
    run_ok(&mut cmd);

    let dir = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &shards, &dir, steps);
    let port = free_port();
    let main = spawn_rank(&cfg, 0, port, true, &[]);
    let other = spawn_rank(&cfg, 1, port, true, &[]);
    let started = Instant::now();
    while losses(&dir).last().map_or(0, |(s, _)| *s) < 9 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run did not get going"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &other.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for child in [main, other] {
        let (status, err, _) = wait_for(child, Duration::from_secs(90));
        assert_eq!(status.code(), Some(75), "{err}");
    }
    let last = losses(&dir).last().unwrap().0;
    assert!(last < steps, "the run finished before the signal");
    let saved = model::train::checkpoint::list(&dir).unwrap();
    assert_eq!(saved.last().map(|(s, _)| *s), Some(last));
    assert!(!dir.join("final").exists());

    let port = free_port();
    let resumed = [
        spawn_rank(&cfg, 0, port, true, &["--resume"]),
        spawn_rank(&cfg, 1, port, true, &["--resume"]),
    ];
    for child in resumed {
        let (status, err, _) = wait_for(child, Duration::from_secs(120));
        assert!(status.success(), "{err}");
    }
    assert_eq!(losses(&dir), losses(&one), "stopped at step {last}");
}
