//! `serve --model RUN/final [--concepts catalogue.toml] [--link-index DIR]`: the HTTP service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use model::device::DeviceChoice;
use serve::engine::{Engine, EngineConfig};
use serve::routes::{router, AppState, Limits};

/// Serve QA and concept extraction (with linking) over HTTP: medqa's JSON API and the Label Studio ML
/// backend protocol. Stops gracefully on Ctrl-C or SIGTERM (requests in flight are answered).
#[derive(Parser, Debug)]
#[command(name = "serve", version)]
struct Cli {
    /// A fine-tuned QA model directory (a qa-finetune run's final/, or one transformers wrote).
    #[arg(long)]
    model: PathBuf,
    /// A concept catalogue (configs/concepts-*.toml) for /extract and Label Studio's /predict.
    #[arg(long)]
    concepts: Option<PathBuf>,
    /// With --link-index: extracted answers come with their concepts.
    #[command(flatten)]
    link: link::LinkArgs,
    /// Overrides the catalogue's min_probability for every concept.
    #[arg(long)]
    min_probability: Option<f64>,
    /// Address to listen on (the loopback by default: put a proxy with authentication in front to
    /// offer it further).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// fp32, bf16 (autocast; for CUDA), or fp16 (autocast, for GPUs without bf16).
    #[arg(long, default_value = "fp32")]
    precision: model::autocast::Precision,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Requests that may wait for the model; more get 503.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Questions or documents of waiting requests taken into one prediction at most.
    #[arg(long, default_value_t = 512)]
    max_batch_items: usize,
    /// Bytes of one request body; a larger one gets 413.
    #[arg(long, default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// Characters of one document or context.
    #[arg(long, default_value_t = 200_000)]
    max_text_chars: usize,
    /// Questions of one /qa request, tasks of one /predict.
    #[arg(long, default_value_t = 256)]
    max_items: usize,
    /// The Label Studio task data key holding a note's language (ro, bg-BG, …); the language is
    /// detected where a task has none.
    #[arg(long, default_value = "lang")]
    lang_key: String,
    /// The model's windows and post-processing come from its medqa.json (run_qa.py's defaults for a
    /// model fine-tuned outside medqa); these flags set them.
    #[command(flatten)]
    settings: model::qa::inference::SettingsArgs,
}

fn main() -> Result<()> {
    // Before the first tensor and the first thread: large host blocks freed from here on are kept for
    // reuse, the model thread's included.
    model::host_memory::keep_freed_blocks();
    let cli = Cli::parse();
    let mut catalogue = cli
        .concepts
        .as_deref()
        .map(extract::concepts::Catalogue::load)
        .transpose()?;
    if let (Some(c), Some(p)) = (catalogue.as_mut(), cli.min_probability) {
        c.override_min_probability(p)?;
    }
    let linker = cli.link.load()?;
    let task_links = serve::task_links::TaskLinks::from_env()?;
    let device = cli.device.resolve()?;
    let (engine, info, model_thread) = Engine::start(EngineConfig {
        model: cli.model.clone(),
        device,
        precision: cli.precision,
        batch_size: cli.batch_size,
        queue: cli.queue,
        max_batch_items: cli.max_batch_items,
        catalogue: catalogue.clone(),
        settings: cli.settings.clone(),
    })?;
    let state = Arc::new(AppState {
        engine,
        info,
        catalogue,
        linker,
        link_options: cli.link.options(),
        limits: Limits {
            max_body_bytes: cli.max_body_bytes,
            max_text_chars: cli.max_text_chars,
            max_items: cli.max_items,
        },
        lang_key: cli.lang_key.clone(),
        task_links,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cli.listen))?;
        // The bound address (a port 0 becomes the one the OS chose), for scripts and tests.
        println!("serving on http://{}", listener.local_addr()?);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown())
            .await
            .context("the server failed")
    })?;
    // The router (and with it every engine handle) is gone: the model thread ends.
    model_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the model thread panicked"))?;
    eprintln!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    eprintln!("shutting down: answering the requests in flight");
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_argument_has_help() {
        test_support::assert_every_arg_has_help(<super::Cli as clap::CommandFactory>::command());
    }
}
