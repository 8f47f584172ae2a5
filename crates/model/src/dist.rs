//! Data-parallel training on c10d, PyTorch's own distributed engine inside libtorch: who this process
//! is ([`World`], from torchrun's or SLURM's variables), and the process group ([`ProcessGroup`]: Gloo
//! on CPU, NCCL on CUDA, `csrc/dist.cpp`) with the few collectives the loop needs.
//!
//! A plain run has no variables set and stays one process with nothing to configure.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::ffi::{
    last_error, medqa_dist_allreduce, medqa_dist_broadcast, medqa_dist_free, medqa_dist_init,
    medqa_dist_shutdown, medqa_dist_with_nccl,
};

/// How this process was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// One process, no variables.
    Single,
    /// `torchrun`: its agent hosts the rendezvous store.
    Torchrun,
    /// `srun` under SLURM (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`).
    Slurm,
    /// `RANK`/`WORLD_SIZE` set by hand (torch's `env://`).
    Env,
}

/// This process's place in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// The rank among this node's processes: the CUDA device it trains on.
    pub local_rank: usize,
    pub launcher: Launcher,
    /// Where the rendezvous store listens (`MASTER_ADDR`, `MASTER_PORT`); unset for one process.
    pub master: Option<(String, u16)>,
    /// torchrun's agent hosts the store (`TORCHELASTIC_USE_AGENT_STORE=True`): every rank connects.
    pub agent_store: bool,
}

impl World {
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
            launcher: Launcher::Single,
            master: None,
            agent_store: false,
        }
    }

    /// From the process environment: torchrun's `RANK`/`WORLD_SIZE`/`LOCAL_RANK` first, then SLURM's.
    pub fn from_env() -> Result<Self> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self> {
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let number = |name: &str| -> Result<Option<usize>> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .with_context(|| format!("{name}={v:?} is not a whole number"))
                })
                .transpose()
        };
        let (rank, size, local_rank, launcher) = if let Some(size) = number("WORLD_SIZE")? {
            let rank = number("RANK")?.context("WORLD_SIZE is set but RANK is not")?;
            let local = number("LOCAL_RANK")?.unwrap_or(rank);
            let launcher = if get("TORCHELASTIC_RUN_ID").is_some() {
                Launcher::Torchrun
            } else {
                Launcher::Env
            };
            (rank, size, local, launcher)
        } else if let Some(size) = number("SLURM_NTASKS")? {
            let rank =
                number("SLURM_PROCID")?.context("SLURM_NTASKS is set but SLURM_PROCID is not")?;
            let local = number("SLURM_LOCALID")?.unwrap_or(0);
            (rank, size, local, Launcher::Slurm)
        } else {
            return Ok(Self::single());
        };
        if size == 0 || rank >= size {
            bail!("rank {rank} is not below the world size {size}");
        }
        // One SLURM task is an ordinary job; one torchrun process (MASTER_ADDR set) still forms a
        // group of one, as torch's DDP does: the collectives run, which checks the NCCL path on one GPU.
        if size == 1 && (launcher == Launcher::Slurm || get("MASTER_ADDR").is_none()) {
            return Ok(Self::single());
        }
        let hint = match launcher {
            Launcher::Slurm => {
                " (in the sbatch script: export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1) and MASTER_PORT=29500)"
            }
            _ => "",
        };
        let addr = get("MASTER_ADDR")
            .with_context(|| format!("{size} processes but MASTER_ADDR is not set{hint}"))?;
        let port = get("MASTER_PORT")
            .with_context(|| format!("{size} processes but MASTER_PORT is not set{hint}"))?;
        let port = port
            .parse::<u16>()
            .with_context(|| format!("MASTER_PORT={port:?} is not a port number"))?;
        Ok(Self {
            rank,
            size,
            local_rank,
            launcher,
            master: Some((addr.to_owned(), port)),
            agent_store: get("TORCHELASTIC_USE_AGENT_STORE") == Some("True"),
        })
    }

    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Whether this process trains in a process group (launched by torchrun, SLURM or by hand).
    pub fn is_distributed(&self) -> bool {
        self.master.is_some()
    }

    /// Under torchrun the agent already hosts the store and every rank connects to it (a second server
    /// on the port would fail); otherwise rank 0 hosts it.
    fn hosts_store(&self) -> bool {
        !self.agent_store && self.rank == 0
    }

    /// The device of this rank: `cuda:LOCAL_RANK` when the run is on CUDA.
    pub fn device(&self, chosen: Device) -> Device {
        match chosen {
            Device::Cuda(_) if self.is_distributed() => Device::Cuda(self.local_rank),
            other => other,
        }
    }
}

/// The reductions the loop uses.
#[derive(Clone, Copy, Debug)]
pub enum ReduceOp {
    Sum = 0,
    Max = 1,
    Min = 2,
}

/// Gradients and parameters travel in flat buffers of at most this many bytes (DDP's default bucket):
/// few collectives, and one bucket's copy of memory at a time.
const BUCKET_BYTES: usize = 25 << 20;

/// Whether this build can use NCCL (it found NCCL's and CUDA's headers; see `build.rs`).
pub fn has_nccl() -> bool {
    // SAFETY: no arguments, no state.
    unsafe { medqa_dist_with_nccl() != 0 }
}

/// A c10d process group joined by every rank of the run.
pub struct ProcessGroup {
    handle: *mut c_void,
    world: World,
    device: Device,
    timeout: Duration,
    /// Set by [`ProcessGroup::shutdown`]; a group dropped without it is aborted (an error path).
    shut_down: bool,
}

impl ProcessGroup {
    /// Joins the run's group: Gloo when the tensors live on the CPU, NCCL on CUDA. `timeout` bounds the
    /// rendezvous and every collective, so a rank that died makes the others fail rather than wait.
    pub fn join(world: &World, device: Device, timeout: Duration) -> Result<Self> {
        let Some((addr, port)) = &world.master else {
            bail!("a process group needs more than one process (MASTER_ADDR/MASTER_PORT)");
        };
        let backend = if device.is_cuda() { "nccl" } else { "gloo" };
        let c_backend = CString::new(backend)?;
        let c_addr = CString::new(addr.as_str()).context("MASTER_ADDR holds a NUL byte")?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: the strings outlive the call; on success the shim hands over a group that `Drop` frees.
        let rc = unsafe {
            medqa_dist_init(
                c_backend.as_ptr(),
                c_addr.as_ptr(),
                *port as i32,
                world.rank as i32,
                world.size as i32,
                world.hosts_store() as i32,
                timeout.as_millis() as i64,
                &mut handle,
            )
        };
        if rc != 0 {
            bail!(
                "rank {} of {}: cannot join the {backend} process group at {addr}:{port}: {}",
                world.rank,
                world.size,
                last_error()
            );
        }
        Ok(Self {
            handle,
            world: world.clone(),
            device,
            timeout,
            shut_down: false,
        })
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Leaves the group in order when the run is done with it (after the last collective); NCCL's
    /// communicators are flushed and destroyed, as `destroy_process_group()` does in Python.
    pub fn shutdown(mut self) -> Result<()> {
        // SAFETY: the handle is live until `Drop`, which runs after this call.
        let rc = unsafe { medqa_dist_shutdown(self.handle) };
        if rc != 0 {
            return Err(self.failed("leaving the process group"));
        }
        self.shut_down = true;
        Ok(())
    }

    fn failed(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "rank {} of {}: {what} failed — another rank has stopped or did not answer within {} s: {}",
            self.world.rank,
            self.world.size,
            self.timeout.as_secs(),
            last_error()
        )
    }

    /// In place: `tensor` becomes the reduction of every rank's `tensor` (same shape everywhere).
    pub fn all_reduce(&self, tensor: &Tensor, op: ReduceOp) -> Result<()> {
        // SAFETY: `tensor` is a live at::Tensor for the whole (blocking) call.
        let rc =
            unsafe { medqa_dist_allreduce(self.handle, tensor.as_ptr() as *mut c_void, op as i32) };
        if rc != 0 {
            return Err(self.failed("all-reduce"));
        }
        Ok(())
    }

    /// In place: `tensor` becomes rank `root`'s.
    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<()> {
        // SAFETY: as in `all_reduce`.
        let rc = unsafe {
            medqa_dist_broadcast(self.handle, tensor.as_ptr() as *mut c_void, root as i32)
        };
        if rc != 0 {
            return Err(self.failed("broadcast"));
        }
        Ok(())
    }

    /// Waits until every rank got here (a one-element all-reduce, which NCCL and Gloo both do).
    pub fn barrier(&self) -> Result<()> {
        self.all_reduce(
            &Tensor::zeros([1], (Kind::Float, self.device)),
            ReduceOp::Sum,
        )
    }

    /// Whether every rank says `ok`: one rank's failure (e.g. rank 0 could not prepare the run
    /// directory) reaches the others at once instead of as a timeout.
    pub fn all_ok(&self, ok: bool) -> Result<bool> {
        let flag = Tensor::from(ok as i64).to_device(self.device);
        self.all_reduce(&flag, ReduceOp::Min)?;
        Ok(flag.int64_value(&[]) == 1)
    }

    /// Fails on every rank unless all ranks hold the same `bytes` (compared by SHA-256): the
    /// configuration, model and inputs are checked this way before anything trains.
    pub fn check_same(&self, what: &str, bytes: &[u8]) -> Result<()> {
        let digest: Vec<i64> = Sha256::digest(bytes).iter().map(|&b| b as i64).collect();
        let mine = Tensor::from_slice(&digest).to_device(self.device);
        let (low, high) = (mine.copy(), mine.copy());
        self.all_reduce(&low, ReduceOp::Min)?;
        self.all_reduce(&high, ReduceOp::Max)?;
        if !low.equal(&high) {
            let own = if mine.equal(&low) && mine.equal(&high) {
                "agrees with some"
            } else {
                "differs from others"
            };
            bail!(
                "rank {} of {}: the ranks disagree on {what} (this rank's {} {own}); every rank must run \
                 the same configuration, model and data",
                self.world.rank,
                self.world.size,
                hex(&Sha256::digest(bytes)[..6])
            );
        }
        Ok(())
    }

    /// Gives every rank rank 0's values of `tensors` (the parameters at the start of a run).
    pub fn broadcast_from_main(&self, tensors: &[Tensor]) -> Result<()> {
        for bucket in buckets(tensors, BUCKET_BYTES) {
            let flat = flatten(tensors, &bucket);
            self.broadcast(&flat, 0)?;
            unflatten_into(&flat, tensors, &bucket);
        }
        Ok(())
    }

    /// Sums `grads` over the ranks, in place (the loss is already divided by the global number of
    /// micro-batches, so the sum is the global batch's mean gradient).
    pub fn sum_gradients(&self, grads: &[Tensor]) -> Result<()> {
        for bucket in buckets(grads, BUCKET_BYTES) {
            let flat = flatten(grads, &bucket);
            self.all_reduce(&flat, ReduceOp::Sum)?;
            unflatten_into(&flat, grads, &bucket);
        }
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: the handle came from medqa_dist_init and is freed once.
        unsafe { medqa_dist_free(self.handle, i32::from(!self.shut_down)) };
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Consecutive runs of `tensors` of one kind and device, each at most `cap` bytes (a larger tensor
/// goes alone), so that each run travels as one flat buffer.
pub fn buckets(tensors: &[Tensor], cap: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, t) in tensors.iter().enumerate() {
        let size = t.numel() * t.kind().elt_size_in_bytes();
        let joins = out.last().is_some_and(|b| {
            let first = &tensors[b[0]];
            first.kind() == t.kind() && first.device() == t.device() && bytes + size <= cap
        });
        if joins {
            out.last_mut().expect("checked").push(i);
            bytes += size;
        } else {
            out.push(vec![i]);
            bytes = size;
        }
    }
    out
}

fn flatten(tensors: &[Tensor], bucket: &[usize]) -> Tensor {
    let views: Vec<Tensor> = bucket.iter().map(|&i| tensors[i].reshape([-1])).collect();
    Tensor::cat(&views, 0)
}

fn unflatten_into(flat: &Tensor, tensors: &[Tensor], bucket: &[usize]) {
    let mut offset = 0;
    tch::no_grad(|| {
        for &i in bucket {
            let n = tensors[i].numel() as i64;
            let mut target = tensors[i].shallow_clone();
            target.copy_(&flat.narrow(0, offset, n).view_as(&tensors[i]));
            offset += n;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_variables_mean_one_process() {
        assert_eq!(World::from_vars(&vars(&[])).unwrap(), World::single());
        // One SLURM task (an ordinary batch job) is one process too, as is a stray WORLD_SIZE=1.
        let one = vars(&[("SLURM_NTASKS", "1"), ("SLURM_PROCID", "0")]);
        assert_eq!(World::from_vars(&one).unwrap(), World::single());
        let stray = vars(&[("WORLD_SIZE", "1"), ("RANK", "0")]);
        assert_eq!(World::from_vars(&stray).unwrap(), World::single());
        // torchrun --nproc-per-node 1 makes a group of one.
        let torchrun = vars(&[
            ("WORLD_SIZE", "1"),
            ("RANK", "0"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_RUN_ID", "x"),
        ]);
        let w = World::from_vars(&torchrun).unwrap();
        assert!(w.is_distributed() && w.size == 1);
    }

    #[test]
    fn torchrun_and_slurm_variables_give_the_rank() {
        let torchrun = vars(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("TORCHELASTIC_RUN_ID", "x"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29500"),
            // torchrun inside an allocation: torchrun's variables win.
            ("SLURM_NTASKS", "1"),
        ]);
        let w = World::from_vars(&torchrun).unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (3, 4, 1));
        assert_eq!(w.launcher, Launcher::Torchrun);
        assert_eq!(w.master, Some(("10.0.0.1".into(), 29500)));
        assert_eq!(w.device(Device::Cuda(0)), Device::Cuda(1));
        assert_eq!(w.device(Device::Cpu), Device::Cpu);

        let slurm = vars(&[
            ("SLURM_NTASKS", "8"),
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("MASTER_ADDR", "node1"),
            ("MASTER_PORT", "29400"),
        ]);
        let w = World::from_vars(&slurm).unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (5, 8, 1));
        assert_eq!(w.launcher, Launcher::Slurm);
    }

    #[test]
    fn bad_variables_are_named() {
        let err = |pairs: &[(&str, &str)]| World::from_vars(&vars(pairs)).unwrap_err().to_string();
        assert!(err(&[("WORLD_SIZE", "2")]).contains("RANK is not"));
        assert!(err(&[("WORLD_SIZE", "two"), ("RANK", "0")]).contains("WORLD_SIZE=\"two\""));
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "2")]).contains("not below"));
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "0")]).contains("MASTER_ADDR"));
        let slurm = err(&[("SLURM_NTASKS", "2"), ("SLURM_PROCID", "0")]);
        assert!(
            slurm.contains("MASTER_ADDR") && slurm.contains("sbatch"),
            "{slurm}"
        );
        assert!(err(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "0"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "99999")
        ])
        .contains("MASTER_PORT"));
    }

    /// With the set-up's CUDA wheel (NCCL's headers beside it, the CUDA ones installed by set-up) NCCL is
    /// built in; a build that lost the headers would silently offer Gloo only.
    #[test]
    fn nccl_is_built_in_with_the_cuda_wheel() {
        let libtorch = std::path::PathBuf::from(
            std::env::var("LIBTORCH").expect("LIBTORCH (set by .cargo/config.toml)"),
        );
        let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
        let wheel_with_cuda = libtorch.join("lib/libtorch_cuda.so").exists()
            && libtorch.join("../nvidia/nccl/include/nccl.h").exists();
        assert_eq!(
            has_nccl(),
            wheel_with_cuda,
            "libtorch at {}",
            libtorch.display()
        );
    }

    #[test]
    fn buckets_keep_kinds_apart_and_respect_the_cap() {
        let t = |n: i64, kind| Tensor::zeros([n], (kind, Device::Cpu));
        let tensors = [
            t(10, Kind::Float),
            t(10, Kind::Float),
            t(30, Kind::Float),
            t(4, Kind::Double),
            t(100, Kind::Float),
        ];
        // cap 100 bytes: 40 + 40 fit, 120 goes alone (larger than the cap), a kind change breaks.
        assert_eq!(
            buckets(&tensors, 100),
            vec![vec![0, 1], vec![2], vec![3], vec![4]]
        );
        let flat = flatten(&tensors, &[0, 1]);
        assert_eq!(flat.size(), [20]);
    }

    #[test]
    fn unflatten_writes_each_tensor_its_slice() {
        let a = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let tensors = [a.shallow_clone(), b.shallow_clone()];
        let flat = Tensor::arange(7, (Kind::Float, Device::Cpu));
        unflatten_into(&flat, &tensors, &[0, 1]);
        assert_eq!(
            Vec::<f32>::try_from(a.reshape([-1])).unwrap(),
            [0., 1., 2., 3.]
        );
        assert_eq!(Vec::<f32>::try_from(b).unwrap(), [4., 5., 6.]);
    }
}
