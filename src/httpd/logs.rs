//! Opening `ICPQueryLog` targets at startup: files and piped programs, each
//! once per configuration.

use std::collections::HashMap;

use super::safe::Pool;
use crate::logfile::{LogFile, Sink};
use crate::settings::LogTarget;

/// Opens each log once per configuration (startup and every restart):
/// servers that name the same file, or the same piped command, share it.
pub struct LogOpener {
    pconf: Pool<'static>,
    opened: HashMap<LogTarget, Sink>,
}

impl LogOpener {
    /// Used from post_config only: in the parent, before any child exists.
    pub fn new(pconf: Pool<'static>) -> LogOpener {
        LogOpener { pconf, opened: HashMap::new() }
    }

    pub fn open(&mut self, target: &LogTarget) -> std::io::Result<Sink> {
        if let Some(sink) = self.opened.get(target) {
            return Ok(sink.clone());
        }
        let sink = match target {
            LogTarget::File(path) => Sink::file(LogFile::open_file(path)?),
            LogTarget::Pipe(program) => Sink::pipe(self.pconf.piped_log(program)?),
        };
        self.opened.insert(target.clone(), sink.clone());
        Ok(sink)
    }
}

/// Why startup stops: the log named by `target` could not be opened.
pub fn open_error(target: Option<&LogTarget>, e: &std::io::Error) -> String {
    match target {
        Some(LogTarget::Pipe(program)) => format!("ICPQueryLog: cannot start piped log \"|{program}\": {e}"),
        Some(target) => format!("ICPQueryLog: cannot open \"{target}\" for appending: {e}"),
        None => format!("ICPQueryLog: {e}"),
    }
}
