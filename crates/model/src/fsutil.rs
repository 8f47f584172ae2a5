//! Re-exported so that model users keep one path for atomic writes.
pub use fsutil::{
    check_output_dir, check_output_file, lock, provenance, write_atomic, write_json,
    write_json_lines,
};
