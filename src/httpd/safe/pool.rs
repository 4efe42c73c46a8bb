//! APR pools: memory that lives exactly as long as httpd's request,
//! configuration or process it belongs to.

use std::ffi::{c_char, c_void, CString};
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use super::super::ffi;
use super::guard;

/// A live pool for `'p`.
#[derive(Clone, Copy)]
pub struct Pool<'p> {
    raw: NonNull<ffi::apr_pool_t>,
    _life: PhantomData<&'p ffi::apr_pool_t>,
}

/// A type for which all-zero bytes are a valid value, so it can live in
/// shared memory that is only zeroed.
///
/// # Safety
/// All-zero bytes must be a valid `Self`, and `Self` must be usable from
/// several processes at once (atomics only, no pointers).
pub unsafe trait Zeroable: Sync {}

impl<'p> Pool<'p> {
    /// # Safety
    /// `raw` is NULL or a pool that stays live for `'p`.
    pub unsafe fn from_raw(raw: *mut ffi::apr_pool_t) -> Option<Pool<'p>> {
        NonNull::new(raw).map(|raw| Pool { raw, _life: PhantomData })
    }

    pub fn raw(self) -> *mut ffi::apr_pool_t {
        self.raw.as_ptr()
    }

    /// Moves `value` into the pool: it is dropped when the pool is cleared
    /// or destroyed (end of request, restart), never earlier.
    pub fn own<T: 'p>(self, value: T) -> &'p mut T {
        extern "C" fn drop_boxed<T>(data: *mut c_void) -> ffi::apr_status_t {
            // SAFETY: `data` came from Box::into_raw below; the pool runs
            // each cleanup once.
            guard((), || drop(unsafe { Box::from_raw(data.cast::<T>()) }));
            ffi::APR_SUCCESS as ffi::apr_status_t
        }
        let ptr = Box::into_raw(Box::new(value));
        // SAFETY: the pool is live; the cleanup frees `ptr` exactly once,
        // when the pool goes, which is after 'p.
        unsafe {
            ffi::apr_pool_cleanup_register(
                self.raw(),
                ptr.cast(),
                Some(drop_boxed::<T>),
                Some(ffi::apr_pool_cleanup_null),
            );
            &mut *ptr
        }
    }

    /// `bytes` copied into the pool as a NUL-terminated C string (an
    /// interior NUL only shortens it), for httpd to keep.
    pub fn bytes(self, bytes: &[u8]) -> *mut c_char {
        // SAFETY: apr_pstrmemdup copies `len` bytes and adds the NUL.
        unsafe { ffi::apr_pstrmemdup(self.raw(), bytes.as_ptr().cast(), bytes.len() as ffi::apr_size_t) }
    }

    pub fn str(self, s: &str) -> *mut c_char {
        self.bytes(s.as_bytes())
    }

    /// `n` zeroed `T`s in anonymous shared memory owned by the pool: made
    /// before httpd forks its children, they map the same pages. Empty
    /// without asking APR when `n` is 0.
    pub fn shared_zeroed<T: Zeroable>(self, n: usize) -> Result<&'p [T], String> {
        const { assert!(align_of::<T>() <= 8) } // APR's segments are page-aligned
        if n == 0 || size_of::<T>() == 0 {
            return Ok(&[]);
        }
        let size = n * size_of::<T>();
        let mut shm: *mut ffi::apr_shm_t = std::ptr::null_mut();
        // SAFETY: anonymous shared memory owned by the pool (destroyed with it).
        let status = unsafe { ffi::apr_shm_create(&mut shm, size as ffi::apr_size_t, std::ptr::null(), self.raw()) };
        if status != ffi::APR_SUCCESS as ffi::apr_status_t {
            return Err(format!("cannot create {size} bytes of shared memory (APR status {status})"));
        }
        // SAFETY: the segment is `size` bytes, page-aligned and lives as long
        // as the pool; zeroed, it holds `n` valid `T`s (Zeroable).
        unsafe {
            let base = ffi::apr_shm_baseaddr_get(shm).cast::<u8>();
            std::ptr::write_bytes(base, 0, size);
            Ok(std::slice::from_raw_parts(base.cast::<T>(), n))
        }
    }

    /// Starts `program` as httpd's own piped logs do (mod_log_config's
    /// `CustomLog "|..."`): `ap_open_piped_log` makes a pipe in the pool,
    /// starts the program on its read end and registers it with the parent,
    /// which starts it again whenever it dies, on the same pipe. Clearing the
    /// pool stops the program and closes the pipe.
    ///
    /// Returns a duplicate of the write end (close-on-exec, so no logging
    /// program inherits it), valid across respawns; closing it is ours.
    /// Only the parent may call this, from post_config.
    pub fn piped_log(self, program: &str) -> io::Result<File> {
        let c_program = CString::new(program)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the command contains a NUL byte"))?;
        // SAFETY: the pool is live; httpd copies the string into it.
        let piped = unsafe { ffi::ap_open_piped_log(self.raw(), c_program.as_ptr()) };
        if piped.is_null() {
            // httpd has logged why (AH00104 and the like).
            return Err(io::Error::other("httpd could not start the program"));
        }
        let mut fd: ffi::apr_os_file_t = -1;
        // SAFETY: `piped` is live; its write end is an open apr_file_t.
        let status = unsafe { ffi::apr_os_file_get(&mut fd, ffi::ap_piped_log_write_fd(piped)) };
        if status != ffi::APR_SUCCESS as ffi::apr_status_t || fd < 0 {
            return Err(io::Error::other("no descriptor for the pipe"));
        }
        // SAFETY: the piped log keeps `fd` open until the pool is cleared,
        // which cannot happen during this call.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        Ok(File::from(owned))
    }
}
