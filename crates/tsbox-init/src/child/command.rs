//! The last step: execve of the user's command, looked up in the container's PATH
//! the way execvp does, with the errno that tells 126 from 127.

use std::ffi::CString;

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use tsbox_core::{Report, Step};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Strings for execve, built before any of them is needed so that an argument
/// with a NUL byte fails as a bad value, not halfway through.
pub struct Command {
    argv: Vec<CString>,
    env: Vec<CString>,
    path: String,
}

impl Command {
    pub fn new(argv: &[String], env: &[String]) -> Result<Command, Report> {
        let bad = |what: &str, s: &str| {
            Report::new(Step::Exec, libc::EINVAL)
                .path(s.to_string())
                .detail(format!("{what} contains a NUL byte"))
        };
        let argv = argv
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| bad("an argument", a)))
            .collect::<Result<Vec<_>, _>>()?;
        if argv.is_empty() {
            return Err(Report::new(Step::Exec, libc::EINVAL).detail("the command is empty"));
        }
        let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string();
        let env = env
            .iter()
            .map(|e| CString::new(e.as_str()).map_err(|_| bad("an environment variable", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Command { argv, env, path })
    }

    pub fn name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }

    /// Replaces this process; returns only on failure.
    pub fn exec(&self) -> Report {
        reset_signals();
        let name = self.argv[0].to_bytes();
        let err = if name.contains(&b'/') {
            execve(&self.argv[0], &self.argv, &self.env)
        } else {
            self.exec_in_path(name)
        };
        let shown = shorten(&self.name());
        Report::new(Step::Exec, err as i32)
            .path(shown.clone())
            .detail(format!("execute {shown}"))
    }

    fn exec_in_path(&self, name: &[u8]) -> Errno {
        // No directory entry has a name longer than NAME_MAX: not found,
        // whatever ENAMETOOLONG a lookup of it would say.
        if name.len() > 255 {
            return Errno::ENOENT;
        }
        // As execvp: a permission error is remembered and reported when no later
        // directory has the command; ENOENT/ENOTDIR just move on.
        let mut seen_eacces = false;
        for dir in self.path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let mut full = Vec::with_capacity(dir.len() + 1 + name.len());
            full.extend_from_slice(dir.as_bytes());
            full.push(b'/');
            full.extend_from_slice(name);
            let Ok(full) = CString::new(full) else { continue };
            match execve(&full, &self.argv, &self.env) {
                Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
                Errno::EACCES => seen_eacces = true,
                other => return other,
            }
        }
        if seen_eacces {
            Errno::EACCES
        } else {
            Errno::ENOENT
        }
    }
}

/// A command name as shown in a report: at most 200 characters.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_string(),
    }
}

fn execve(path: &CString, argv: &[CString], env: &[CString]) -> Errno {
    match nix::unistd::execve(path, argv, env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// The helper blocked every signal before clone; the command starts with none
/// blocked and every disposition at its default.
pub fn reset_signals() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            // SAFETY: installing SIG_DFL is always sound.
            let _ = unsafe { sigaction(sig, &dfl) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Exit status for a command that could not be started, Docker's convention.
pub fn exit_code_for(report: &Report) -> i32 {
    tsbox_core::exit_code_for(report.step.as_str(), report.errno)
}
