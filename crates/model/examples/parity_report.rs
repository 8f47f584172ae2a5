//! Prints how far our outputs are from `transformers`' on the reference fixtures, on any device.
//!
//!     cargo run --release -p medqa-model --example parity_report -- [--device cuda] [DIR...]
//!
//! Without DIRs it checks every model under crates/model/tests/fixtures.

use std::path::PathBuf;

use anyhow::{bail, Result};
use model::device::DeviceChoice;

fn main() -> Result<()> {
    let mut device = DeviceChoice::Auto;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device = args.next().unwrap_or_default().parse()?,
            "-h" | "--help" => {
                println!("parity_report [--device auto|cpu|cuda|cuda:N] [REFERENCE_DIR...]");
                return Ok(());
            }
            _ => dirs.push(PathBuf::from(arg)),
        }
    }
    if dirs.is_empty() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for group in ["models", "variants"] {
            let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(group))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            found.sort();
            dirs.extend(found);
        }
    }
    let device = device.resolve()?;
    println!("device: {device:?}\n");
    println!("| reference | output | max abs diff |\n|---|---|---|");
    let mut worst: f64 = 0.0;
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        for d in model::parity::compare_reference_dir(dir, device)? {
            println!("| {name} | {} | {:.2e} |", d.output, d.max_abs_diff);
            worst = worst.max(d.max_abs_diff);
        }
    }
    println!("\nworst: {worst:.2e}");
    // CUDA kernels (TF32 off by default in libtorch for matmul) are looser than CPU's; 1e-4 flags real bugs.
    let tolerance = if device.is_cuda() { 1e-4 } else { 1e-5 };
    if worst > tolerance {
        bail!("outputs differ from transformers by more than {tolerance:e}");
    }
    Ok(())
}
