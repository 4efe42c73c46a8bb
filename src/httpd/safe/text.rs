//! C strings httpd hands over.

use std::ffi::{c_char, CStr};

/// The bytes of `s` (NULL reads as empty).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives `'a`.
pub unsafe fn c_bytes<'a>(s: *const c_char) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(s) }.to_bytes()
}
