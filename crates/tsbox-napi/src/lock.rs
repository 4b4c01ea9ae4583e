//! Advisory file locks (flock) for state shared between tsbox processes, such
//! as the uid/gid range a container holds. The kernel drops a lock when its
//! holder dies, so a crashed tsbox never leaves a range taken.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// A held lock; `release()` (or garbage collection) unlocks and closes it.
#[napi]
pub struct FileLock {
    file: Mutex<Option<File>>,
    path: String,
}

#[napi]
impl FileLock {
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// The lock's descriptor, to hand to another process (SCM_RIGHTS): the
    /// lock is held until every copy is closed. -1 once released.
    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        self.file.lock().unwrap().as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1)
    }

    /// Closes this process's copy without removing the file: another process
    /// (a detached container's monitor) holds the lock from now on.
    #[napi]
    pub fn forget(&self) {
        self.file.lock().unwrap().take();
    }

    /// Unlocks and leaves the lock file, emptied of its note, for the next
    /// holder: for locks taken again and again (the id allocator, a block of
    /// ids). Removing a file that held data costs its final close the
    /// filesystem's eviction of its blocks: 3-7 ms on ext4 with delayed
    /// allocation (a /run that is not tmpfs), measured, against microseconds
    /// for a truncate of a file that stays.
    #[napi]
    pub fn unlock(&self) {
        if let Some(file) = self.file.lock().unwrap().take() {
            let _ = file.set_len(0);
            drop(file);
        }
    }

    /// Unlocks and removes the lock file.
    #[napi]
    pub fn release(&self) {
        if let Some(file) = self.file.lock().unwrap().take() {
            // Remove while still holding the lock, so nobody locks a file that
            // is about to vanish; a waiter that opened it re-checks the path.
            let _ = std::fs::remove_file(&self.path);
            drop(file);
        }
    }
}

/// Takes an exclusive lock on `path` without waiting, creating it (mode 0644)
/// with `note` as its contents; null when another process holds it.
#[napi]
pub fn try_lock_file(path: String, note: String) -> Result<Option<FileLock>> {
    lock_file(path, Some(note), false)
}

/// Takes a shared lock on `path` without waiting, creating it (mode 0644,
/// empty): any number of holders at once, none while an exclusive one
/// holds it (the image store's launches against its prune). Null when an
/// exclusive holder has it. Release it with `unlock()`: the file stays,
/// and nothing is written to it (its holders share it).
#[napi]
pub fn try_lock_file_shared(path: String) -> Result<Option<FileLock>> {
    lock_file(path, None, false)
}

/// As `tryLockFile`, but waits for the lock (a short critical section such as
/// the id allocator's scan); never null.
#[napi]
pub fn wait_lock_file(path: String, note: String) -> Result<FileLock> {
    lock_file(path.clone(), Some(note), true)?.ok_or_else(|| Error::from_reason(format!("lock {path}: not taken")))
}

/// An exclusive lock with `note` written in the file, or a shared one (no note).
fn lock_file(path: String, note: Option<String>, wait: bool) -> Result<Option<FileLock>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::from_reason(format!("open the lock file {path}: {e}")))?;
        // SAFETY: flock on a descriptor we own.
        let kind = if note.is_some() { libc::LOCK_EX } else { libc::LOCK_SH };
        let op = if wait { kind } else { kind | libc::LOCK_NB };
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::from_reason(format!("lock {path}: {err}")));
        }
        // The holder before us may have removed the file after we opened it:
        // only a lock on the file that is at the path now counts.
        let here = std::fs::metadata(&path).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        let ours = file.metadata().ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if here.is_none() || here != ours {
            continue;
        }
        if let Some(note) = &note {
            let mut f = &file;
            let _ = f.set_len(0);
            let _ = f.write_all(note.as_bytes());
        }
        return Ok(Some(FileLock {
            file: Mutex::new(Some(file)),
            path,
        }));
    }
}
