//! A directive being read: httpd's `cmd_parms`.

use std::ffi::{c_char, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::ptr::NonNull;

use super::super::ffi;
use super::{module, Pool, Server};

/// The parameters httpd passes to a directive handler, live for `'c` (the
/// configuration being read).
#[derive(Clone, Copy)]
pub struct Cmd<'c> {
    raw: NonNull<ffi::cmd_parms>,
    _life: PhantomData<&'c mut ffi::cmd_parms>,
}

impl<'c> Cmd<'c> {
    /// # Safety
    /// `raw` is NULL or the cmd_parms httpd passed to the running directive
    /// handler; the configuration it reads lives for `'c`.
    pub unsafe fn from_raw(raw: *mut ffi::cmd_parms) -> Option<Cmd<'c>> {
        NonNull::new(raw).map(|raw| Cmd { raw, _life: PhantomData })
    }

    fn parms(&self) -> &'c ffi::cmd_parms {
        // SAFETY: live for the handler call (from_raw's contract).
        unsafe { &*self.raw.as_ptr() }
    }

    /// The configuration pool: what is allocated here lives as long as the
    /// configuration.
    pub fn pool(self) -> Pool<'c> {
        // SAFETY: cmd->pool is the live configuration pool.
        unsafe { Pool::from_raw(self.parms().pool) }.expect("a directive has a pool")
    }

    /// The server (main or virtual host) being configured.
    pub fn server(self) -> Server<'c> {
        // SAFETY: cmd->server is the live server being configured.
        unsafe { Server::from_raw(self.parms().server) }.expect("a directive has a server")
    }

    /// The `cmd_data` of the command table entry (our directives store an
    /// index there).
    pub fn data(self) -> usize {
        self.parms().info as usize
    }

    /// `path` under ServerRoot unless absolute (httpd's rule for file
    /// names in directives), or `None` if httpd cannot make it so.
    pub fn server_root_relative(self, path: &str) -> Option<PathBuf> {
        let c_path = CString::new(path).ok()?;
        // SAFETY: a live pool and a C string; NULL when it cannot be made.
        let full = unsafe { ffi::ap_server_root_relative(self.parms().pool, c_path.as_ptr()) };
        // SAFETY: NULL or a C string in the configuration pool.
        (!full.is_null())
            .then(|| String::from_utf8_lossy(unsafe { CStr::from_ptr(full) }.to_bytes()).into_owned().into())
    }

    /// Reads the directives inside the block being handled with `config` as
    /// their `mconfig` (this module's slot of a fresh per-directory vector).
    /// httpd's error message, if any, is returned as it is.
    pub fn walk_block(self, config: *mut c_void) -> Result<(), *const c_char> {
        let vector = module::per_dir_vector(self.pool(), config);
        // SAFETY: the block's directive tree and cmd are live; httpd reads
        // the block as it reads any other, calling our handlers.
        let error = unsafe { ffi::ap_walk_config((*self.parms().directive).first_child, self.raw.as_ptr(), vector) };
        if error.is_null() {
            Ok(())
        } else {
            Err(error)
        }
    }
}
