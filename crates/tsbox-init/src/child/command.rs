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
        let (err, file) = if name.contains(&b'/') {
            (execve(&self.argv[0], &self.argv, &self.env), Some(self.argv[0].clone()))
        } else {
            self.exec_in_path(name)
        };
        let shown = shorten(&self.name());
        let report = Report::new(Step::Exec, err as i32)
            .path(shown.clone())
            .detail(format!("execute {shown}"));
        match file.and_then(|f| why_not(err, &f)) {
            Some((detail, hint)) => report.detail(format!("execute {shown}: {detail}")).hint(hint),
            None => report,
        }
    }

    /// As execvp; also the file that exists but would not run (ENOENT from
    /// a missing interpreter, ENOEXEC), to say why.
    fn exec_in_path(&self, name: &[u8]) -> (Errno, Option<CString>) {
        // No directory entry has a name longer than NAME_MAX: not found,
        // whatever ENAMETOOLONG a lookup of it would say.
        if name.len() > 255 {
            return (Errno::ENOENT, None);
        }
        // As execvp: a permission error is remembered and reported when no later
        // directory has the command; ENOENT/ENOTDIR just move on.
        let mut seen_eacces = false;
        for full in self.candidates(name) {
            match execve(&full, &self.argv, &self.env) {
                Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
                Errno::EACCES => seen_eacces = true,
                other => return (other, Some(full)),
            }
        }
        if seen_eacces {
            return (Errno::EACCES, None);
        }
        // Not found: unless one is there and its interpreter is not. Looked
        // for only now, off the way of a command that runs.
        let exists = self.candidates(name).find(|f| nix::sys::stat::stat(f.as_c_str()).is_ok());
        (Errno::ENOENT, exists)
    }

    /// `DIR/name` for each directory of PATH, in order.
    fn candidates<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = CString> + 'a {
        self.path.split(':').filter_map(move |dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            let mut full = Vec::with_capacity(dir.len() + 1 + name.len());
            full.extend_from_slice(dir.as_bytes());
            full.push(b'/');
            full.extend_from_slice(name);
            CString::new(full).ok()
        })
    }
}

/// Why `file`, which exists, would not run, from its first bytes (read as
/// what they are: the container's, untrusted): the interpreter of a `#!`
/// line or an ELF binary's loader that is missing (ENOENT), or a file that
/// is no program for this machine (ENOEXEC). None when that is not it.
fn why_not(err: Errno, file: &CString) -> Option<(String, &'static str)> {
    if err != Errno::ENOENT && err != Errno::ENOEXEC {
        return None;
    }
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(file.to_bytes()));
    let mut buf = vec![0u8; 4096];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)).ok()?;
    let head = &buf[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        let interp = String::from_utf8_lossy(line)
            .trim()
            .split_ascii_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        if err == Errno::ENOENT {
            return Some((
                format!(
                    "the file exists, but its interpreter {} (from its #! line) is missing in the container",
                    printable(&interp)
                ),
                "install that interpreter in the root filesystem, or change the #! line to one the container has (e.g. #!/bin/sh)",
            ));
        }
        return None;
    }
    if head.starts_with(b"\x7fELF") {
        return Some(if err == Errno::ENOENT {
            let loader = elf_interpreter(head).map(|l| format!(" {}", printable(&l))).unwrap_or_default();
            (
                format!("the file exists, but the program loader it names (its ELF interpreter{loader}) is missing in the container"),
                "the binary was built for another C library or distribution than the root filesystem has: use one built for it, or a static one",
            )
        } else {
            (
                "the file is an ELF binary this machine cannot run (another architecture?)".into(),
                "use a binary built for this machine's architecture",
            )
        });
    }
    (err == Errno::ENOEXEC).then(|| {
        (
            "the file is not a binary for this machine and has no #! line".into(),
            "a script needs a first line naming its interpreter, e.g. #!/bin/sh",
        )
    })
}

/// A name from the container as it can be shown in one line: control
/// characters escaped, at most 200 characters.
fn printable(s: &str) -> String {
    shorten(&s.chars().flat_map(char::escape_default).collect::<String>())
}

/// PT_INTERP of a 64-bit little-endian ELF file whose first bytes are
/// `head`, when they hold it: the dynamic loader the kernel would run.
fn elf_interpreter(head: &[u8]) -> Option<String> {
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| head.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    // ELFCLASS64, ELFDATA2LSB: the machines tsbox runs on.
    if head.get(4..6)? != [2, 1] {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum.min(64) {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if head.get(ph..ph + 4)? == 3u32.to_le_bytes() {
            let (off, size) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
            let bytes = head.get(off..off.checked_add(size)?)?;
            return Some(String::from_utf8_lossy(bytes.split(|b| *b == 0).next()?).into_owned());
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with `contents`, removed (with its directory) when dropped.
    struct Temp(std::path::PathBuf, CString);

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    impl std::ops::Deref for Temp {
        type Target = CString;
        fn deref(&self) -> &CString {
            &self.1
        }
    }

    fn file(name: &str, contents: &[u8]) -> Temp {
        let dir = std::env::temp_dir().join(format!("tsbox-command-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        Temp(path, c)
    }

    #[test]
    fn a_script_whose_interpreter_is_missing_says_which() {
        let f = file("script", b"#!/usr/bin/nosuchshell -e\necho hi\n");
        let (detail, hint) = why_not(Errno::ENOENT, &f).unwrap();
        assert_eq!(
            detail,
            "the file exists, but its interpreter /usr/bin/nosuchshell (from its #! line) is missing in the container"
        );
        assert!(hint.contains("#!/bin/sh"));
        // A name from the container is shown escaped.
        let f = file("evil", b"#!/bin/\x1b[31mred\n");
        assert!(why_not(Errno::ENOENT, &f).unwrap().0.contains("/bin/\\u{1b}[31mred"));
    }

    #[test]
    fn a_file_that_is_no_program_says_so_and_how_to_make_it_one() {
        let f = file("text", b"echo hi\n");
        let (detail, hint) = why_not(Errno::ENOEXEC, &f).unwrap();
        assert_eq!(detail, "the file is not a binary for this machine and has no #! line");
        assert!(hint.contains("#!/bin/sh"));
        // Not found for other reasons is left to the usual report.
        assert!(why_not(Errno::ENOENT, &f).is_none());
        assert!(why_not(Errno::EACCES, &f).is_none());
    }

    #[test]
    fn an_elf_binary_names_its_missing_loader() {
        let bytes = std::fs::read("/bin/true").unwrap();
        let loader = elf_interpreter(&bytes[..4096.min(bytes.len())]).expect("a dynamic /bin/true has PT_INTERP");
        assert!(loader.starts_with('/') && loader.contains("ld-"), "{loader}");
        let f = file("elf", &bytes);
        let (detail, _) = why_not(Errno::ENOENT, &f).unwrap();
        assert!(detail.contains(&format!("its ELF interpreter {loader}")), "{detail}");
        // Truncated or foreign headers give no name, and no panic.
        assert_eq!(elf_interpreter(&bytes[..40]), None);
        assert_eq!(elf_interpreter(b"\x7fELF\x01\x01"), None);
    }
}
