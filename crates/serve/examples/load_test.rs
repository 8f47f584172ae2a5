//! A bounded load on a running `serve` over the loopback (`scripts/bench/serve.sh`): every document of a
//! folder (`name.xx.txt`) sent to `/extract` `--repeat` times by `--concurrency` clients at once;
//! prints one JSON line: requests, errors, seconds, documents/s, and latency p50/p99 in ms.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn main() -> anyhow::Result<()> {
    let url = format!("{}/extract", arg("--url", "http://127.0.0.1:8090"));
    let dir = PathBuf::from(arg("--docs", "docs"));
    let concurrency: usize = arg("--concurrency", "4").parse()?;
    let repeat: usize = arg("--repeat", "1").parse()?;
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let lang = name.rsplit('.').nth(1).unwrap_or("en").to_owned();
        docs.push(
            serde_json::json!({"id": name, "text": std::fs::read_to_string(&path)?, "lang": lang})
                .to_string(),
        );
    }
    docs.sort();
    let work: Vec<&String> = (0..repeat).flat_map(|_| docs.iter()).collect();
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(work.len()));
    let errors = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency.max(1) {
            s.spawn(|| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = work.get(i) else { break };
                    let t = Instant::now();
                    let ok = agent
                        .post(&url)
                        .content_type("application/json")
                        .send(body.as_str())
                        .map(|mut r| {
                            r.status().as_u16() == 200 && r.body_mut().read_to_string().is_ok()
                        })
                        .unwrap_or(false);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies
                        .lock()
                        .expect("not poisoned")
                        .push(t.elapsed().as_secs_f64() * 1e3);
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut l = latencies.into_inner().expect("not poisoned");
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": work.len(), "concurrency": concurrency, "errors": errors.load(Ordering::Relaxed),
            "seconds": seconds, "docs_per_sec": work.len() as f64 / seconds,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99),
        })
    );
    Ok(())
}
