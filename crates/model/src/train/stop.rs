//! Stopping a run on request: SIGTERM (what SLURM sends before a time limit or a preemption, and what
//! torchrun passes on to its workers), SIGINT (Ctrl-C) or SIGUSR1 (`sbatch --signal=USR1@300`) asks
//! the loop to checkpoint the step it is on and end, so that `--resume` goes on from there instead of
//! from the last scheduled checkpoint. A second SIGTERM or SIGINT ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The exit status of a process whose run stopped on request: `EX_TEMPFAIL` ("try again"), which a
/// job script can tell from a failure (1) and answer with `--resume`.
pub const EXIT_STATUS: u8 = 75;

/// Routes the three signals to the request (once per process; the training binaries call it).
pub fn install() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = (|| {
            for signal in [SIGTERM, SIGINT] {
                // Registered first, so that it sees the flag as the previous signal left it.
                signal_hook::flag::register_conditional_shutdown(signal, 1, &REQUESTED)?;
            }
            for signal in [SIGTERM, SIGINT, SIGUSR1] {
                signal_hook::flag::register(signal, &REQUESTED)?;
            }
            Ok::<_, std::io::Error>(())
        })()
        .context("cannot install the signal handlers");
    });
    result
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Asks for a stop, as the signals do.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Withdraws the request (for a process that trains again after a stop, as tests do).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
