//! An image's layers applied one over another into one directory (the root
//! filesystem of an OCI bundle, `tsbox image export`), as overlayfs shows
//! them: an overlay whiteout (a 0:0 character device) removes what is below
//! it, an opaque directory (the `user.overlay.opaque` or
//! `trusted.overlay.opaque` xattr) hides what was below it.
//!
//! The layers come from the store, but what they hold is an image's: the
//! destination is only ever reached through directory descriptors opened
//! with O_NOFOLLOW and `*at` calls, so a symlink a lower layer put where an
//! upper layer has a directory is replaced, never followed.
//!
//! An export takes no more disk than the layers do: a layer's hard links
//! stay hard links (of the export's own copy, never of anything outside
//! it), a hole stays a hole (only the ranges SEEK_DATA finds are copied),
//! the file data written is capped (`Caps::max_bytes`), and the export stops
//! while its filesystem still has some space free (`Space`).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::unpack::{lstat_at, open_dir_resolved, printable, sys_err, Space, UnpackError};

/// The bounds of one export.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Most bytes of file data written.
    pub max_bytes: u64,
    /// Bytes the filesystem keeps free; None: `Space`'s default.
    pub min_free: Option<u64>,
}

impl Caps {
    /// The default cap, as `tsbox load` caps an archive: with its links and
    /// holes kept, an export writes no more than its layers hold, each at
    /// most 64 GiB of data.
    pub const MAX_BYTES: u64 = 256 << 30;
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            max_bytes: Caps::MAX_BYTES,
            min_free: None,
        }
    }
}

/// Most bytes the hard links' records of one layer take in memory; a layer
/// with more has the rest copied (under the cap on the data written).
const MAX_LINK_BYTES: u64 = 64 << 20;
/// Memory a link's record takes beside its path.
const LINK_RECORD: u64 = 96;

/// The export's copy of a layer's file with more than one link.
struct Linked {
    /// Its path in the export, and its inode there.
    rel: PathBuf,
    dev: u64,
    ino: u64,
    /// The layer's links to it not yet met.
    left: u64,
}

/// What an export carries from entry to entry.
struct Export {
    root: OwnedFd,
    privileged: bool,
    caps: Caps,
    space: Space,
    count: u64,
    written: u64,
    /// The current layer's files with more than one link, by their (dev, ino) in the layer.
    links: HashMap<(u64, u64), Linked>,
    link_bytes: u64,
}

/// unpack's report of a failed system call, for a host path (printable, as an archive's names are).
fn err(path: &Path, what: &str, e: io::Error) -> UnpackError {
    sys_err(&printable(path.as_os_str().as_bytes()), what, e)
}

fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn open_at(dir: RawFd, name: &CString, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: openat with a C string we own; the descriptor is returned owned.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW, mode) };
    check(fd)?;
    // SAFETY: a descriptor openat just returned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes `name` in `dir`, a directory with everything in it.
fn remove_at(dir: RawFd, name: &CString) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name) else { return Ok(()) };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let sub = open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        for child in entries(sub.as_raw_fd())? {
            remove_at(sub.as_raw_fd(), &child)?;
        }
        // SAFETY: unlinkat on our descriptor.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })
    } else {
        // SAFETY: unlinkat on our descriptor.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) })
    }
}

/// The names in the directory open at `fd` (without . and ..).
fn entries(fd: RawFd) -> io::Result<Vec<CString>> {
    // SAFETY: dup of our descriptor, which the Dir takes over.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    check(dup)?;
    // SAFETY: a descriptor fcntl just returned.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    let mut dir = nix::dir::Dir::from_fd(owned).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(e.file_name().to_owned());
        }
    }
    Ok(out)
}

fn opaque(path: &Path) -> bool {
    let Ok(p) = cstr(path.as_os_str().as_bytes()) else { return false };
    ["user.overlay.opaque", "trusted.overlay.opaque"].iter().any(|key| {
        let k = CString::new(*key).unwrap();
        let mut buf = [0u8; 4];
        // SAFETY: lgetxattr into a buffer we own.
        let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        n == 1 && buf[0] == b'y'
    })
}

/// Owner, mode and time of `fd` from `md` (the owner only as root).
fn set_meta(fd: RawFd, md: &std::fs::Metadata, privileged: bool) -> io::Result<()> {
    if privileged {
        // SAFETY: fchown on our descriptor; before fchmod, which it would undo for setuid bits.
        check(unsafe { libc::fchown(fd, md.uid(), md.gid()) })?;
    }
    // SAFETY: fchmod on our descriptor.
    check(unsafe { libc::fchmod(fd, md.mode() & 0o7777) })?;
    let t = [
        libc::timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec(),
        },
        libc::timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        },
    ];
    // SAFETY: futimens on our descriptor; a failure only loses the time.
    unsafe { libc::futimens(fd, t.as_ptr()) };
    Ok(())
}

/// Applies the layer directory `src` onto the directory open at `dest`,
/// which is `rel` in the export.
fn apply(src: &Path, rel: &Path, dest: RawFd, x: &mut Export) -> Result<(), UnpackError> {
    let privileged = x.privileged;
    let list = std::fs::read_dir(src).map_err(|e| err(src, "read the layer's directory", e))?;
    for entry in list {
        let entry = entry.map_err(|e| err(src, "read the layer's directory", e))?;
        let from = entry.path();
        let md = std::fs::symlink_metadata(&from).map_err(|e| err(&from, "look at the layer's entry", e))?;
        let name = cstr(entry.file_name().as_bytes()).map_err(|e| err(&from, "name", e))?;
        let ft = md.file_type();
        x.count += 1;
        x.space.take(0, 1)?;
        // A whiteout: what the layers below had here goes.
        if ft.is_char_device() && md.rdev() == 0 {
            remove_at(dest, &name).map_err(|e| err(&from, "remove what a whiteout hides", e))?;
            continue;
        }
        let existing = lstat_at(dest, &name);
        if ft.is_dir() {
            let keep = matches!(existing, Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR) && !opaque(&from);
            if !keep {
                remove_at(dest, &name).map_err(|e| err(&from, "replace what was below", e))?;
                // SAFETY: mkdirat on our descriptor.
                check(unsafe { libc::mkdirat(dest, name.as_ptr(), 0o700) }).map_err(|e| err(&from, "make the directory", e))?;
            }
            let sub = open_at(dest, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| err(&from, "open the directory", e))?;
            if !privileged {
                // Filled as its owner, whatever its mode; the mode comes after.
                // SAFETY: fchmod on our descriptor.
                unsafe { libc::fchmod(sub.as_raw_fd(), 0o700) };
            }
            {
                let _readable = Lifted::lift(&from, &md, 0o500, privileged)?;
                apply(&from, &rel.join(entry.file_name()), sub.as_raw_fd(), x)?;
            }
            set_meta(sub.as_raw_fd(), &md, privileged).map_err(|e| err(&from, "set the directory's mode", e))?;
            continue;
        }
        if existing.is_some() {
            remove_at(dest, &name).map_err(|e| err(&from, "replace what was below", e))?;
        }
        if ft.is_file() {
            let key = (md.dev(), md.ino());
            if md.nlink() > 1 && x.link(key, dest, &name) {
                continue;
            }
            let input = {
                let _readable = Lifted::lift(&from, &md, 0o400, privileged)?;
                File::open(&from).map_err(|e| err(&from, "open the layer's file", e))?
            };
            let out =
                open_at(dest, &name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600).map_err(|e| err(&from, "create the file", e))?;
            let output = File::from(out);
            x.copy(&input, &output, md.len(), &from)?;
            set_meta(output.as_raw_fd(), &md, privileged).map_err(|e| err(&from, "set the file's mode", e))?;
            if md.nlink() > 1 {
                x.remember(key, rel.join(entry.file_name()), &output, md.nlink() - 1);
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| err(&from, "read the symlink", e))?;
            let t = cstr(target.as_os_str().as_bytes()).map_err(|e| err(&from, "symlink", e))?;
            // SAFETY: symlinkat on our descriptor; the target is only text.
            check(unsafe { libc::symlinkat(t.as_ptr(), dest, name.as_ptr()) }).map_err(|e| err(&from, "make the symlink", e))?;
            if privileged {
                // SAFETY: fchownat without following the symlink.
                unsafe { libc::fchownat(dest, name.as_ptr(), md.uid(), md.gid(), libc::AT_SYMLINK_NOFOLLOW) };
            }
        } else if ft.is_fifo() || ((ft.is_char_device() || ft.is_block_device()) && privileged) {
            // SAFETY: mknodat on our descriptor.
            check(unsafe { libc::mknodat(dest, name.as_ptr(), md.mode(), md.rdev()) }).map_err(|e| err(&from, "make the node", e))?;
            let node = open_at(dest, &name, libc::O_PATH, 0).map_err(|e| err(&from, "open the node", e))?;
            if privileged {
                // SAFETY: fchownat on the node itself (AT_EMPTY_PATH on its O_PATH descriptor).
                unsafe { libc::fchownat(node.as_raw_fd(), c"".as_ptr(), md.uid(), md.gid(), libc::AT_EMPTY_PATH) };
            }
        }
    }
    Ok(())
}

impl Export {
    /// Makes `name` in `dest` a hard link to the export's copy of the
    /// layer's inode `key`, if it has one and it is still where it was made;
    /// false: the caller copies the file instead.
    fn link(&mut self, key: (u64, u64), dest: RawFd, name: &CString) -> bool {
        let Some(first) = self.links.get_mut(&key) else { return false };
        if link_beneath(self.root.as_raw_fd(), first, dest, name).is_err() {
            return false;
        }
        first.left = first.left.saturating_sub(1);
        if first.left == 0 {
            // Every link met: the record is no longer needed.
            let bytes = first.rel.as_os_str().len() as u64 + LINK_RECORD;
            self.links.remove(&key);
            self.link_bytes -= bytes;
        }
        true
    }

    /// Records the copy `file` at `rel` of the layer's inode `key`, which
    /// `left` more links name, while the records fit their bound.
    fn remember(&mut self, key: (u64, u64), rel: PathBuf, file: &File, left: u64) {
        let bytes = rel.as_os_str().len() as u64 + LINK_RECORD;
        let Ok(md) = file.metadata() else { return };
        if self.link_bytes + bytes > MAX_LINK_BYTES {
            return;
        }
        self.link_bytes += bytes;
        if let Some(old) = self.links.insert(
            key,
            Linked {
                rel,
                dev: md.dev(),
                ino: md.ino(),
                left,
            },
        ) {
            self.link_bytes -= old.rel.as_os_str().len() as u64 + LINK_RECORD;
        }
    }

    /// Copies the data of `from` (`len` bytes long) into the new, empty
    /// `to`: only the ranges SEEK_DATA finds, so a hole stays a hole, each
    /// counted against the export's cap and taken from the filesystem's
    /// free space before it is written; the length is set last.
    fn copy(&mut self, from: &File, to: &File, len: u64, shown: &Path) -> Result<(), UnpackError> {
        let (i, o) = (from.as_raw_fd(), to.as_raw_fd());
        let mut off = 0u64;
        while off < len {
            let start = match seek(i, off, libc::SEEK_DATA) {
                Ok(start) => start,
                // No data after `off`: the rest is a hole.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
                // A filesystem without SEEK_DATA: all of it is data.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => off,
                Err(e) => return Err(err(shown, "find the file's data", e)),
            };
            if start >= len {
                break;
            }
            let end = seek(i, start, libc::SEEK_HOLE).unwrap_or(len).min(len);
            let n = end - start;
            if self.written + n > self.caps.max_bytes {
                return Err(UnpackError {
                    errno: libc::EFBIG,
                    path: printable(shown.as_os_str().as_bytes()),
                    detail: format!("the export would write more than {} bytes of file data", self.caps.max_bytes),
                    hint: Some("an image this large is not exported: a likely bomb".into()),
                });
            }
            self.space.take(n, 0)?;
            copy_range(i, o, start, n).map_err(|e| err(shown, "copy the file", e))?;
            self.written += n;
            off = end;
        }
        // Holes at the end: the file still has its full length.
        to.set_len(len).map_err(|e| err(shown, "set the file's length", e))
    }
}

/// Links `name` in `dest` to `first`, reached from the export's root
/// through real directories only (no symlink, no other mount), and only if
/// what is there is still the file that was made.
fn link_beneath(root: RawFd, first: &Linked, dest: RawFd, name: &CString) -> io::Result<()> {
    let stale = || io::Error::from_raw_os_error(libc::ESTALE);
    let parent = open_dir_resolved(
        root,
        first.rel.parent().unwrap_or(Path::new("")),
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
    )?;
    let leaf = cstr(first.rel.file_name().ok_or_else(stale)?.as_bytes())?;
    match lstat_at(parent.as_raw_fd(), &leaf) {
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_dev == first.dev && st.st_ino == first.ino => {}
        _ => return Err(stale()),
    }
    // SAFETY: linkat between our descriptors, without AT_SYMLINK_FOLLOW.
    check(unsafe { libc::linkat(parent.as_raw_fd(), leaf.as_ptr(), dest, name.as_ptr(), 0) })
}

fn seek(fd: RawFd, off: u64, whence: libc::c_int) -> io::Result<u64> {
    // SAFETY: lseek on our descriptor.
    let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u64)
}

/// Copies `n` bytes at `off` of `from` to the same offset of `to`: in the
/// kernel (copy_file_range), or through a buffer where it cannot.
fn copy_range(from: RawFd, to: RawFd, off: u64, n: u64) -> io::Result<()> {
    let (mut src, mut dst) = (off as libc::loff_t, off as libc::loff_t);
    let end = off + n;
    while (src as u64) < end {
        let want = (end - src as u64).min(1 << 30) as usize;
        // SAFETY: copy_file_range between our descriptors, with offsets we own.
        let r = unsafe { libc::copy_file_range(from, &mut src, to, &mut dst, want, 0) };
        if r > 0 {
            continue;
        }
        if r == 0 {
            // The file ended early: its length is set after.
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM) => break,
            _ => return Err(e),
        }
    }
    let mut buf = vec![0u8; 1 << 16];
    while (src as u64) < end {
        let want = (end - src as u64).min(buf.len() as u64) as usize;
        // SAFETY: pread into a buffer we own.
        let got = unsafe { libc::pread(from, buf.as_mut_ptr().cast(), want, src) };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if got == 0 {
            return Ok(());
        }
        let mut done = 0usize;
        while done < got as usize {
            // SAFETY: pwrite from a buffer we own.
            let put = unsafe { libc::pwrite(to, buf[done..].as_ptr().cast(), got as usize - done, src + done as libc::off_t) };
            if put < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            done += put as usize;
        }
        src += got as libc::off_t;
    }
    Ok(())
}

/// A layer's directory or file its owner may not read (a 000 directory,
/// Fedora's 000 /etc/shadow), made readable to its owner while an
/// unprivileged export reads it, and given its mode back after (also on an
/// error; an export killed meanwhile leaves the owner's bits set). A user's
/// store has no root to override its modes, as root's store has. Only the
/// owner's bits change, and the owner is the containers' root, which
/// overrides modes in its user namespace anyway.
struct Lifted<'a> {
    path: &'a Path,
    mode: u32,
}

impl<'a> Lifted<'a> {
    fn lift(path: &'a Path, md: &std::fs::Metadata, need: u32, privileged: bool) -> Result<Option<Lifted<'a>>, UnpackError> {
        let mode = md.mode() & 0o7777;
        // SAFETY: geteuid cannot fail.
        if privileged || mode & need == need || md.uid() != unsafe { libc::geteuid() } {
            return Ok(None);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | need))
            .map_err(|e| err(path, "let its owner read the layer's entry", e))?;
        Ok(Some(Lifted { path, mode }))
    }
}

impl Drop for Lifted<'_> {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(self.path, std::fs::Permissions::from_mode(self.mode));
    }
}

/// Applies `layers` (bottom first) into the existing empty directory `dest`;
/// returns how many entries were applied.
pub fn flatten(layers: &[String], dest: &Path, privileged: bool, caps: Caps) -> Result<u64, UnpackError> {
    let d = cstr(dest.as_os_str().as_bytes()).map_err(|e| err(dest, "name", e))?;
    let root = open_at(libc::AT_FDCWD, &d, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| err(dest, "open the destination", e))?;
    let space = Space::new(
        root.as_raw_fd(),
        &printable(dest.as_os_str().as_bytes()),
        "free space on that filesystem, or export to a larger one; an export is stopped before it fills the disk",
        caps.min_free,
    )?;
    let mut x = Export {
        root,
        privileged,
        caps,
        space,
        count: 0,
        written: 0,
        links: HashMap::new(),
        link_bytes: 0,
    };
    let root = x.root.as_raw_fd();
    for layer in layers {
        // A layer's inodes are its own: a link never names another layer's file.
        x.links.clear();
        x.link_bytes = 0;
        apply(Path::new(layer), Path::new(""), root, &mut x)?;
    }
    Ok(x.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layers_win_whiteouts_remove_and_symlinks_are_replaced_not_followed() {
        let base = std::env::temp_dir().join(format!("tsbox-flatten-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (lower, upper, dest, outside) = (base.join("lower"), base.join("upper"), base.join("dest"), base.join("outside"));
        for d in [&lower, &upper, &dest, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(lower.join("kept"), "lower").unwrap();
        std::fs::write(lower.join("gone"), "lower").unwrap();
        std::fs::write(lower.join("changed"), "lower").unwrap();
        std::os::unix::fs::symlink(&outside, lower.join("dir")).unwrap();
        std::fs::create_dir(lower.join("opaque")).unwrap();
        std::fs::write(lower.join("opaque/hidden"), "lower").unwrap();
        std::fs::write(upper.join("changed"), "upper").unwrap();
        // A whiteout (needs CAP_MKNOD or the 0:0 exception, kernel 5.8).
        let wh = CString::new(upper.join("gone").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
        std::fs::create_dir(upper.join("dir")).unwrap();
        std::fs::write(upper.join("dir/file"), "upper").unwrap();
        std::fs::create_dir(upper.join("opaque")).unwrap();
        std::fs::write(upper.join("opaque/new"), "upper").unwrap();
        let p = CString::new(upper.join("opaque").as_os_str().as_bytes()).unwrap();
        let k = CString::new("user.overlay.opaque").unwrap();
        assert_eq!(unsafe { libc::setxattr(p.as_ptr(), k.as_ptr(), b"y".as_ptr().cast(), 1, 0) }, 0);

        let layers = [lower.display().to_string(), upper.display().to_string()];
        flatten(&layers, &dest, false, Caps::default()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("kept")).unwrap(), "lower");
        assert_eq!(std::fs::read_to_string(dest.join("changed")).unwrap(), "upper");
        assert!(!dest.join("gone").exists());
        assert!(std::fs::symlink_metadata(dest.join("dir")).unwrap().is_dir());
        assert_eq!(std::fs::read_to_string(dest.join("dir/file")).unwrap(), "upper");
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing went through the lower layer's symlink"
        );
        assert!(!dest.join("opaque/hidden").exists());
        assert_eq!(std::fs::read_to_string(dest.join("opaque/new")).unwrap(), "upper");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn hard_links_name_only_the_exports_own_copies() {
        let base = std::env::temp_dir().join(format!("tsbox-flatten-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (linked, between, dest, outside) = (base.join("linked"), base.join("between"), base.join("dest"), base.join("outside"));
        for d in [&linked, &between, &dest, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir(linked.join("a")).unwrap();
        std::fs::create_dir(linked.join("b")).unwrap();
        std::fs::write(linked.join("a/f"), "data").unwrap();
        std::fs::hard_link(linked.join("a/f"), linked.join("b/g")).unwrap();
        std::fs::write(outside.join("f"), "outside").unwrap();
        // A layer between two uses of the same one puts a symlink where the first copy was.
        std::os::unix::fs::symlink(&outside, between.join("a")).unwrap();
        let layers = [&linked, &between, &linked].map(|l| l.display().to_string());
        flatten(&layers, &dest, false, Caps::default()).unwrap();
        let (f, g) = (
            std::fs::metadata(dest.join("a/f")).unwrap(),
            std::fs::metadata(dest.join("b/g")).unwrap(),
        );
        assert_eq!((f.ino(), f.nlink()), (g.ino(), 2));
        assert_ne!(f.ino(), std::fs::metadata(linked.join("a/f")).unwrap().ino());
        assert_eq!(
            std::fs::metadata(outside.join("f")).unwrap().nlink(),
            1,
            "nothing outside was linked"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
