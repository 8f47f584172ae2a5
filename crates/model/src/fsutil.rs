//! Re-exported so that model users keep one path for atomic writes.
pub use fsutil::write_atomic;
