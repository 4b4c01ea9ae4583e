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

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::unpack::{lstat_at, printable, sys_err, UnpackError};

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

/// Applies the layer directory `src` onto the directory open at `dest`.
fn apply(src: &Path, dest: RawFd, privileged: bool, count: &mut u64) -> Result<(), UnpackError> {
    let list = std::fs::read_dir(src).map_err(|e| err(src, "read the layer's directory", e))?;
    for entry in list {
        let entry = entry.map_err(|e| err(src, "read the layer's directory", e))?;
        let from = entry.path();
        let md = std::fs::symlink_metadata(&from).map_err(|e| err(&from, "look at the layer's entry", e))?;
        let name = cstr(entry.file_name().as_bytes()).map_err(|e| err(&from, "name", e))?;
        let ft = md.file_type();
        *count += 1;
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
            apply(&from, sub.as_raw_fd(), privileged, count)?;
            set_meta(sub.as_raw_fd(), &md, privileged).map_err(|e| err(&from, "set the directory's mode", e))?;
            continue;
        }
        if existing.is_some() {
            remove_at(dest, &name).map_err(|e| err(&from, "replace what was below", e))?;
        }
        if ft.is_file() {
            let mut input = File::open(&from).map_err(|e| err(&from, "open the layer's file", e))?;
            let out =
                open_at(dest, &name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600).map_err(|e| err(&from, "create the file", e))?;
            let mut output = File::from(out);
            io::copy(&mut input, &mut output).map_err(|e| err(&from, "copy the file", e))?;
            set_meta(output.as_raw_fd(), &md, privileged).map_err(|e| err(&from, "set the file's mode", e))?;
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

/// Applies `layers` (bottom first) into the existing empty directory `dest`;
/// returns how many entries were applied.
pub fn flatten(layers: &[String], dest: &Path, privileged: bool) -> Result<u64, UnpackError> {
    let d = cstr(dest.as_os_str().as_bytes()).map_err(|e| err(dest, "name", e))?;
    let root = open_at(libc::AT_FDCWD, &d, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| err(dest, "open the destination", e))?;
    let mut count = 0;
    for layer in layers {
        apply(Path::new(layer), root.as_raw_fd(), privileged, &mut count)?;
    }
    Ok(count)
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
        flatten(&layers, &dest, false).unwrap();
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
}
