//! The C++ shim's error channel (`csrc/shim_error.h`): a failed call returns non-zero and leaves its
//! message here, per thread.

extern "C" {
    fn medqa_last_error() -> *const std::os::raw::c_char;
}

/// The message of this thread's last failed shim call.
pub(crate) fn last_error() -> String {
    // SAFETY: the shim returns a NUL-terminated thread-local string that lives until the next call.
    unsafe { std::ffi::CStr::from_ptr(medqa_last_error()) }
        .to_string_lossy()
        .into_owned()
}
