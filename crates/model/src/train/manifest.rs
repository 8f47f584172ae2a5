//! `manifest.json`: everything needed to repeat a run — resolved config, command line, seed, git commit,
//! tool versions and hashes of the inputs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputHash {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub tool_version: String,
    pub command_line: Vec<String>,
    pub seed: u64,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
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

/// The variables [`Manifest::environment`] records.
const NUMERIC_ENVIRONMENT: &[&str] = &[
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "NVIDIA_TF32_OVERRIDE",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "MEDQA_HOST_MEMORY",
    "LIBTORCH",
];

/// Those of [`NUMERIC_ENVIRONMENT`] that `lookup` finds.
fn numeric_environment(
    lookup: impl Fn(&str) -> Option<String>,
) -> std::collections::BTreeMap<String, String> {
    NUMERIC_ENVIRONMENT
        .iter()
        .filter_map(|&k| lookup(k).map(|v| (k.to_owned(), v)))
        .collect()
}

/// The processor's name and widest vector instructions from `/proc/cpuinfo`'s text.
fn cpu_of(cpuinfo: &str) -> serde_json::Value {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vector = [
        ("avx512_bf16", "AVX-512 BF16"),
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
    ]
    .into_iter()
    .find(|(flag, _)| has(flag))
    .map(|(_, name)| name);
    serde_json::json!({
        "cpu": field("model name"),
        "cpu_vector_instructions": vector,
        "cpu_cores": cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
    })
}

/// [`Manifest::host`] of this machine; the GPUs through `nvidia-smi` where the run is on CUDA.
fn host(device: tch::Device) -> serde_json::Value {
    let mut host = cpu_of(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
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
        let inputs = inputs.iter().map(|p| hash_path(p)).collect::<Result<_>>()?;
        Ok(Self::with_hashes(
            tool,
            tool_version,
            seed,
            device,
            config,
            inputs,
            1,
        ))
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
    ) -> Self {
        let (git_commit, git_dirty) = git_state();
        Self {
            tool: tool.to_owned(),
            tool_version: tool_version.to_owned(),
            command_line: std::env::args().collect(),
            seed,
            git_commit,
            git_dirty,
            versions: serde_json::json!({
                "medqa-model": env!("CARGO_PKG_VERSION"),
                "tch": "0.24.0",
                "libtorch_cuda_available": tch::Cuda::is_available(),
                "cuda_devices": tch::Cuda::device_count(),
                "cudnn": tch::Cuda::cudnn_is_available(),
                "num_threads": tch::get_num_threads(),
                "host_memory": crate::host_memory::current().name(),
            }),
            device: crate::device::describe(device),
            config,
            effective_config: serde_json::Value::Null,
            inputs,
            started_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            world_size: Some(world_size),
            host: host(device),
            environment: numeric_environment(|k| std::env::var(k).ok()),
        }
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        crate::fsutil::write_json(&run_dir.join("manifest.json"), self)
    }
}

/// Where an output that is not a training run came from (`qa-finetune predict`'s record): a manifest's
/// fields — command line, git commit, versions, machine, numeric environment, the inputs' hashes — but
/// the seed and the configuration, which such a tool does not have (its record holds its settings).
pub fn provenance(
    tool: &str,
    tool_version: &str,
    device: tch::Device,
    inputs: &[&Path],
) -> Result<serde_json::Value> {
    let manifest = Manifest::new(
        tool,
        tool_version,
        0,
        device,
        serde_json::Value::Null,
        inputs,
    )?;
    let mut record = serde_json::to_value(manifest)?;
    if let Some(fields) = record.as_object_mut() {
        for training_only in ["seed", "config", "effective_config", "world_size"] {
            fields.remove(training_only);
        }
    }
    Ok(record)
}

/// SHA-256 of a file, or of a directory's files in name order (path and content both count).
pub fn hash_path(path: &Path) -> Result<InputHash> {
    let mut hasher = Sha256::new();
    let mut bytes = 0;
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    for file in &files {
        if path.is_dir() {
            hasher.update(
                file.strip_prefix(path)
                    .unwrap_or(file)
                    .to_string_lossy()
                    .as_bytes(),
            );
        }
        bytes += fsutil::hash_file_into(&mut hasher, file)?;
    }
    let digest = hasher.finalize();
    Ok(InputHash {
        path: path.display().to_string(),
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        bytes,
    })
}

fn collect_files(path: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    if path.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            collect_files(&entry?.path(), out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn git_state() -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    let commit = run(&["rev-parse", "HEAD"]).map(|o| String::from_utf8_lossy(&o).trim().to_owned());
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).map(|o| !o.is_empty());
    (commit, dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_and_the_numeric_environment_are_read() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 9R14\n";
        assert_eq!(
            cpu_of(cpuinfo),
            serde_json::json!({"cpu": "AMD EPYC 9R14", "cpu_vector_instructions": "AVX-512 BF16", "cpu_cores": 2})
        );
        assert_eq!(
            cpu_of("flags : sse avx2")["cpu_vector_instructions"],
            "AVX2"
        );
        let env = numeric_environment(|k| (k == "OMP_NUM_THREADS").then(|| "1".to_owned()));
        assert_eq!(
            env.into_iter().collect::<Vec<_>>(),
            vec![("OMP_NUM_THREADS".to_owned(), "1".to_owned())]
        );
    }
}
