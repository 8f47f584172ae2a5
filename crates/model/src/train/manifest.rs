//! `manifest.json`: everything needed to repeat a run — resolved config, command line, seed, git commit,
//! tool versions and hashes of the inputs. The fields any output records (`fsutil::provenance`: command
//! line, git state, machine, numeric environment, input hashes) are shared with the tools that do not
//! train; this adds libtorch's side.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use fsutil::provenance;
pub use fsutil::provenance::{hash_path, InputHash};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub tool_version: String,
    pub command_line: Vec<String>,
    pub seed: u64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// Where the commit was read (`fsutil::provenance::CodeState`); absent in manifests written before
    /// it was kept, which read the working directory's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit_from: Option<String>,
    /// The checkout the commit was read from changed after the executable was built
    /// (`CodeState::checkout_changed_after_build`); absent when it did not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkout_changed_after_build: bool,
    /// The working directory's repository, where it is not the code's (a project holding the configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory_git: Option<serde_json::Value>,
    pub versions: serde_json::Value,
    pub device: String,
    pub config: serde_json::Value,
    /// Every setting the run used, this version's defaults included (`config` holds what the file,
    /// `--set` and the tool's own defaults gave): a later version whose defaults moved still shows what
    /// this run ran with. Absent in manifests written before it was kept, and for tools without one.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub effective_config: serde_json::Value,
    pub inputs: Vec<InputHash>,
    pub started_at_unix: u64,
    /// Data-parallel processes (1: a plain run); absent in manifests written before it was kept.
    #[serde(default)]
    pub world_size: Option<u64>,
    /// The machine, as far as it decides the numbers: the processor and its widest vector instructions
    /// (libtorch picks kernels by them, which round differently), and on CUDA the GPUs and driver.
    #[serde(default)]
    pub host: serde_json::Value,
    /// The environment variables that change numbers or kernels, where set (threads, cuBLAS's
    /// workspace, the CUDA allocator, NCCL's algorithms, TF32 overrides, visible devices).
    #[serde(default)]
    pub environment: std::collections::BTreeMap<String, String>,
}

/// [`Manifest::host`] of this machine; the GPUs through `nvidia-smi` where the run is on CUDA.
fn host(device: tch::Device) -> serde_json::Value {
    let mut host = provenance::host_cpu();
    if device.is_cuda() {
        let gpus = Command::new("nvidia-smi")
            .args([
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            });
        host["gpus"] = serde_json::json!(gpus);
    }
    host
}

impl Manifest {
    /// `config` is the resolved configuration (after overrides); `inputs` are hashed now.
    pub fn new(
        tool: &str,
        tool_version: &str,
        seed: u64,
        device: tch::Device,
        config: serde_json::Value,
        inputs: &[&Path],
    ) -> Result<Self> {
        let inputs = provenance::hash_paths(inputs)?;
        Self::with_hashes(tool, tool_version, seed, device, config, inputs, 1)
    }

    /// As [`Manifest::new`], with the inputs already hashed, for a run of `world_size` processes.
    pub fn with_hashes(
        tool: &str,
        tool_version: &str,
        seed: u64,
        device: tch::Device,
        config: serde_json::Value,
        inputs: Vec<InputHash>,
        world_size: u64,
    ) -> Result<Self> {
        let code = provenance::code_state()?;
        Ok(Self {
            tool: tool.to_owned(),
            tool_version: tool_version.to_owned(),
            command_line: std::env::args().collect(),
            seed,
            git_commit: code.git_commit,
            git_dirty: code.git_dirty,
            git_commit_from: code.git_commit_from,
            checkout_changed_after_build: code.checkout_changed_after_build,
            working_directory_git: provenance::working_directory_git(),
            versions: versions(),
            device: crate::device::describe(device),
            config,
            effective_config: serde_json::Value::Null,
            inputs,
            started_at_unix: provenance::unix_now(),
            world_size: Some(world_size),
            host: host(device),
            environment: provenance::numeric_environment(|k| std::env::var(k).ok()),
        })
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        crate::fsutil::write_json(&run_dir.join("manifest.json"), self)
    }
}

/// Where an output that is not a training run came from (`qa-finetune predict`'s and `extract`'s
/// records): `fsutil::provenance::record` with libtorch's versions, the device and its GPUs — a
/// manifest's fields but the seed and the configuration, which such a tool does not have.
pub fn provenance(
    tool: &str,
    tool_version: &str,
    device: tch::Device,
    inputs: &[&Path],
) -> Result<serde_json::Value> {
    provenance_hashed(tool, tool_version, device, provenance::hash_paths(inputs)?)
}

/// [`provenance`] for inputs hashed earlier (`fsutil::provenance::record_hashed`).
pub fn provenance_hashed(
    tool: &str,
    tool_version: &str,
    device: tch::Device,
    inputs: Vec<InputHash>,
) -> Result<serde_json::Value> {
    let mut record = provenance::record_hashed(tool, tool_version, inputs)?;
    record["versions"] = versions();
    record["device"] = crate::device::describe(device).into();
    record["host"] = host(device);
    Ok(record)
}

/// medqa's and libtorch's versions and what libtorch found.
fn versions() -> serde_json::Value {
    serde_json::json!({
        "medqa-model": env!("CARGO_PKG_VERSION"),
        "tch": "0.24.0",
        "libtorch_cuda_available": tch::Cuda::is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        "cudnn": tch::Cuda::cudnn_is_available(),
        "num_threads": tch::get_num_threads(),
        "host_memory": crate::host_memory::current().name(),
    })
}
