//! System calls newer than nix's wrappers: openat2, open_tree, move_mount,
//! mount_setattr. Each returns an owned descriptor or an Errno.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

fn cstr(path: &str) -> Result<CString, Errno> {
    CString::new(path).map_err(|_| Errno::EINVAL)
}

fn fd_result(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: a new descriptor from the kernel that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` as if `root` were "/": `..`, absolute symlinks and everything
/// else stay inside it.
pub fn open_in_root(root: RawFd, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// As [`open_in_root`], but a symlink anywhere on the way is ELOOP (a last
/// one too, unless `flags` has O_PATH|O_NOFOLLOW: then the link itself).
pub fn open_in_root_no_symlinks(root: RawFd, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
}

fn openat2(root: RawFd, path: &str, flags: OFlag, resolve: u64) -> Result<OwnedFd, Errno> {
    let rel = path.trim_start_matches('/');
    let c = cstr(if rel.is_empty() { "." } else { rel })?;
    let how = OpenHow {
        flags: (flags | OFlag::O_CLOEXEC).bits() as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: valid C string and struct for the duration of the call.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
}

const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;

/// A detached copy of the mount tree at `path` (recursive when asked).
pub fn open_tree_clone(path: &str, recursive: bool) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: valid C string for the duration of the call.
    fd_result(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) })
}

const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// Attaches the detached tree `tree` on the directory or file `target`.
pub fn move_mount_onto(tree: RawFd, target: RawFd) -> Result<(), Errno> {
    let empty = cstr("")?;
    // SAFETY: valid C strings for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            empty.as_ptr(),
            target,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
/// The atime mode's bits, cleared when one is set.
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Sets the propagation (MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE)
/// of the mount at `fd`, and of every mount below it when `recursive`.
pub fn mount_setattr_propagation(fd: RawFd, propagation: u64, recursive: bool) -> Result<(), Errno> {
    setattr(
        fd,
        MountAttr {
            attr_set: 0,
            attr_clr: 0,
            propagation,
            userns_fd: 0,
        },
        recursive,
    )
}

/// Sets attributes of the mount at `fd` (and every mount below it when
/// `recursive`) in one call, without the remount rule that every locked flag
/// be repeated: `attr_set`, after clearing `attr_clr` (MOUNT_ATTR_ATIME_MASK
/// with an atime mode in `attr_set`: the kernel's rule).
pub fn mount_setattr(fd: RawFd, attr_set: u64, attr_clr: u64, recursive: bool) -> Result<(), Errno> {
    setattr(
        fd,
        MountAttr {
            attr_set,
            attr_clr,
            propagation: 0,
            userns_fd: 0,
        },
        recursive,
    )
}

/// Makes the detached tree `fd` an idmapped mount with the maps of `userns`.
pub fn mount_setattr_idmap(fd: RawFd, userns: RawFd, recursive: bool) -> Result<(), Errno> {
    setattr(
        fd,
        MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns as u64,
        },
        recursive,
    )
}

fn setattr(fd: RawFd, attr: MountAttr, recursive: bool) -> Result<(), Errno> {
    let empty = cstr("")?;
    let flags = libc::AT_EMPTY_PATH as u32 | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: valid C string and struct for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}
