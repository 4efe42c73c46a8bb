//! Server records: the main server and its virtual hosts, one list.

use std::marker::PhantomData;
use std::panic::Location;
use std::ptr::NonNull;

use super::super::ffi;
use super::log::{self, Level};
use super::text::c_bytes;

/// A live `server_rec` for `'s`.
#[derive(Clone, Copy)]
pub struct Server<'s> {
    raw: NonNull<ffi::server_rec>,
    _life: PhantomData<&'s ffi::server_rec>,
}

impl<'s> Server<'s> {
    /// # Safety
    /// `raw` is NULL or a server_rec of a configuration that stays live for
    /// `'s`; httpd changes it only while reading the configuration, on the
    /// thread that reads it.
    pub unsafe fn from_raw(raw: *mut ffi::server_rec) -> Option<Server<'s>> {
        NonNull::new(raw).map(|raw| Server { raw, _life: PhantomData })
    }

    pub fn raw(self) -> *mut ffi::server_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &'s ffi::server_rec {
        // SAFETY: live for 's (from_raw's contract); read-only here.
        unsafe { &*self.raw.as_ptr() }
    }

    pub(super) fn module_config(self) -> *mut ffi::ap_conf_vector_t {
        self.rec().module_config
    }

    pub fn is_virtual(self) -> bool {
        self.rec().is_virtual != 0
    }

    /// `ServerName` (empty when unset).
    pub fn hostname(self) -> &'s [u8] {
        // SAFETY: NULL or a string httpd keeps for the configuration.
        unsafe { c_bytes(self.rec().server_hostname) }
    }

    /// How operators name this server on the status page and in messages:
    /// "main server", or a virtual host's "name:port" (the port of its
    /// ServerName, else of its address; none when neither has one).
    pub fn label(self) -> String {
        if !self.is_virtual() {
            return "main server".into();
        }
        let name = String::from_utf8_lossy(self.hostname());
        let rec = self.rec();
        let port = match (rec.port, rec.addrs) {
            // SAFETY: addrs is NULL or the vhost's live address list.
            (0, addrs) if !addrs.is_null() => unsafe { (*addrs).host_port },
            (port, _) => port,
        };
        match port {
            0 => name.into_owned(),
            port => format!("{name}:{port}"),
        }
    }

    /// This server and every one after it in httpd's list (from the main
    /// server: all of them, main server first).
    pub fn list(self) -> impl Iterator<Item = Server<'s>> {
        // SAFETY: `next` is NULL or the next live server of the same list.
        std::iter::successors(Some(self), |s| unsafe { Server::from_raw(s.rec().next) })
    }

    /// Logs `message` for this server, with an APR/OS status when there is
    /// one (httpd filters by the server's `LogLevel icpquery:…`).
    #[track_caller]
    pub fn log(self, level: Level, status: i32, message: &str) {
        // SAFETY: this server is live.
        unsafe { log::write(self.raw(), std::ptr::null(), Location::caller(), level, status, message) }
    }
}

/// The running configuration's main server (`ap_server_conf`), from the
/// moment requests may run; `None` before httpd has set it.
pub fn main_server() -> Option<Server<'static>> {
    // SAFETY: httpd sets ap_server_conf to the live server list before
    // children serve requests or run watchdogs, and keeps it valid for as
    // long as that configuration is; 'static stands for that.
    unsafe { Server::from_raw(ffi::ap_server_conf) }
}
