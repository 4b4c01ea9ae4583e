//! A detached container's log, kept bounded. Its stdout and stderr are one
//! pipe (one, so that their order is kept, as when they shared the file),
//! and the monitor copies what comes through it to `container.log` in the
//! state directory, which is /run, memory shared with the rest of the host:
//! a container written straight to a file there could fill it. Each file
//! holds at most `log_max_size` bytes; a full one becomes `container.log.1`
//! (replacing the one before), as Docker's json-file log does with
//! `max-file=2`, so a container's log takes at most twice its limit. Lines
//! stay whole across a rotation: an unfinished last line (up to 4 KiB) is
//! written once it ends, or when the container does.
//!
//! The monitor stays small and single-threaded: one fixed buffer, a
//! non-blocking read end polled with its other descriptors, and a write to
//! a regular file, which never waits on the container.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use tsbox_core::{Report, SandboxPlan, Step};

const LOG: &CStr = c"container.log";
const OLD: &CStr = c"container.log.1";
const NEXT: &CStr = c"container.log.next";

/// The size of the one buffer the monitor copies through: a default pipe's
/// capacity, read at once.
const CHUNK: usize = 64 * 1024;

/// Where the capped writer's bytes go: the log file, which it can replace
/// by an empty one when it is full (a trait, so that its unit tests need no
/// files).
pub trait Sink {
    fn write_all(&mut self, data: &[u8]) -> Result<(), Errno>;
    /// Keeps the full file as the old one and starts an empty one.
    fn rotate(&mut self) -> Result<(), Errno>;
}

/// Writes to a [`Sink`] at most `max` bytes per file, rotating when one is
/// full; when it cannot rotate (the state directory refuses a file), it
/// keeps the current one full and counts what it drops.
pub struct Capped<S> {
    pub sink: S,
    max: u64,
    /// Bytes in the current file.
    size: u64,
    dropped: u64,
    rotating: bool,
    /// The last line so far, not ended yet (at most PENDING bytes): written
    /// with its end, so that a rotation never starts a file in the middle
    /// of a line a read cut in two.
    pending: Vec<u8>,
}

/// The longest unfinished line kept back; a longer one is written as it
/// comes (and may be cut by a rotation, as a line longer than a file is).
const PENDING: usize = 4096;

impl<S: Sink> Capped<S> {
    pub fn new(sink: S, max: u64, size: u64) -> Self {
        Capped {
            sink,
            max: max.max(1),
            size,
            dropped: 0,
            rotating: true,
            pending: Vec::new(),
        }
    }

    /// What a read brought: its whole lines now, an unfinished last one
    /// once it ends (or the container does).
    pub fn write(&mut self, mut data: &[u8]) {
        if !self.pending.is_empty() {
            let Some(i) = data.iter().position(|b| *b == b'\n') else {
                if self.pending.len() + data.len() <= PENDING {
                    self.pending.extend_from_slice(data);
                } else {
                    let head = std::mem::take(&mut self.pending);
                    self.lines(&head);
                    self.lines(data);
                }
                return;
            };
            let head = std::mem::take(&mut self.pending);
            self.line(&head, &data[..=i]);
            data = &data[i + 1..];
        }
        let whole = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.lines(&data[..whole]);
        let tail = &data[whole..];
        if tail.len() <= PENDING {
            self.pending.extend_from_slice(tail);
        } else {
            self.lines(tail);
        }
    }

    /// One line, `head` then `end` (which ends it), in one file when it fits in one.
    fn line(&mut self, head: &[u8], end: &[u8]) {
        let len = (head.len() + end.len()) as u64;
        if len > self.max.saturating_sub(self.size) && len <= self.max && self.size > 0 && !self.next_file() {
            self.dropped += len;
            return;
        }
        self.lines(head);
        self.lines(end);
    }

    /// The current file is full: the next one, or false (counting from now
    /// on what is dropped) when there can be none.
    fn next_file(&mut self) -> bool {
        if !self.rotating || self.sink.rotate().is_err() {
            self.rotating = false;
            return false;
        }
        self.size = 0;
        true
    }

    /// Whole lines (or what cannot wait: see PENDING), rotating at line ends.
    fn lines(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.max.saturating_sub(self.size);
            if data.len() as u64 <= room {
                self.put(data);
                return;
            }
            // Up to the last line end that fits: lines stay whole in one
            // file, unless one is longer than a file (cut at the limit).
            let n = match data[..room as usize].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if self.size == 0 => room as usize,
                None => 0,
            };
            self.put(&data[..n]);
            data = &data[n..];
            if !self.next_file() {
                self.dropped += data.len() as u64;
                return;
            }
        }
    }

    fn put(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.sink.write_all(data) {
            Ok(()) => self.size += data.len() as u64,
            Err(_) => self.dropped += data.len() as u64,
        }
    }

    /// The container has ended: what was dropped, if anything, is said at
    /// the end of the log (past the limit: one line).
    pub fn finish(&mut self) {
        let last = std::mem::take(&mut self.pending);
        self.lines(&last);
        if self.dropped > 0 {
            let line = format!(
                "tsbox: the log reached its limit of {} bytes; {} bytes were dropped\n",
                self.max, self.dropped
            );
            let _ = self.sink.write_all(line.as_bytes());
        }
    }
}

/// The log files in the state directory.
pub struct Files {
    dir: OwnedFd,
    file: OwnedFd,
}

impl Sink for Files {
    fn write_all(&mut self, mut data: &[u8]) -> Result<(), Errno> {
        while !data.is_empty() {
            match nix::unistd::write(&self.file, data) {
                Ok(0) => return Err(Errno::ENOSPC),
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The empty file is made first under another name, then put in place:
    /// a failure at any step leaves the full file where it was (as the
    /// current one) and no other.
    fn rotate(&mut self) -> Result<(), Errno> {
        let _ = nix::unistd::unlinkat(&self.dir, NEXT, nix::unistd::UnlinkatFlags::NoRemoveDir);
        let next = nix::fcntl::openat(
            &self.dir,
            NEXT,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_APPEND | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        if let Err(e) = nix::fcntl::renameat(&self.dir, LOG, &self.dir, OLD) {
            let _ = nix::unistd::unlinkat(&self.dir, NEXT, nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        if let Err(e) = nix::fcntl::renameat(&self.dir, NEXT, &self.dir, LOG) {
            // The full file back in its place (the older one is gone), nothing of the new one left.
            let _ = nix::fcntl::renameat(&self.dir, OLD, &self.dir, LOG);
            let _ = nix::unistd::unlinkat(&self.dir, NEXT, nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        self.file = next;
        // The monitor's own stderr (--trace) follows the log.
        point_stdio_at(self.file.as_fd());
        Ok(())
    }
}

/// A detached container's log, as the monitor keeps it.
pub struct Log {
    /// The read end of the container's stdout and stderr, non-blocking.
    pipe: OwnedFd,
    /// Until the pipe's last writer has closed it.
    pub open: bool,
    writer: Capped<Files>,
    buf: Box<[u8]>,
}

impl Log {
    /// Before the clone: a pipe becomes this process's stdout and stderr,
    /// for the child to inherit, when the plan bounds a detached
    /// container's log (None otherwise: the attached path is untouched).
    /// The helper's stdout is the log file, as Node opened it.
    pub fn start(plan: &SandboxPlan) -> Result<Option<Log>, Report> {
        let (Some(max), true, Some(control)) = (plan.log_max_size, plan.detach, plan.control.as_deref()) else {
            return Ok(None);
        };
        let dir = std::path::Path::new(control).parent().unwrap_or(std::path::Path::new("/"));
        let failed = |e: Errno, what: &str| Report::new(Step::Start, e as i32).detail(what.to_string());
        let state_dir = nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| failed(e, "open the state directory for the container's log").path(dir.display().to_string()))?;
        // SAFETY: the helper's stdout is open (Node gave it the log file).
        let stdout = unsafe { BorrowedFd::borrow_raw(1) };
        let file = fcntl(stdout, FcntlArg::F_DUPFD_CLOEXEC(3))
            .map_err(|e| failed(e, "keep the container's log file (a copy of the helper's stdout, fd 1)"))?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        let file = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(file) };
        let size = nix::sys::stat::fstat(&file).map(|s| s.st_size as u64).unwrap_or(0);
        let (rd, wr) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| failed(e, "make the pipe of the container's output"))?;
        // The container's end blocks, as a file's writes would: only ours is non-blocking.
        let _ = fcntl(&wr, FcntlArg::F_SETFL(OFlag::empty()));
        point_stdio_at(wr.as_fd());
        Ok(Some(Log {
            pipe: rd,
            open: true,
            writer: Capped::new(Files { dir: state_dir, file }, max, size),
            buf: vec![0u8; CHUNK].into_boxed_slice(),
        }))
    }

    /// After the clone: the child has the pipe; the helper's stdout and
    /// stderr are the log file again, so that the pipe's writers are the
    /// container's alone.
    pub fn cloned(&self) {
        point_stdio_at(self.writer.sink.file.as_fd());
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// One read (the pipe is readable) and its write to the log: how many
    /// bytes came, 0 when none did.
    pub fn pump(&mut self) -> usize {
        loop {
            return match nix::unistd::read(&self.pipe, &mut self.buf) {
                Ok(0) => {
                    self.open = false;
                    0
                }
                Ok(n) => {
                    self.writer.write(&self.buf[..n]);
                    n
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => 0,
                // A lasting error: the pipe is taken as ended, not polled again.
                Err(_) => {
                    self.open = false;
                    0
                }
            };
        }
    }

    /// The container has ended: what it wrote before is in the pipe, read
    /// to the end. At most the pipe's capacity and a chunk: a writer outside
    /// the container's pid namespace (one that shares the host's) may still
    /// write, and never holds the monitor here.
    pub fn finish(&mut self) {
        let capacity = fcntl(&self.pipe, FcntlArg::F_GETPIPE_SZ).map_or(CHUNK, |n| n as usize);
        let mut budget = capacity + CHUNK;
        while self.open && budget > 0 {
            match self.pump() {
                0 => break,
                n => budget = budget.saturating_sub(n),
            }
        }
        self.writer.finish();
    }
}

impl Drop for Log {
    /// However the helper goes on (a setup that failed before the clone
    /// included), its stdout and stderr are the log file again, not a pipe
    /// whose reader is gone.
    fn drop(&mut self) {
        self.cloned();
    }
}

/// Makes `fd` this process's stdout and stderr.
fn point_stdio_at(fd: BorrowedFd<'_>) {
    for to in [1, 2] {
        // SAFETY: dup2 onto this process's own standard descriptors.
        unsafe { libc::dup2(fd.as_raw_fd(), to) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files in memory: the current one last.
    #[derive(Default)]
    struct Mem {
        files: Vec<Vec<u8>>,
        refuse_rotation: bool,
    }

    impl Sink for Mem {
        fn write_all(&mut self, data: &[u8]) -> Result<(), Errno> {
            if self.files.is_empty() {
                self.files.push(Vec::new());
            }
            self.files.last_mut().unwrap().extend_from_slice(data);
            Ok(())
        }
        fn rotate(&mut self) -> Result<(), Errno> {
            if self.refuse_rotation {
                return Err(Errno::EACCES);
            }
            self.files.push(Vec::new());
            Ok(())
        }
    }

    fn capped(max: u64) -> Capped<Mem> {
        Capped::new(Mem::default(), max, 0)
    }

    #[test]
    fn under_the_limit_everything_is_in_one_file() {
        let mut c = capped(100);
        c.write(b"one\n");
        c.write(b"two\n");
        c.finish();
        assert_eq!(c.sink.files, vec![b"one\ntwo\n".to_vec()]);
    }

    #[test]
    fn a_full_file_rotates_at_a_line_end_and_no_file_passes_the_limit() {
        let mut c = capped(10);
        for _ in 0..20 {
            c.write(b"abcd\n");
        }
        assert!(c.sink.files.len() > 2);
        for f in &c.sink.files {
            assert!(f.len() <= 10, "a file of {} bytes", f.len());
            assert!(f.ends_with(b"\n"), "{:?} does not end a line", String::from_utf8_lossy(f));
        }
        let all: Vec<u8> = c.sink.files.concat();
        assert_eq!(all, b"abcd\n".repeat(20), "nothing is lost or repeated across rotations");
    }

    #[test]
    fn a_line_longer_than_a_file_is_cut_at_the_limit() {
        let mut c = capped(4);
        c.write(b"x\n0123456789");
        c.finish();
        assert_eq!(
            c.sink.files,
            vec![b"x\n".to_vec(), b"0123".to_vec(), b"4567".to_vec(), b"89".to_vec()]
        );
    }

    #[test]
    fn a_line_split_across_reads_stays_in_one_file() {
        let mut c = capped(8);
        c.write(b"abc\nde");
        c.write(b"f\n");
        c.write(b"gh\n");
        assert_eq!(c.sink.files, vec![b"abc\ndef\n".to_vec(), b"gh\n".to_vec()]);
    }

    #[test]
    fn a_line_split_across_reads_where_the_file_fills_starts_the_next_file() {
        // "184394" cut by the reads as "18" | "4394\n...": the file has no
        // room for the whole line, which goes whole into the next one.
        let mut c = capped(10);
        c.write(b"1843\n18");
        c.write(b"4394\n1");
        c.write(b"84395\n");
        c.finish();
        assert_eq!(c.sink.files, vec![b"1843\n".to_vec(), b"184394\n".to_vec(), b"184395\n".to_vec()]);
        for f in &c.sink.files {
            assert!(f.len() <= 10);
        }
    }

    #[test]
    fn an_unfinished_last_line_is_written_at_the_end() {
        let mut c = capped(100);
        c.write(b"one\ntw");
        c.write(b"o");
        assert_eq!(c.sink.files, vec![b"one\n".to_vec()]);
        c.finish();
        assert_eq!(c.sink.files, vec![b"one\ntwo".to_vec()]);
    }

    #[test]
    fn a_file_that_had_output_counts_toward_the_limit() {
        let before = Mem {
            files: vec![b"12345\n".to_vec()],
            ..Mem::default()
        };
        let mut c = Capped::new(before, 8, 6);
        c.write(b"abc\n");
        assert_eq!(c.sink.files, vec![b"12345\n".to_vec(), b"abc\n".to_vec()]);
    }

    #[test]
    fn without_rotation_it_stops_at_the_limit_and_says_what_it_dropped() {
        let mut c = capped(10);
        c.sink.refuse_rotation = true;
        c.write(b"0123456\n");
        c.write(b"abcdef\n");
        c.write(b"more\n");
        c.finish();
        assert_eq!(c.sink.files.len(), 1);
        assert_eq!(
            String::from_utf8_lossy(&c.sink.files[0]),
            "0123456\ntsbox: the log reached its limit of 10 bytes; 12 bytes were dropped\n"
        );
    }
}
