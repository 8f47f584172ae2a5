//! Progress bars for long work.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar with rate and ETA; indicatif hides it when stderr is not a terminal.
pub fn progress_bar(total: u64, start: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!(
        "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_position(start);
    bar
}

/// A spinner with the elapsed time and `msg`, ticking on its own, for work that reports no progress
/// (a library call); hidden off a terminal as the bars are.
pub fn spinner(msg: String) -> ProgressBar {
    let spinner = ProgressBar::new_spinner().with_message(msg);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
        spinner.set_style(style);
    }
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}
