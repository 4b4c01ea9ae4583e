//! The container's filesystem (DESIGN.md, sync point 4): private propagation, a
//! staging tmpfs, the rootfs bound into it, the plan's mounts applied in order,
//! then pivot_root with the old root detached.
//!
//! Every mount target is resolved with openat2(RESOLVE_IN_ROOT) against the new
//! root, so a symlink inside the rootfs can never send a mount onto the host; the
//! mount itself goes through the resolved descriptor (/proc/self/fd/N).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::{chdir, mkdir, pivot_root};
use tsbox_core::{Mount, MountKind, Plan, Report, RootfsSpec, Step};

use crate::fail::{Result, StepExt};
use crate::trace::{trace, Trace};

/// Where the new root is assembled: a tmpfs over /tmp in our private mount
/// namespace (the host's /tmp is untouched), as bubblewrap does.
const STAGING: &str = "/tmp";
const NEWROOT: &str = "/tmp/root";

/// Host paths the container is built from, opened while the child still has
/// the caller's credentials (a 0700 directory on the way stays reachable) and
/// before the staging tmpfs could hide any of them.
pub struct Sources {
    rootfd: OwnedFd,
    binds: Vec<Option<OwnedFd>>,
}

pub fn open_sources(plan: &Plan, tr: &Trace) -> Result<Sources> {
    // Nothing we mount may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .step_path(Step::MountPropagation, "/", || "make every mount private (MS_REC|MS_PRIVATE)".into())?;
    trace!(tr, "mount propagation: / private, recursive");
    let RootfsSpec::Path { path: rootfs, .. } = &plan.rootfs;
    let rootfd = open(rootfs.as_str(), OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .step_path(Step::OpenRootfs, rootfs, || "open the rootfs directory".into())?;
    let binds = plan
        .mounts
        .iter()
        .map(|m| match &m.kind {
            MountKind::Bind { source, .. } => open(source.as_str(), OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .map(Some)
                .step_path(Step::OpenSource, source, || format!("open the source of the mount on {}", m.target)),
            _ => Ok(None),
        })
        .collect::<Result<Vec<Option<OwnedFd>>>>()?;
    Ok(Sources { rootfd, binds })
}

pub fn build_root(plan: &Plan, sources: Sources, tr: &Trace) -> Result<()> {
    let RootfsSpec::Path { path: rootfs, readonly } = &plan.rootfs;
    let Sources { rootfd, binds: sources } = sources;
    mount(Some("tmpfs"), STAGING, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0700,size=64k"))
        .step_path(Step::Staging, STAGING, || "mount the staging tmpfs".into())?;
    mkdir(NEWROOT, Mode::from_bits_truncate(0o755)).step_path(Step::Staging, NEWROOT, || "create the new root's mount point".into())?;

    mount(Some(fd_path(rootfd.as_raw_fd()).as_str()), NEWROOT, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .step_path(Step::BindRootfs, rootfs, || "bind the rootfs (recursively) as the new root".into())?;
    if *readonly {
        make_readonly(NEWROOT, true).step_path(Step::BindRootfs, rootfs, || "make the root read-only".into())?;
    }
    trace!(tr, "rootfs: {rootfs} bound on the new root{}", if *readonly { ", read-only" } else { "" });
    drop(rootfd);

    let root = open(NEWROOT, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .step_path(Step::BindRootfs, NEWROOT, || "open the new root".into())?;
    for (m, source) in plan.mounts.iter().zip(sources) {
        apply(root.as_raw_fd(), m, source).map_err(|r| if r.path.is_none() { r.path(m.target.clone()) } else { r })?;
        trace!(tr, "{}", describe(m));
    }
    drop(root);

    // pivot_root(".", ".") stacks the old root on the new one; detaching it
    // leaves no path back to the host and needs no directory in the rootfs.
    chdir(NEWROOT).step_path(Step::PivotRoot, NEWROOT, || "enter the new root".into())?;
    pivot_root(".", ".").step_path(Step::PivotRoot, rootfs, || "pivot_root into the rootfs".into())?;
    umount2(".", MntFlags::MNT_DETACH).step_path(Step::PivotRoot, "/", || "detach the old root".into())?;
    chdir("/").step_path(Step::PivotRoot, "/", || "enter the new root".into())?;
    trace!(tr, "pivot_root: {rootfs} is /, old root detached");
    Ok(())
}

fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

fn describe(m: &Mount) -> String {
    let mut flags = Vec::new();
    for (on, name) in [(m.readonly, "ro"), (m.nosuid, "nosuid"), (m.nodev, "nodev"), (m.noexec, "noexec")] {
        if on {
            flags.push(name);
        }
    }
    let flags = if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(",")) };
    match &m.kind {
        MountKind::Bind { source, recursive } => {
            format!("mount: bind{} {source} on {}{flags}", if *recursive { " (recursive)" } else { "" }, m.target)
        }
        MountKind::Fs { fstype, data } => {
            format!("mount: {fstype} on {}{flags}{}", m.target, data.as_deref().map(|d| format!(" [{d}]")).unwrap_or_default())
        }
        MountKind::Symlink { link } => format!("symlink: {} -> {link}", m.target),
        MountKind::Dir { mode } => format!("mkdir: {} ({mode:o})", m.target),
    }
}

fn ms_flags(m: &Mount) -> MsFlags {
    let mut f = MsFlags::empty();
    f.set(MsFlags::MS_RDONLY, m.readonly);
    f.set(MsFlags::MS_NOSUID, m.nosuid);
    f.set(MsFlags::MS_NODEV, m.nodev);
    f.set(MsFlags::MS_NOEXEC, m.noexec);
    f
}

fn apply(root: RawFd, m: &Mount, source: Option<OwnedFd>) -> Result<()> {
    let target = m.target.as_str();
    match &m.kind {
        MountKind::Dir { mode } => {
            mkdir_all(root, target, *mode)?;
            Ok(())
        }
        MountKind::Symlink { link } => {
            let (parent, name) = split(target)?;
            let dir = mkdir_all(root, parent, 0o755)?;
            match nix::unistd::symlinkat(link.as_str(), &dir, name) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(e) => Err(Report::new(Step::Mount, e as i32).path(target).detail(format!("create the symlink {target} -> {link}"))),
            }
        }
        MountKind::Fs { fstype, data } => {
            let at = mkdir_all(root, target, 0o755)?;
            mount(Some(fstype.as_str()), fd_path(at.as_raw_fd()).as_str(), Some(fstype.as_str()), ms_flags(m), data.as_deref())
                .step_path(Step::Mount, target, || format!("mount {fstype} on {target}"))
        }
        MountKind::Bind { source: src_path, recursive } => {
            let src = source.expect("bind mounts have their source opened up front");
            let is_dir = fstat(&src)
                .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
                .step_path(Step::OpenSource, src_path, || "stat the mount source".into())?;
            let at = if is_dir { mkdir_all(root, target, 0o755)? } else { touch(root, target)? };
            let mut flags = MsFlags::MS_BIND;
            flags.set(MsFlags::MS_REC, *recursive);
            mount(Some(fd_path(src.as_raw_fd()).as_str()), fd_path(at.as_raw_fd()).as_str(), None::<&str>, flags, None::<&str>)
                .step_path(Step::Mount, target, || format!("bind {src_path} on {target}"))?;
            // A bind takes the source mount's flags; ours are applied on top,
            // through the new mount (the old descriptor names what is under it).
            if !ms_flags(m).is_empty() {
                let bound = resolve(root, target, OFlag::O_PATH)?;
                set_attrs(bound.as_raw_fd(), m, *recursive)
                    .step_path(Step::Mount, target, || format!("apply ro/nosuid/nodev/noexec to the bind of {src_path}"))?;
            }
            Ok(())
        }
    }
}

fn split(target: &str) -> Result<(&str, &str)> {
    let t = target.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) if i + 1 < t.len() => Ok((if i == 0 { "/" } else { &t[..i] }, &t[i + 1..])),
        _ => Err(Report::new(Step::Mount, libc::EINVAL).path(target).detail("a mount target must be an absolute path below /")),
    }
}

// openat2(2) is newer than nix's wrappers for it; the struct is three u64s.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` as if `root` were "/": `..`, absolute symlinks and everything else
/// stay inside it.
fn resolve(root: RawFd, path: &str, flags: OFlag) -> Result<OwnedFd> {
    resolve_raw(root, path, flags).step_path(Step::Mount, path, || "resolve the mount target inside the rootfs".into())
}

fn resolve_raw(root: RawFd, path: &str, flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
    let c = CString::new(path.trim_start_matches('/')).map_err(|_| Errno::EINVAL)?;
    let c = if c.as_bytes().is_empty() { CString::new(".").unwrap() } else { c };
    let how = OpenHow { flags: (flags | OFlag::O_CLOEXEC).bits() as u64, mode: 0, resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    // SAFETY: valid C string and struct for the duration of the call.
    let fd = unsafe { libc::syscall(libc::SYS_openat2, root, c.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>()) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Resolves `path` inside `root`, creating missing directories along it.
fn mkdir_all(root: RawFd, path: &str, mode: u32) -> Result<OwnedFd> {
    match resolve_raw(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(Report::new(Step::Mount, e as i32).path(path).detail("resolve the mount point inside the rootfs")),
    }
    let (parent, name) = split(path)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Report::new(Step::Mount, e as i32).path(path).detail("create the missing mount point")),
    }
    resolve(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

/// Resolves the file `path` inside `root`, creating an empty one if missing.
fn touch(root: RawFd, path: &str) -> Result<OwnedFd> {
    match resolve_raw(root, path, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(Report::new(Step::Mount, e as i32).path(path).detail("resolve the mount point inside the rootfs")),
    }
    let (parent, name) = split(path)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    match nix::fcntl::openat(&dir, name, OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::from_bits_truncate(0o644)) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Report::new(Step::Mount, e as i32).path(path).detail("create the missing file mount point")),
    }
    resolve(root, path, OFlag::O_PATH)
}

// mount_setattr(2): add attributes to a mount (tree) without the remount rule
// that every locked flag be repeated.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: u32 = 0x8000;

fn mount_setattr(fd: RawFd, path: &str, attr_set: u64, recursive: bool) -> std::result::Result<(), Errno> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr { attr_set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let mut flags = if path.is_empty() { libc::AT_EMPTY_PATH as u32 } else { 0 };
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: valid C string and struct for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_mount_setattr, fd, c.as_ptr(), flags, &attr as *const MountAttr, std::mem::size_of::<MountAttr>()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn set_attrs(fd: RawFd, m: &Mount, recursive: bool) -> std::result::Result<(), Errno> {
    let mut attrs = 0;
    for (on, a) in [(m.readonly, MOUNT_ATTR_RDONLY), (m.nosuid, MOUNT_ATTR_NOSUID), (m.nodev, MOUNT_ATTR_NODEV), (m.noexec, MOUNT_ATTR_NOEXEC)] {
        if on {
            attrs |= a;
        }
    }
    match mount_setattr(fd, "", attrs, recursive) {
        Err(Errno::ENOSYS) => remount_bind(&fd_path(fd), ms_flags(m)),
        r => r,
    }
}

/// Makes the mount at `path` (and, when `recursive`, every mount below it)
/// read-only.
fn make_readonly(path: &str, recursive: bool) -> std::result::Result<(), Errno> {
    match mount_setattr(libc::AT_FDCWD, path, MOUNT_ATTR_RDONLY, recursive) {
        // Kernels before 5.12: the top mount only.
        Err(Errno::ENOSYS) => remount_bind(path, MsFlags::MS_RDONLY),
        r => r,
    }
}

/// MS_REMOUNT|MS_BIND keeping the flags the mount already has: in a user
/// namespace the kernel refuses a remount that would clear a locked flag.
fn remount_bind(path: &str, add: MsFlags) -> std::result::Result<(), Errno> {
    let st = nix::sys::statvfs::statvfs(path)?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | add;
    use nix::sys::statvfs::FsFlags;
    for (have, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(have) {
            flags |= ms;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gives_parent_and_leaf() {
        assert_eq!(split("/dev/null").unwrap(), ("/dev", "null"));
        assert_eq!(split("/proc").unwrap(), ("/", "proc"));
        assert_eq!(split("/a/b/").unwrap(), ("/a", "b"));
        assert!(split("/").is_err());
    }

    #[test]
    fn describe_names_flags() {
        let m = Mount {
            target: "/sys".into(),
            kind: MountKind::Fs { fstype: "sysfs".into(), data: None },
            readonly: true,
            nosuid: true,
            nodev: false,
            noexec: false,
        };
        assert_eq!(describe(&m), "mount: sysfs on /sys (ro,nosuid)");
    }
}
