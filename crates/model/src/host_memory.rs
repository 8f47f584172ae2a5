//! How the host allocator treats the large tensors of a CPU step (`csrc/host_memory.cpp`): glibc
//! unmaps every freed block above 32 MiB, so each step's logits, their gradient and the embedding
//! gradient came back as fresh pages, faulted in and zeroed by the kernel, every step. Binaries that
//! run the model call [`keep_freed_blocks`] first; `MEDQA_HOST_MEMORY=system` leaves glibc's defaults.

/// The environment variable that opts out.
pub const OPT_OUT: &str = "MEDQA_HOST_MEMORY";

/// What the process's host allocator does with freed large blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMemory {
    /// Kept in the heap for the next allocation (glibc, set here).
    Kept,
    /// Left to the C library's defaults (opted out, or not glibc).
    System,
}

impl HostMemory {
    /// The name the run manifests and benchmarks record.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::System => "system",
        }
    }
}

static CHOSEN: std::sync::OnceLock<HostMemory> = std::sync::OnceLock::new();

/// What this process chose ([`HostMemory::System`] when nothing called [`keep_freed_blocks`]).
pub fn current() -> HostMemory {
    CHOSEN.get().copied().unwrap_or(HostMemory::System)
}

/// Makes glibc keep freed blocks (one arena for all threads, no mmap for large blocks, no trimming),
/// unless `MEDQA_HOST_MEMORY` is `system`. Call before the first tensor and the first thread: blocks
/// mapped earlier are still unmapped when freed, and a thread keeps the arena it already has.
pub fn keep_freed_blocks() -> HostMemory {
    *CHOSEN.get_or_init(|| {
        if std::env::var(OPT_OUT).is_ok_and(|v| v.eq_ignore_ascii_case("system")) {
            return HostMemory::System;
        }
        // SAFETY: plain call to mallopt through the shim; no arguments.
        match unsafe { crate::ffi::medqa_keep_freed_host_memory() } {
            1 => HostMemory::Kept,
            _ => HostMemory::System,
        }
    })
}

/// Bytes the C library holds in blocks it mapped with mmap, where it can tell (glibc 2.33+).
pub fn mmapped_bytes() -> Option<u64> {
    // SAFETY: plain call to mallinfo2 through the shim; no arguments.
    u64::try_from(unsafe { crate::ffi::medqa_host_mmapped_bytes() }).ok()
}
