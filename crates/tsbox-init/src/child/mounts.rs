//! The container's filesystem (DESIGN.md, sync point 4): private propagation, a
//! staging tmpfs, the root assembled in it (an overlay over the rootfs, or the
//! rootfs bound read-only or read-write), the plan's mounts applied in order,
//! then pivot_root with the old root detached.
//!
//! Every mount target is resolved with openat2(RESOLVE_IN_ROOT) against the new
//! root, so a symlink inside the rootfs can never send a mount onto the host; the
//! mount itself goes through the resolved descriptor. At and under /proc, /sys
//! and /dev no symlink is followed at all ([`pinned`]), so that none can move
//! a kernel filesystem, or the masks over it, somewhere else in the rootfs.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::statfs::FsType;
use nix::unistd::{chdir, mkdir, pivot_root};
use tsbox_core::{DeviceNode, Mount, MountKind, Propagation, Report, RootMode, RootfsSpec, SandboxPlan, Step};

use crate::fail::{Result, StepExt};
use crate::sys::{self, fd_path};
use crate::trace::{trace, Trace};

/// Where the new root is assembled: a tmpfs over /tmp in our private mount
/// namespace (the host's /tmp is untouched), as bubblewrap does. The overlay's
/// upper layer, the scratch directories and the generated files live on it
/// and vanish with the container; its size (the plan's `storage_size`) bounds
/// everything the container writes outside its volumes. The paths under it
/// are what the container's mountinfo shows of its root: fixed names, never
/// the host's layout.
const STAGING: &str = "/tmp";
pub const NEWROOT: &str = "/tmp/root";
const LOWER: &str = "/tmp/lower";
const EMPTY: &str = "/tmp/empty";
const UPPER: &str = "/tmp/upper";
const WORK: &str = "/tmp/work";
const FILES: &str = "/tmp/files";
const SCRATCH: &str = "/tmp/scratch";
/// A tmpfs of its own, not nodev, for the device nodes of `linux.devices`:
/// each is bound onto its target, and nothing else of it is reachable.
const DEVICES: &str = "/tmp/devices";

/// A host path to mount from: opened by path, or a detached (idmapped) tree the
/// helper made.
enum Source {
    Path(OwnedFd),
    Tree(OwnedFd),
}

impl Source {
    fn fd(&self) -> &OwnedFd {
        match self {
            Source::Path(fd) | Source::Tree(fd) => fd,
        }
    }

    /// Mounts this source on the (resolved) `target`.
    fn attach(&self, target: RawFd, recursive: bool) -> std::result::Result<(), Errno> {
        match self {
            Source::Tree(tree) => sys::move_mount_onto(tree.as_raw_fd(), target),
            Source::Path(fd) => {
                let mut flags = MsFlags::MS_BIND;
                flags.set(MsFlags::MS_REC, recursive);
                mount(
                    Some(fd_path(fd.as_raw_fd()).as_str()),
                    fd_path(target).as_str(),
                    None::<&str>,
                    flags,
                    None::<&str>,
                )
            }
        }
    }
}

/// Host paths the container is built from, opened while the child still has
/// the caller's credentials (a 0700 directory on the way stays reachable) and
/// before the staging tmpfs could hide any of them.
pub struct Sources {
    root: Source,
    /// An image's lower layers under the root, top first.
    layers: Vec<Source>,
    binds: Vec<Option<Source>>,
    devnull: OwnedFd,
}

pub fn open_sources(plan: &SandboxPlan, trees: Vec<OwnedFd>, tr: &Trace) -> Result<Sources> {
    // Nothing we mount may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).step_path(
        Step::MountPropagation,
        "/",
        || "make every mount private (MS_REC|MS_PRIVATE)".into(),
    )?;
    trace!(tr, "mount propagation: / private, recursive");
    let mut trees = trees.into_iter();
    let mut take = |idmap: bool, step: Step, path: &str, flags: OFlag, what: &str| -> Result<Source> {
        if idmap {
            return trees.next().map(Source::Tree).ok_or_else(|| {
                Report::new(step, libc::EPROTO)
                    .path(path)
                    .detail("the helper sent fewer idmapped trees than the plan needs")
            });
        }
        open(path, flags | OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map(Source::Path)
            .step_path(step, path, || what.to_string())
    };
    let RootfsSpec::Path {
        path: rootfs,
        idmap,
        layers,
        ..
    } = &plan.rootfs;
    let root = take(*idmap, Step::OpenRootfs, rootfs, OFlag::O_DIRECTORY, "open the rootfs directory")?;
    let layers = layers
        .iter()
        .map(|l| take(*idmap, Step::OpenRootfs, l, OFlag::O_DIRECTORY, "open an image layer's directory"))
        .collect::<Result<Vec<_>>>()?;
    let binds = plan
        .mounts
        .iter()
        .map(|m| match &m.kind {
            MountKind::Bind { source, idmap, .. } => take(
                *idmap,
                Step::OpenSource,
                source,
                OFlag::empty(),
                &format!("open the source of the mount on {}", m.target),
            )
            .map(Some),
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let devnull = open("/dev/null", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .step_path(Step::OpenSource, "/dev/null", || "open /dev/null to mask paths with".into())?;
    Ok(Sources {
        root,
        layers,
        binds,
        devnull,
    })
}

/// Builds the new root and pivots into it. `enter_cgroup` runs once, before
/// the first mount on /sys/fs/cgroup (whose cgroupfs must show the container's
/// cgroup namespace) or, without one, before pivot_root.
/// Returns a pool's sandbox's `/proc/sys/kernel`, opened on its proc mount
/// before /proc/sys is made read-only (see [`super::ahead::fork_expected`]).
pub fn build_root(
    plan: &SandboxPlan,
    sources: Sources,
    tr: &Trace,
    chan: &crate::channel::Channel,
    enter_cgroup: &mut dyn FnMut() -> Result<()>,
) -> Result<Option<OwnedFd>> {
    let RootfsSpec::Path {
        path: rootfs, mode, nodev, ..
    } = &plan.rootfs;
    let Sources {
        root: rootsrc,
        layers,
        binds,
        devnull,
    } = sources;

    let staging_data = match plan.storage_size {
        Some(bytes) => format!("mode=0700,size={bytes}"),
        None => "mode=0700".to_string(),
    };
    mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(staging_data.as_str()),
    )
    .step_path(Step::Staging, STAGING, || "mount the staging tmpfs".into())?;
    for dir in [NEWROOT, FILES, SCRATCH] {
        mkdir(dir, Mode::from_bits_truncate(0o755)).step_path(Step::Staging, dir, || "create a staging directory".into())?;
    }
    let at = |p: &str| open(p, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty());
    // The host's own root (no rootfs given) keeps its submounts: a recursive
    // bind, read-only. A rootfs directory goes under an overlay, whose
    // mountinfo shows the staging paths rather than where the directory is:
    // with a writable upper layer on the staging tmpfs (the default), or none
    // (read-only: two lower layers, the rootfs over an empty one).
    let overlay_upper = match mode {
        RootMode::Overlay => Some(true),
        RootMode::Readonly if rootfs != "/" => Some(false),
        _ => None,
    };
    if let Some(writable) = overlay_upper {
        let dirs: &[&str] = if writable { &[LOWER, UPPER, WORK] } else { &[LOWER, EMPTY] };
        for dir in dirs {
            mkdir(*dir, Mode::from_bits_truncate(0o755)).step_path(Step::Staging, dir, || "create an overlay directory".into())?;
        }
        let lower = at(LOWER).step_path(Step::Staging, LOWER, || "open the overlay's lower directory".into())?;
        rootsrc
            .attach(lower.as_raw_fd(), true)
            .step_path(Step::BindRootfs, rootfs, || "bind the rootfs as the overlay's lower layer".into())?;
        // An image's further layers, each bound at a lower directory of its own.
        let mut lowers = LOWER.to_string();
        let layered = !layers.is_empty();
        for (i, layer) in layers.into_iter().enumerate() {
            let dir = format!("{LOWER}{}", i + 1);
            mkdir(dir.as_str(), Mode::from_bits_truncate(0o755)).step_path(Step::Staging, &dir, || "create an overlay directory".into())?;
            let fd = at(&dir).step_path(Step::Staging, &dir, || "open an overlay lower directory".into())?;
            layer
                .attach(fd.as_raw_fd(), false)
                .step_path(Step::BindRootfs, &dir, || "bind an image layer as an overlay lower layer".into())?;
            lowers.push(':');
            lowers.push_str(&dir);
        }
        let data = if writable {
            format!("lowerdir={lowers},upperdir={UPPER},workdir={WORK}")
        } else {
            format!("lowerdir={lowers}:{EMPTY}")
        };
        let mut flags = if writable { MsFlags::empty() } else { MsFlags::MS_RDONLY };
        // nodev on the overlay is enough for its layers too: a device node
        // opens through the mount its path is on (the overlay's), and the
        // layers' own mounts are out of reach once the root is pivoted.
        flags.set(MsFlags::MS_NODEV, *nodev);
        // Kernels that keep overlay metadata in user.* xattrs inside a user
        // namespace take `userxattr`. An image's layers mark their opaque
        // directories with user.overlay.opaque (trusted.* is out of a user
        // namespace's reach, and an overlay mounted without userxattr there
        // would show what they hide): with several layers it goes first.
        let userxattr = format!("{data},userxattr");
        let (first, second) = if layered { (&userxattr, &data) } else { (&data, &userxattr) };
        mount(Some("overlay"), NEWROOT, Some("overlay"), flags, Some(first.as_str()))
            .or_else(|_| mount(Some("overlay"), NEWROOT, Some("overlay"), flags, Some(second.as_str())))
            .map_err(|e| {
                Report::new(Step::BindRootfs, e as i32).path(rootfs.clone()).detail("mount the overlay over the rootfs").hint(
                    "this kernel or filesystem cannot overlay the rootfs in a user namespace; use --writable-rootfs to write into the directory itself",
                )
            })?;
        trace!(
            tr,
            "rootfs: {rootfs} under an overlay, {}",
            if writable {
                "writes go to a tmpfs that is discarded"
            } else {
                "read-only"
            }
        );
    } else {
        if !layers.is_empty() {
            return Err(Report::new(Step::BindRootfs, Errno::EINVAL as i32)
                .path(rootfs.clone())
                .detail("an image's layers need an overlay, not a bound root")
                .hint("leave out --writable-rootfs with an image"));
        }
        let newroot = at(NEWROOT).step_path(Step::Staging, NEWROOT, || "open the new root".into())?;
        rootsrc
            .attach(newroot.as_raw_fd(), true)
            .step_path(Step::BindRootfs, rootfs, || "bind the rootfs as the new root".into())?;
        let mut attrs = 0;
        if *mode == RootMode::Readonly {
            attrs |= sys::MOUNT_ATTR_RDONLY;
        }
        if *nodev {
            attrs |= sys::MOUNT_ATTR_NODEV;
        }
        if attrs != 0 {
            let bound = at(NEWROOT).step_path(Step::BindRootfs, NEWROOT, || "open the new root".into())?;
            set_attrs(bound.as_raw_fd(), Attrs::flags(attrs), true)
                .step_path(Step::BindRootfs, rootfs, || "make the root read-only or nodev".into())?;
        }
        trace!(
            tr,
            "rootfs: {rootfs} bound {}",
            if *mode == RootMode::Readonly {
                "read-only"
            } else {
                "read-write (writes reach the directory)"
            }
        );
    }
    drop(rootsrc);

    let root = at(NEWROOT).step_path(Step::BindRootfs, NEWROOT, || "open the new root".into())?;
    let new_root = NewRoot::of(root.as_raw_fd())?;
    let own_netns = plan.has(tsbox_core::Namespace::Net) && !plan.joins(tsbox_core::Namespace::Net);
    // A pool's sandbox under tsbox's init, with a pid namespace of its own:
    // its init may hand the pid of the process it forked ahead to the one it
    // prepares instead.
    let pid_counter_wanted =
        plan.init && plan.expected_process.is_some() && plan.has(tsbox_core::Namespace::Pid) && !plan.joins(tsbox_core::Namespace::Pid);
    let mut pid_counter = None;
    for (i, (m, source)) in plan.mounts.iter().zip(binds).enumerate() {
        if m.target == "/sys/fs/cgroup" || m.target.starts_with("/sys/fs/cgroup/") {
            enter_cgroup()?;
        }
        match apply(&new_root, i, m, source, &devnull, &plan.mounts[..i], own_netns) {
            Ok(Applied::Done) => {
                trace!(tr, "{}", describe(m));
                if pid_counter_wanted && m.target == "/proc" && matches!(&m.kind, MountKind::Fs { fstype, .. } if fstype == "proc") {
                    // Before /proc/sys is made read-only: see ahead::fork_expected.
                    pid_counter = resolve(
                        root.as_raw_fd(),
                        "/proc/sys/kernel",
                        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    )
                    .ok();
                }
            }
            Ok(Applied::Missing) => trace!(tr, "{} — skipped, the path does not exist", describe(m)),
            Ok(Applied::HostSys(e)) => trace!(
                tr,
                "{} — refused ({}) with no network namespace of its own: the host's /sys bound instead, recursively and read-only",
                describe(m),
                tsbox_core::errno_name(e as i32)
            ),
            Err(r) if m.optional && matches!(r.errno, libc::EROFS | libc::EACCES | libc::EPERM) => {
                trace!(
                    tr,
                    "{} — skipped, no mount point and none can be made ({})",
                    describe(m),
                    tsbox_core::errno_name(r.errno)
                );
            }
            Err(r) => return Err(if r.path.is_none() { r.path(m.target.clone()) } else { r }),
        }
    }
    drop(root);
    enter_cgroup()?;
    // The runtime's own hooks (prestart, createRuntime) run in Node meanwhile.
    if plan.runtime_hooks {
        super::hooks::wait_runtime_hooks(chan)?;
        trace!(tr, "hooks: prestart and createRuntime ran");
    }
    // The runtime-spec's createContainer hooks: in the container's
    // namespaces, its mounts made, the host's paths still reachable.
    if let Some(h) = &plan.create_container_hooks {
        super::hooks::run("createContainer", h, "creating", Some(rootfs.as_str()), *tr)?;
    }

    // pivot_root(".", ".") stacks the old root on the new one; detaching it
    // leaves no path back to the host and needs no directory in the rootfs.
    chdir(NEWROOT).step_path(Step::PivotRoot, NEWROOT, || "enter the new root".into())?;
    pivot_root(".", ".").step_path(Step::PivotRoot, rootfs, || "pivot_root into the rootfs".into())?;
    umount2(".", MntFlags::MNT_DETACH).step_path(Step::PivotRoot, "/", || "detach the old root".into())?;
    chdir("/").step_path(Step::PivotRoot, "/", || "enter the new root".into())?;
    let prop = propagation_flag(plan.rootfs_propagation);
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | prop, None::<&str>).step_path(Step::MountPropagation, "/", || {
        format!("set the root's propagation to {:?}", plan.rootfs_propagation).to_lowercase()
    })?;
    // Each mount's own, after the root's so that it stands; through a
    // descriptor resolved inside the new root.
    let own: Vec<&Mount> = plan.mounts.iter().filter(|m| m.propagation.is_some()).collect();
    if !own.is_empty() {
        let root = open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).step_path(
            Step::MountPropagation,
            "/",
            || "open the new root".into(),
        )?;
        for m in own {
            let p = m.propagation.expect("filtered");
            let flag = propagation_flag(p.kind);
            let at = sys::open_in_root(root.as_raw_fd(), &m.target, OFlag::O_PATH)
                .step_path(Step::MountPropagation, &m.target, || "open the mount".into())?;
            sys::mount_setattr_propagation(at.as_raw_fd(), flag.bits(), p.recursive).step_path(
                Step::MountPropagation,
                &m.target,
                || format!("make the mount {}{:?}", if p.recursive { "recursively " } else { "" }, p.kind).to_lowercase(),
            )?;
            trace!(tr, "mount: {} {}{:?}", m.target, if p.recursive { "r" } else { "" }, p.kind);
        }
    }
    trace!(
        tr,
        "pivot_root: {rootfs} is /, old root detached, propagation {:?}",
        plan.rootfs_propagation
    );
    Ok(pid_counter)
}

/// Creates the working directory if it is missing (in the writable layer).
pub fn ensure_dir(path: &str) {
    let _ = std::fs::create_dir_all(path);
}

fn describe(m: &Mount) -> String {
    let mut flags = Vec::new();
    for (on, name) in [(m.readonly, "ro"), (m.nosuid, "nosuid"), (m.nodev, "nodev"), (m.noexec, "noexec")] {
        if on {
            flags.push(name);
        }
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" ({})", flags.join(","))
    };
    match &m.kind {
        MountKind::Bind {
            source,
            recursive,
            idmap,
            dev_if_device,
        } => format!(
            "mount: bind{}{} {source} on {}{flags}{}",
            if *recursive { " (recursive)" } else { "" },
            if *idmap { " (idmapped)" } else { "" },
            m.target,
            if *dev_if_device { " [dev if a device]" } else { "" }
        ),
        MountKind::Device {
            node, major, minor, mode, ..
        } => format!("device: {:?} {major}:{minor} mode {mode:o} at {}", node, m.target).to_lowercase(),
        MountKind::Fs { fstype, data, .. } => {
            format!(
                "mount: {fstype} on {}{flags}{}",
                m.target,
                data.as_deref().map(|d| format!(" [{d}]")).unwrap_or_default()
            )
        }
        MountKind::Symlink { link } => format!("symlink: {} -> {link}", m.target),
        MountKind::Dir { mode } => format!("mkdir: {} ({mode:o})", m.target),
        MountKind::Scratch { mode } => format!("scratch: {} ({mode:o}, on the staging tmpfs){flags}", m.target),
        MountKind::File { contents, .. } => format!("file: {} ({} bytes){flags}", m.target, contents.len()),
        MountKind::Mask => format!("mask: {}", m.target),
        MountKind::ReadonlyPath => format!("read-only: {}", m.target),
    }
}

fn ms_flags(m: &Mount) -> MsFlags {
    let mut f = MsFlags::empty();
    f.set(MsFlags::MS_RDONLY, m.readonly);
    f.set(MsFlags::MS_NOSUID, m.nosuid);
    f.set(MsFlags::MS_NODEV, m.nodev);
    f.set(MsFlags::MS_NOEXEC, m.noexec);
    // Only the flags a fresh filesystem may take from a config: never
    // MS_BIND, MS_MOVE, MS_REMOUNT or propagation, which would make the
    // mount something else.
    let allowed = MsFlags::MS_SYNCHRONOUS
        | MsFlags::MS_DIRSYNC
        | MsFlags::MS_NOATIME
        | MsFlags::MS_NODIRATIME
        | MsFlags::MS_SILENT
        | MsFlags::MS_RELATIME
        | MsFlags::MS_I_VERSION
        | MsFlags::MS_STRICTATIME
        | MsFlags::MS_LAZYTIME;
    f | (MsFlags::from_bits_truncate(m.flags as libc::c_ulong) & allowed)
}

/// MS_NOSYMFOLLOW (5.10), which nix does not name.
const MS_NOSYMFOLLOW: u32 = 0x100;

/// What mount_setattr is given for an OCI mount's options: the flags, and
/// the atime mode when one is asked for (MOUNT_ATTR_RELATIME is 0: it is
/// the cleared mask that sets it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Attrs {
    set: u64,
    clr: u64,
}

impl Attrs {
    fn flags(set: u64) -> Attrs {
        Attrs { set, clr: 0 }
    }

    fn is_empty(self) -> bool {
        self.set == 0 && self.clr == 0
    }
}

fn attrs(m: &Mount) -> Attrs {
    let mut set = 0;
    for (on, a) in [
        (m.readonly, sys::MOUNT_ATTR_RDONLY),
        (m.nosuid, sys::MOUNT_ATTR_NOSUID),
        (m.nodev, sys::MOUNT_ATTR_NODEV),
        (m.noexec, sys::MOUNT_ATTR_NOEXEC),
        (m.flags & MsFlags::MS_NODIRATIME.bits() as u32 != 0, sys::MOUNT_ATTR_NODIRATIME),
        (m.flags & MS_NOSYMFOLLOW != 0, sys::MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if on {
            set |= a;
        }
    }
    match atime_attr(m) {
        Some(atime) => Attrs {
            set: set | atime,
            clr: sys::MOUNT_ATTR_ATIME_MASK,
        },
        None => Attrs::flags(set),
    }
}

/// What a bind gets, `mode` being what its source's descriptor is (the
/// object bound, never the path looked at again): the mount's options;
/// for a device, [`DEVICE_BIND`] too, and no nodev when the plan leaves
/// that to it being a device (`dev_if_device`, a volume naming one).
fn bind_attrs(m: &Mount, mode: libc::mode_t) -> Attrs {
    let mut a = attrs(m);
    if is_device_mode(mode) {
        a.set |= DEVICE_BIND;
        if matches!(m.kind, MountKind::Bind { dev_if_device: true, .. }) {
            a.set &= !sys::MOUNT_ATTR_NODEV;
        }
    }
    a
}

/// The atime mode an OCI mount's options ask for (noatime, strictatime, relatime).
fn atime_attr(m: &Mount) -> Option<u64> {
    let has = |f: MsFlags| m.flags & f.bits() as u32 != 0;
    if has(MsFlags::MS_NOATIME) {
        Some(sys::MOUNT_ATTR_NOATIME)
    } else if has(MsFlags::MS_STRICTATIME) {
        Some(sys::MOUNT_ATTR_STRICTATIME)
    } else if has(MsFlags::MS_RELATIME) {
        Some(sys::MOUNT_ATTR_RELATIME)
    } else {
        None
    }
}

/// What [`apply`] did.
enum Applied {
    Done,
    /// Skipped: a mask or a read-only path that does not exist.
    Missing,
    /// A sysfs the kernel refused (this errno): the host's /sys is bound.
    HostSys(Errno),
}

/// Applies one mount operation. `earlier` are the plan's mounts before
/// this one; `own_netns`, whether the container has a network namespace
/// of its own (made for it, not joined).
fn apply(
    new_root: &NewRoot,
    index: usize,
    m: &Mount,
    source: Option<Source>,
    devnull: &OwnedFd,
    earlier: &[Mount],
    own_netns: bool,
) -> Result<Applied> {
    let root = new_root.fd;
    let target = m.target.as_str();
    match &m.kind {
        MountKind::Dir { mode } => {
            mkdir_all(root, target, *mode)?;
        }
        MountKind::Symlink { link } => {
            let (parent, name) = split(target)?;
            let dir = mkdir_all(root, parent, 0o755)?;
            match nix::unistd::symlinkat(link.as_str(), &dir, name) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(Report::new(Step::Mount, e as i32)
                        .path(target)
                        .detail(format!("create the symlink {target} -> {link}")))
                }
            }
        }
        MountKind::Fs { fstype, data, source } => {
            let at = below_root(new_root, mkdir_all(root, target, 0o755)?, target)?;
            match mount(
                Some(source.as_deref().unwrap_or(fstype)),
                fd_path(at.as_raw_fd()).as_str(),
                Some(fstype.as_str()),
                ms_flags(m),
                data.as_deref(),
            ) {
                // A sysfs shows the network namespace of whoever mounts it.
                // The kernel lets a user namespace mount one only over a
                // network namespace it owns (EPERM), and a sysfs of the
                // host's network namespace is the host's own superblock,
                // refused where it is mounted already (EBUSY: the host's
                // root, bound with its /sys, with --userns host --network
                // host). A container without a network namespace of its
                // own sees the host's: its /sys is bound instead, as runc
                // does, read-only; the masks under /sys follow as planned.
                Err(e @ (Errno::EPERM | Errno::EBUSY)) if fstype == "sysfs" && !own_netns => {
                    bind_host_sys(root, at, m)?;
                    return Ok(Applied::HostSys(e));
                }
                r => r.step_path(Step::Mount, target, || format!("mount {fstype} on {target}"))?,
            }
            // No mount flag for it before 5.10's MS_NOSYMFOLLOW: the mount's attribute.
            if m.flags & MS_NOSYMFOLLOW != 0 {
                let mounted = resolve(root, target, OFlag::O_PATH)?;
                set_attrs(mounted.as_raw_fd(), Attrs::flags(sys::MOUNT_ATTR_NOSYMFOLLOW), false)
                    .step_path(Step::Mount, target, || format!("make {fstype} on {target} nosymfollow"))?;
            }
        }
        MountKind::Bind {
            source: src_path,
            recursive,
            ..
        } => {
            let src = source.expect("bind mounts have their source opened up front");
            // The object bound, as its descriptor has it (never the path again).
            let mode = fstat(src.fd())
                .map(|st| st.st_mode)
                .step_path(Step::OpenSource, src_path, || "stat the mount source".into())?;
            let at = if is_dir_mode(mode) {
                mkdir_all(root, target, 0o755)?
            } else {
                touch(root, target)?
            };
            let at = below_root(new_root, at, target)?;
            src.attach(at.as_raw_fd(), *recursive)
                .step_path(Step::Mount, target, || format!("bind {src_path} on {target}"))?;
            // The bind takes the source mount's flags; ours (and the atime
            // mode) are added on top in one call, through the new mount (the
            // old descriptor names what is under it).
            let a = bind_attrs(m, mode);
            if !a.is_empty() {
                let bound = resolve(root, target, OFlag::O_PATH)?;
                set_attrs(bound.as_raw_fd(), a, *recursive).step_path(Step::Mount, target, || {
                    format!(
                        "make the bind of {src_path} {}{}",
                        describe_flags(m),
                        if is_device_mode(mode) { " (a device: ro)" } else { "" }
                    )
                })?;
            }
        }
        MountKind::File { contents, mode } => {
            let staged = format!("{FILES}/{index}");
            std::fs::write(&staged, contents).step_path(Step::Mount, &staged, || format!("write the contents of {target}"))?;
            let at = below_root(new_root, touch(root, target)?, target)?;
            bind_staged(root, &staged, *mode, OFlag::empty(), at, m, "the generated file")?;
        }
        MountKind::Scratch { mode } => {
            // A directory of the staging tmpfs: its writes count against the
            // one storage limit with the root's.
            let staged = format!("{SCRATCH}/{index}");
            mkdir(staged.as_str(), Mode::from_bits_truncate(0o700))
                .step_path(Step::Mount, &staged, || format!("create the scratch directory for {target}"))?;
            let at = below_root(new_root, mkdir_all(root, target, 0o755)?, target)?;
            bind_staged(root, &staged, *mode, OFlag::O_DIRECTORY, at, m, "a scratch directory")?;
        }
        MountKind::Device {
            node,
            major,
            minor,
            mode,
            uid,
            gid,
        } => {
            device(root, index, target, *node, *major, *minor, *mode, *uid, *gid)?;
        }
        MountKind::Mask => {
            let Some(at) = resolve_protected(root, target, earlier)? else {
                return Ok(Applied::Missing);
            };
            let at = below_root(new_root, at, target)?;
            let is_dir = fstat(&at)
                .map(|st| is_dir_mode(st.st_mode))
                .step_path(Step::Mount, target, || "stat the path to mask".into())?;
            if is_dir {
                mount(
                    Some("tmpfs"),
                    fd_path(at.as_raw_fd()).as_str(),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    Some("size=0,mode=0555"),
                )
                .step_path(Step::Mount, target, || "mask the directory with an empty read-only tmpfs".into())?;
            } else {
                Source::Path(devnull.try_clone().step(Step::Mount, || "duplicate /dev/null".into())?)
                    .attach(at.as_raw_fd(), false)
                    .step_path(Step::Mount, target, || "mask the file with /dev/null".into())?;
                // The host's /dev/null: `chmod 0 /proc/kcore` must not reach it.
                seal_host_node(root, target, Step::Mount, "make the /dev/null over the masked file read-only")?;
            }
        }
        MountKind::ReadonlyPath => {
            let Some(at) = resolve_protected(root, target, earlier)? else {
                return Ok(Applied::Missing);
            };
            // A mount of its own (the cgroup tmpfs) is made read-only where it
            // is; any other path is first bound onto itself, so that only it
            // changes and not the mount it lives on.
            if !is_mount_root(at.as_raw_fd()) {
                let p = fd_path(at.as_raw_fd());
                mount(
                    Some(p.as_str()),
                    p.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .step_path(Step::Mount, target, || "bind the path onto itself".into())?;
            }
            let bound = resolve(root, target, OFlag::O_PATH)?;
            set_attrs(
                bound.as_raw_fd(),
                Attrs::flags(sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC),
                true,
            )
            .step_path(Step::Mount, target, || "make the path read-only".into())?;
        }
    }
    Ok(Applied::Done)
}

/// The host's /sys, with every mount under it, bound on `at` (the sysfs
/// mount `m`'s point) read-only, whatever `m` asked for.
fn bind_host_sys(root: RawFd, at: OwnedFd, m: &Mount) -> Result<()> {
    let target = m.target.as_str();
    let host = open("/sys", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .step_path(Step::Mount, "/sys", || "open the host's /sys to bind in place of a sysfs".into())?;
    Source::Path(host)
        .attach(at.as_raw_fd(), true)
        .step_path(Step::Mount, target, || format!("bind the host's /sys on {target}"))?;
    let bound = resolve(root, target, OFlag::O_PATH)?;
    let mut a = attrs(m);
    a.set |= sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
    set_attrs(bound.as_raw_fd(), a, true).step_path(Step::Mount, target, || format!("make the host's /sys on {target} read-only"))
}

/// `at`, the resolved mount point of `target`, unless it is the container's
/// root itself. The kernel resolves `/data` to the root when the rootfs (or
/// an image) has `data -> /`, and a target spelled `//` or `/a/..` is the
/// root too: a mount there would be stacked on the new root and become the
/// container's whole root filesystem once it is pivoted into. Compared by
/// mount and inode, so that a bind of the root elsewhere (`-v /:/host` on
/// the host's root) is still a place to mount on.
fn below_root(root: &NewRoot, at: OwnedFd, target: &str) -> Result<OwnedFd> {
    if identity(at.as_raw_fd()).step_path(Step::Mount, target, || "statx the mount point".into())? != root.id {
        return Ok(at);
    }
    Err(Report::new(Step::Mount, libc::EINVAL)
        .path(target)
        .detail(format!(
            "{target} is the container's root once resolved inside the rootfs (a symlink to / or a .. on the way), and a mount there would replace the whole root"
        ))
        .hint("mount on a directory below /, and check what the rootfs (or image) has at that path"))
}

/// The new root's directory, and what names it (looked at once: no mount
/// on a path below it changes that), for [`below_root`].
struct NewRoot {
    fd: RawFd,
    id: Identity,
}

impl NewRoot {
    fn of(fd: RawFd) -> Result<NewRoot> {
        let id = identity(fd).step_path(Step::BindRootfs, NEWROOT, || "statx the new root".into())?;
        Ok(NewRoot { fd, id })
    }
}

/// What names a file and the mount it is seen through: the device and
/// inode, and the mount id where statx gives it (5.8+).
type Identity = (u32, u32, u64, Option<u64>);

/// statx of `fd` itself (AT_EMPTY_PATH), asking for `mask`.
fn statx_fd(fd: RawFd, mask: u32) -> std::result::Result<libc::statx, Errno> {
    // SAFETY: statx fills the struct we pass; zeroed is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    Errno::result(unsafe { libc::statx(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, mask, &mut stx) })?;
    Ok(stx)
}

fn identity(fd: RawFd) -> std::result::Result<Identity, Errno> {
    let stx = statx_fd(fd, libc::STATX_INO | libc::STATX_MNT_ID)?;
    let mnt = (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id);
    Ok((stx.stx_dev_major, stx.stx_dev_minor, stx.stx_ino, mnt))
}

/// The path of `fd` is the root of a mount (statx STATX_ATTR_MOUNT_ROOT, 5.8+).
fn is_mount_root(fd: RawFd) -> bool {
    statx_fd(fd, 0).is_ok_and(|stx| {
        stx.stx_attributes_mask & (libc::STATX_ATTR_MOUNT_ROOT as u64) != 0
            && stx.stx_attributes & (libc::STATX_ATTR_MOUNT_ROOT as u64) != 0
    })
}

fn is_dir_mode(mode: libc::mode_t) -> bool {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// A character or block device (a fifo or socket is not one).
fn is_device_mode(mode: libc::mode_t) -> bool {
    let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
    kind == SFlag::S_IFCHR || kind == SFlag::S_IFBLK
}

/// What every bind of a host device node gets (/dev's defaults, a device
/// volume, a linux.devices node bound from the host, the /dev/null over
/// masked files): read-only. The node is the host's own inode, and
/// container root with CAP_CHOWN or CAP_FOWNER over it (always with
/// --userns host; in a user namespace, when the host's node is owned by the
/// container's root id) could otherwise chmod or chown it for the host:
/// on a read-only mount notify_change gives EROFS. Reading and writing the
/// device are unaffected: open takes write access to the mount only for
/// what is not a special file (do_dentry_open, `!special_file()`), and
/// may_open's EROFS is for regular files, directories and links.
const DEVICE_BIND: u64 = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC;

/// The flags of [`describe`]'s line, between its last ` (` and the `)`
/// after it: a bracketed part may follow (`[dev if a device]`, an fs's data).
fn describe_flags(m: &Mount) -> String {
    describe(m)
        .rsplit_once(" (")
        .and_then(|(_, f)| f.split_once(')'))
        .map(|(f, _)| f.to_string())
        .unwrap_or_default()
}

fn split(target: &str) -> Result<(&str, &str)> {
    let t = target.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) if i + 1 < t.len() => Ok((if i == 0 { "/" } else { &t[..i] }, &t[i + 1..])),
        _ => Err(Report::new(Step::Mount, libc::EINVAL)
            .path(target)
            .detail("a mount target must be an absolute path below /")),
    }
}

fn resolve(root: RawFd, path: &str, flags: OFlag) -> Result<OwnedFd> {
    open_at(root, path, flags).map_err(|e| unresolved(path, e, "resolve the mount target inside the rootfs"))
}

/// The trees tsbox mounts kernel filesystems on. A symlink the rootfs ships
/// at one of them would move the mount: `proc -> /dev/shm/zz/../../../realproc`
/// puts procfs on /realproc, the /dev/shm tmpfs then hides `zz`, every mask
/// and read-only path under /proc resolves to nothing and is skipped, and a
/// writable procfs is left at /realproc (with the host's user namespace,
/// kernel.core_pattern). So at and under them no symlink is followed: the
/// rootfs's /proc, /sys and /dev must be plain directories (runc refuses a
/// /proc or /sys that is not one), and once the kernel filesystem is
/// mounted what is under it is the kernel's or tsbox's, never the rootfs's.
const PINNED: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Whether `target` is at or under one of the [`PINNED`] trees, taken
/// lexically (`.` and `..` as the in-root resolution takes them).
fn pinned(target: &str) -> bool {
    let t = normalize(target);
    PINNED.iter().any(|p| under(&t, p) || t == *p)
}

/// `path` without `.`, `..` (never above /) and repeated or trailing slashes.
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether the normalized `path` is strictly below the mount point `at`.
fn under(path: &str, at: &str) -> bool {
    let at = normalize(at);
    at == "/" || path.strip_prefix(at.as_str()).is_some_and(|rest| rest.starts_with('/'))
}

/// openat2 inside `root`: with no symlink at all under the [`PINNED`] trees.
fn open_at(root: RawFd, path: &str, flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
    if pinned(path) {
        sys::open_in_root_no_symlinks(root, path, flags)
    } else {
        sys::open_in_root(root, path, flags)
    }
}

/// The report of a path that cannot be resolved: under the [`PINNED`]
/// trees, a symlink or a file on the way is the rootfs's doing, and named.
fn unresolved(path: &str, e: Errno, what: &str) -> Report {
    let r = Report::new(Step::Mount, e as i32).path(path);
    let why = match e {
        Errno::ELOOP if pinned(path) => "a symlink is on the way",
        Errno::ENOTDIR if pinned(path) => "a file that is not a directory is on the way",
        _ => return r.detail(what),
    };
    r.detail(format!(
        "{what}: {why}, and at and under /proc, /sys and /dev tsbox mounts only through real directories (a symlink could move the mount where a later one hides it)"
    ))
    .hint("the rootfs's /proc, /sys and /dev must be plain directories (or absent), not symlinks or files")
}

/// The mount of the plan that `target` is under, among `earlier` (the
/// deepest; of several on one path, the last).
fn covering<'a>(target: &str, earlier: &'a [Mount]) -> Option<&'a Mount> {
    let t = normalize(target);
    earlier
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Fs { .. } | MountKind::Bind { .. }) && under(&t, &m.target))
        .max_by_key(|m| normalize(&m.target).len())
}

/// A filesystem type, named for messages.
fn fs_name(t: FsType) -> String {
    use nix::sys::statfs::*;
    for (known, name) in [
        (PROC_SUPER_MAGIC, "procfs"),
        (SYSFS_MAGIC, "sysfs"),
        (TMPFS_MAGIC, "a tmpfs"),
        (OVERLAYFS_SUPER_MAGIC, "an overlay"),
        (CGROUP_SUPER_MAGIC, "a cgroupfs"),
        (CGROUP2_SUPER_MAGIC, "a cgroup2fs"),
    ] {
        if t == known {
            return name.into();
        }
    }
    format!("a filesystem of type {:#x}", t.0)
}

fn fs_type(fd: &OwnedFd, path: &str) -> Result<FsType> {
    nix::sys::statfs::fstatfs(fd)
        .map(|st| st.filesystem_type())
        .step_path(Step::Mount, path, || "statfs the path".into())
}

/// Resolves a masked or read-only path; None when it does not exist.
/// Elsewhere a path missing anywhere on the way is skipped, as runc and
/// Docker skip it. Under the [`PINNED`] trees, where the kernel's files are
/// what the masks hide, only a missing last component is, and only when its
/// directory resolves (no symlink, nothing missing) and is on the
/// filesystem mounted over it: procfs under /proc, sysfs under /sys (fstatfs).
/// Anything else there means the path is not where the container will see
/// it, and the mask is refused rather than left out.
fn resolve_protected(root: RawFd, target: &str, earlier: &[Mount]) -> Result<Option<OwnedFd>> {
    if !pinned(target) {
        return resolve_existing(root, target, OFlag::O_PATH);
    }
    match open_at(root, target, OFlag::O_PATH) {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(unresolved(target, e, "resolve the path to mask or make read-only")),
    }
    let (parent, _) = split(target)?;
    let dir = open_at(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| {
        unresolved(
            target,
            e,
            &format!("resolve {parent}, the directory of a path to mask or make read-only"),
        )
        .hint("under /proc and /sys only a path whose last component is missing is skipped: check the masked and read-only paths")
    })?;
    let Some(m) = covering(target, earlier) else {
        return Ok(None);
    };
    let want = match &m.kind {
        MountKind::Fs { fstype, .. } if fstype == "proc" => nix::sys::statfs::PROC_SUPER_MAGIC,
        MountKind::Fs { fstype, .. } if fstype == "sysfs" => nix::sys::statfs::SYSFS_MAGIC,
        _ => fs_type(&resolve(root, &m.target, OFlag::O_PATH)?, &m.target)?,
    };
    let have = fs_type(&dir, parent)?;
    if have != want {
        return Err(Report::new(Step::Mount, libc::EXDEV)
            .path(target)
            .detail(format!(
                "{parent} is on {}, not on {} mounted at {}: the path to mask or make read-only is not where the container sees it, so it is not skipped",
                fs_name(have),
                fs_name(want),
                m.target
            )));
    }
    Ok(None)
}

/// Gives the staged file or directory `staged` its `mode`, binds it on `at`
/// (the mount's target) and applies the mount's flags to the new mount.
fn bind_staged(root: RawFd, staged: &str, mode: u32, kind: OFlag, at: OwnedFd, m: &Mount, what: &str) -> Result<()> {
    let target = m.target.as_str();
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        staged,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .step_path(Step::Mount, staged, || format!("set the mode of {target}"))?;
    let src = open(staged, OFlag::O_PATH | OFlag::O_CLOEXEC | kind, Mode::empty())
        .step_path(Step::Mount, staged, || format!("open {what} staged for {target}"))?;
    Source::Path(src)
        .attach(at.as_raw_fd(), false)
        .step_path(Step::Mount, target, || format!("bind {what} on {target}"))?;
    if !attrs(m).is_empty() {
        let bound = resolve(root, target, OFlag::O_PATH)?;
        set_attrs(bound.as_raw_fd(), attrs(m), false).step_path(Step::Mount, target, || format!("make {target} {}", describe_flags(m)))?;
    }
    Ok(())
}

/// The file type bits and device number of a node.
fn node_bits(node: DeviceNode) -> SFlag {
    match node {
        DeviceNode::Char => SFlag::S_IFCHR,
        DeviceNode::Block => SFlag::S_IFBLK,
        DeviceNode::Fifo => SFlag::S_IFIFO,
    }
}

/// A device node (or fifo) of `linux.devices` at `target`: made on the
/// devices tmpfs with exactly `mode` and owner, and bound there. One that is
/// there already is kept when it is the same node, and an error otherwise.
/// In a user namespace the kernel refuses mknod of a device: the host's
/// node at the same path is bound instead, when it is the same device.
#[allow(clippy::too_many_arguments)]
fn device(root: RawFd, index: usize, target: &str, node: DeviceNode, major: u32, minor: u32, mode: u32, uid: u32, gid: u32) -> Result<()> {
    let kind = node_bits(node);
    let rdev = if node == DeviceNode::Fifo {
        0
    } else {
        nix::sys::stat::makedev(major as u64, minor as u64)
    };
    let same = |st: &nix::sys::stat::FileStat| {
        (st.st_mode & SFlag::S_IFMT.bits()) == kind.bits() && (node == DeviceNode::Fifo || st.st_rdev == rdev)
    };
    if let Some(fd) = resolve_existing(root, target, OFlag::O_PATH | OFlag::O_NOFOLLOW)? {
        let st = fstat(&fd).step_path(Step::Device, target, || "stat what is at the device's path".into())?;
        if same(&st) {
            return Ok(());
        }
        return Err(Report::new(Step::Device, libc::EEXIST)
            .path(target)
            .detail("a different file is at the path of a device in linux.devices")
            .hint("choose another path for the device, or leave the file out of the rootfs"));
    }
    if std::fs::metadata(DEVICES).is_err() {
        mkdir(DEVICES, Mode::from_bits_truncate(0o700)).step_path(Step::Device, DEVICES, || "create the devices' directory".into())?;
        mount(
            Some("tmpfs"),
            DEVICES,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0700,size=64k"),
        )
        .step_path(Step::Device, DEVICES, || "mount the devices' tmpfs".into())?;
    }
    let staged = format!("{DEVICES}/{index}");
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    // The host's own node, bound, gets [`DEVICE_BIND`]; one made here is
    // the container's, on its devices tmpfs.
    let mut host_node = false;
    let source = match nix::sys::stat::mknod(staged.as_str(), kind, perm, rdev) {
        Ok(()) => {
            // Exactly the mode asked for, whatever the umask; then the owner.
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                staged.as_str(),
                perm,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .step_path(Step::Device, target, || "set the device's mode".into())?;
            nix::unistd::chown(
                staged.as_str(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .step_path(Step::Device, target, || format!("give the device to {uid}:{gid}"))?;
            open(staged.as_str(), OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .step_path(Step::Device, target, || "open the device made".into())?
        }
        Err(Errno::EPERM) if node != DeviceNode::Fifo => {
            // The host's own node, when it is this device.
            let host = open(target, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                Report::new(Step::Device, e as i32)
                    .path(target)
                    .detail("make the device (mknod is refused in a user namespace), or bind the host's")
                    .hint("in a user namespace a device can only be the host's, at the same path")
            })?;
            let st = fstat(&host).step_path(Step::Device, target, || "stat the host's device".into())?;
            if !same(&st) {
                return Err(Report::new(Step::Device, libc::EPERM)
                    .path(target)
                    .detail("mknod is refused in a user namespace, and the host's file at this path is another device")
                    .hint("in a user namespace a device can only be the host's, at the same path"));
            }
            host_node = true;
            host
        }
        Err(e) => {
            return Err(Report::new(Step::Device, e as i32)
                .path(target)
                .detail(format!("make the device {major}:{minor}")))
        }
    };
    let at = touch(root, target)?;
    Source::Path(source)
        .attach(at.as_raw_fd(), false)
        .step_path(Step::Device, target, || "bind the device on its path".into())?;
    if host_node {
        seal_host_node(root, target, Step::Device, "make the bind of the host's device read-only")?;
    }
    Ok(())
}

/// Makes the bind of a host device node at `target` (already attached)
/// read-only, nosuid and noexec: see [`DEVICE_BIND`].
fn seal_host_node(root: RawFd, target: &str, step: Step, what: &'static str) -> Result<()> {
    let bound = resolve(root, target, OFlag::O_PATH)?;
    set_attrs(bound.as_raw_fd(), Attrs::flags(DEVICE_BIND), false).step_path(step, target, || what.into())
}

/// Resolves `path` inside `root` with `flags`; None when it does not exist.
fn resolve_existing(root: RawFd, path: &str, flags: OFlag) -> Result<Option<OwnedFd>> {
    match open_at(root, path, flags) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(unresolved(path, e, "resolve the path inside the rootfs")),
    }
}

/// Resolves `path` inside `root`, creating missing directories along it.
fn mkdir_all(root: RawFd, path: &str, mode: u32) -> Result<OwnedFd> {
    if let Some(fd) = resolve_existing(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY)? {
        return Ok(fd);
    }
    let (parent, name) = split(path)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(Report::new(Step::Mount, e as i32)
                .path(path)
                .detail("create the missing mount point"))
        }
    }
    resolve(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

/// Resolves the file `path` inside `root`, creating an empty one if missing.
fn touch(root: RawFd, path: &str) -> Result<OwnedFd> {
    if let Some(fd) = resolve_existing(root, path, OFlag::O_PATH)? {
        return Ok(fd);
    }
    let (parent, name) = split(path)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    match nix::fcntl::openat(
        &dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(Report::new(Step::Mount, e as i32)
                .path(path)
                .detail("create the missing file mount point"))
        }
    }
    resolve(root, path, OFlag::O_PATH)
}

/// Why [`set_attrs`] failed: a call's errno, or an option this kernel
/// cannot set at all (never dropped silently).
#[derive(Debug, PartialEq, Eq)]
enum AttrsError {
    Sys(Errno),
    /// nosymfollow with neither mount_setattr (5.12) nor MS_NOSYMFOLLOW (5.10).
    NoSymfollow,
}

impl From<Errno> for AttrsError {
    fn from(e: Errno) -> AttrsError {
        AttrsError::Sys(e)
    }
}

impl<T> StepExt<T> for std::result::Result<T, AttrsError> {
    fn step(self, step: Step, detail: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| attrs_report(e, step, detail()))
    }

    fn step_path(self, step: Step, path: &str, detail: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| attrs_report(e, step, detail()).path(path))
    }
}

fn attrs_report(e: AttrsError, step: Step, detail: String) -> Report {
    match e {
        AttrsError::Sys(e) => Report::new(step, e as i32).detail(detail),
        AttrsError::NoSymfollow => Report::new(step, libc::EOPNOTSUPP)
            .detail(format!(
                "{detail}: nosymfollow needs mount_setattr (Linux 5.12) or MS_NOSYMFOLLOW (5.10), and this kernel has neither"
            ))
            .hint("leave out the nosymfollow option, or run on Linux 5.10 or later"),
    }
}

/// mount_setattr, one call; on kernels before 5.12 a remount of the top
/// mount only, with the same options as MS_ flags ([`remount_flags`]).
fn set_attrs(fd: RawFd, attrs: Attrs, recursive: bool) -> std::result::Result<(), AttrsError> {
    match sys::mount_setattr(fd, attrs.set, attrs.clr, recursive) {
        Err(Errno::ENOSYS) => {
            let path = fd_path(fd);
            let add = remount_flags(attrs);
            remount_bind(&path, add, attrs.clr & sys::MOUNT_ATTR_ATIME_MASK != 0)?;
            // Before 5.10 the kernel ignores a mount flag it does not know:
            // the mount says whether it took it.
            if add.bits() & MS_NOSYMFOLLOW as libc::c_ulong != 0
                && nix::sys::statvfs::statvfs(path.as_str())?.flags().bits() & ST_NOSYMFOLLOW == 0
            {
                return Err(AttrsError::NoSymfollow);
            }
            Ok(())
        }
        r => Ok(r?),
    }
}

/// statvfs's flag for a nosymfollow mount (5.10), which nix does not name.
const ST_NOSYMFOLLOW: libc::c_ulong = 0x2000;

/// The MS_ flags of a remount that does what mount_setattr would with `a`:
/// every attribute tsbox sets has one.
fn remount_flags(a: Attrs) -> MsFlags {
    let mut add = MsFlags::empty();
    for (attr, f) in [
        (sys::MOUNT_ATTR_RDONLY, MsFlags::MS_RDONLY),
        (sys::MOUNT_ATTR_NOSUID, MsFlags::MS_NOSUID),
        (sys::MOUNT_ATTR_NODEV, MsFlags::MS_NODEV),
        (sys::MOUNT_ATTR_NOEXEC, MsFlags::MS_NOEXEC),
        (sys::MOUNT_ATTR_NODIRATIME, MsFlags::MS_NODIRATIME),
        (
            sys::MOUNT_ATTR_NOSYMFOLLOW,
            MsFlags::from_bits_retain(MS_NOSYMFOLLOW as libc::c_ulong),
        ),
    ] {
        if a.set & attr != 0 {
            add |= f;
        }
    }
    if a.clr & sys::MOUNT_ATTR_ATIME_MASK != 0 {
        add |= match a.set & sys::MOUNT_ATTR_ATIME_MASK {
            sys::MOUNT_ATTR_NOATIME => MsFlags::MS_NOATIME,
            sys::MOUNT_ATTR_STRICTATIME => MsFlags::MS_STRICTATIME,
            _ => MsFlags::MS_RELATIME,
        };
    }
    add
}

/// MS_REMOUNT|MS_BIND keeping the flags the mount already has: in a user
/// namespace the kernel refuses a remount that would clear a locked flag.
/// With `atime` (`add` has the atime mode asked for), the mount's own atime
/// flags are not kept: MS_NOATIME would win over MS_STRICTATIME.
fn remount_bind(path: &str, add: MsFlags, atime: bool) -> std::result::Result<(), Errno> {
    use nix::sys::statvfs::FsFlags;
    let st = nix::sys::statvfs::statvfs(path)?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | add;
    for (have, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (
            FsFlags::from_bits_retain(ST_NOSYMFOLLOW),
            MsFlags::from_bits_retain(MS_NOSYMFOLLOW as libc::c_ulong),
        ),
    ] {
        if st.flags().contains(have) {
            flags |= ms;
        }
    }
    if !atime {
        for (have, ms) in [
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if st.flags().contains(have) {
                flags |= ms;
            }
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// mount(2)'s flag for a propagation.
fn propagation_flag(p: Propagation) -> MsFlags {
    match p {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Unbindable => MsFlags::MS_UNBINDABLE,
    }
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
    fn proc_sys_and_dev_and_all_under_them_are_pinned_however_written() {
        for p in [
            "/proc",
            "/proc/",
            "/proc/sys",
            "/sys/fs/cgroup",
            "/dev",
            "/dev/shm",
            "//proc//kcore",
            "/./sys",
            "/x/../proc/sys",
            "/../dev/null",
        ] {
            assert!(pinned(p), "{p}");
        }
        for p in [
            "/",
            "/procx",
            "/devices",
            "/etc/proc",
            "/proc/../etc",
            "/sysfs/x",
            "/does/not/exist",
        ] {
            assert!(!pinned(p), "{p}");
        }
    }

    fn fs_at(target: &str, fstype: &str) -> Mount {
        Mount {
            target: target.into(),
            kind: MountKind::Fs {
                fstype: fstype.into(),
                data: None,
                source: None,
            },
            readonly: false,
            nosuid: true,
            nodev: true,
            noexec: true,
            optional: false,
            flags: 0,
            propagation: None,
        }
    }

    #[test]
    fn a_masked_path_is_checked_against_the_deepest_mount_over_it() {
        let earlier = vec![
            fs_at("/proc", "proc"),
            fs_at("/sys", "sysfs"),
            fs_at("/sys/fs/cgroup", "tmpfs"),
            fs_at("/sys/fs/cgroup/memory", "cgroup"),
            Mount {
                target: "/proc/x".into(),
                kind: MountKind::Mask,
                ..fs_at("/proc/x", "")
            },
        ];
        let fstype = |t: &str| match covering(t, &earlier).map(|m| &m.kind) {
            Some(MountKind::Fs { fstype, .. }) => Some(fstype.clone()),
            _ => None,
        };
        assert_eq!(fstype("/proc/kcore").as_deref(), Some("proc"));
        // A mask is no mount: /proc/x/y is under /proc's procfs.
        assert_eq!(fstype("/proc/x/y").as_deref(), Some("proc"));
        assert_eq!(fstype("/sys/firmware").as_deref(), Some("sysfs"));
        assert_eq!(fstype("/sys/fs/cgroup/memory/secret").as_deref(), Some("cgroup"));
        assert_eq!(fstype("/sys/fs/cgroup/x").as_deref(), Some("tmpfs"));
        // The mount point itself is not under its own mount.
        assert_eq!(fstype("/proc"), None);
        assert_eq!(fstype("/etc/x"), None);
        // Two on one path: the later one is on top.
        let stacked = vec![fs_at("/proc", "tmpfs"), fs_at("/proc", "proc")];
        assert!(matches!(&covering("/proc/kcore", &stacked).unwrap().kind, MountKind::Fs { fstype, .. } if fstype == "proc"));
    }

    #[test]
    fn a_symlink_under_proc_sys_or_dev_is_named_with_the_way_out() {
        let r = unresolved("/proc", Errno::ELOOP, "resolve the path inside the rootfs");
        assert_eq!(r.errno, libc::ELOOP);
        assert!(r.detail.contains("a symlink is on the way"), "{}", r.detail);
        assert!(r.hint.unwrap().contains("must be plain directories"));
        // Elsewhere the error is the call's, as before.
        let r = unresolved("/etc/x", Errno::ELOOP, "resolve the path inside the rootfs");
        assert_eq!(r.detail, "resolve the path inside the rootfs");
        assert!(!r.hint.unwrap_or_default().contains("plain directories"));
    }

    #[test]
    fn describe_names_flags() {
        let m = Mount {
            target: "/sys".into(),
            kind: MountKind::Fs {
                fstype: "sysfs".into(),
                data: None,
                source: None,
            },
            readonly: true,
            nosuid: true,
            nodev: false,
            noexec: false,
            optional: false,
            flags: 0,
            propagation: None,
        };
        assert_eq!(describe(&m), "mount: sysfs on /sys (ro,nosuid)");
        assert_eq!(describe_flags(&m), "ro,nosuid");
        // A part in brackets after the flags is not one of them.
        let dev = Mount {
            kind: MountKind::Bind {
                source: "/srv/dev".into(),
                recursive: false,
                idmap: false,
                dev_if_device: true,
            },
            target: "/mnt/dev".into(),
            ..m
        };
        assert_eq!(describe(&dev), "mount: bind /srv/dev on /mnt/dev (ro,nosuid) [dev if a device]");
        assert_eq!(describe_flags(&dev), "ro,nosuid");
    }

    fn bind(readonly: bool, flags: u32) -> Mount {
        Mount {
            target: "/data".into(),
            kind: MountKind::Bind {
                source: "/host".into(),
                recursive: true,
                idmap: false,
                dev_if_device: false,
            },
            readonly,
            nosuid: true,
            nodev: true,
            noexec: true,
            optional: false,
            flags,
            propagation: None,
        }
    }

    #[test]
    fn a_binds_options_are_one_set_of_attributes_with_its_atime_mode() {
        let nodiratime = MsFlags::MS_NODIRATIME.bits() as u32;
        let every = sys::MOUNT_ATTR_RDONLY
            | sys::MOUNT_ATTR_NOSUID
            | sys::MOUNT_ATTR_NODEV
            | sys::MOUNT_ATTR_NOEXEC
            | sys::MOUNT_ATTR_NODIRATIME
            | sys::MOUNT_ATTR_NOSYMFOLLOW;
        assert_eq!(attrs(&bind(true, nodiratime | MS_NOSYMFOLLOW)), Attrs::flags(every));
        let noatime = attrs(&bind(false, MsFlags::MS_NOATIME.bits() as u32));
        assert_eq!(noatime.set & sys::MOUNT_ATTR_ATIME_MASK, sys::MOUNT_ATTR_NOATIME);
        assert_eq!(noatime.clr, sys::MOUNT_ATTR_ATIME_MASK);
        // relatime is the mode with no bit: the cleared mask asks for it.
        let relatime = attrs(&bind(false, MsFlags::MS_RELATIME.bits() as u32));
        assert_eq!(
            (relatime.set & sys::MOUNT_ATTR_ATIME_MASK, relatime.clr),
            (0, sys::MOUNT_ATTR_ATIME_MASK)
        );
        assert_eq!(attrs(&bind(false, 0)).clr, 0);
    }

    #[test]
    fn the_remount_fallback_carries_every_option_as_a_mount_flag() {
        let nodiratime = MsFlags::MS_NODIRATIME.bits() as u32;
        let f = remount_flags(attrs(&bind(
            true,
            nodiratime | MS_NOSYMFOLLOW | MsFlags::MS_STRICTATIME.bits() as u32,
        )));
        let want = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NODIRATIME
            | MsFlags::from_bits_retain(MS_NOSYMFOLLOW as libc::c_ulong)
            | MsFlags::MS_STRICTATIME;
        assert_eq!(f, want);
        // Each attribute alone has its own flag: none is dropped.
        for bit in 0..64 {
            let a = 1u64 << bit;
            if a & (sys::MOUNT_ATTR_RDONLY
                | sys::MOUNT_ATTR_NOSUID
                | sys::MOUNT_ATTR_NODEV
                | sys::MOUNT_ATTR_NOEXEC
                | sys::MOUNT_ATTR_NODIRATIME
                | sys::MOUNT_ATTR_NOSYMFOLLOW)
                != 0
            {
                assert!(!remount_flags(Attrs::flags(a)).is_empty(), "attribute {a:#x} has no mount flag");
            }
        }
        for (ms, want) in [
            (MsFlags::MS_NOATIME, MsFlags::MS_NOATIME),
            (MsFlags::MS_STRICTATIME, MsFlags::MS_STRICTATIME),
            (MsFlags::MS_RELATIME, MsFlags::MS_RELATIME),
        ] {
            assert_eq!(
                remount_flags(attrs(&bind(false, ms.bits() as u32))) & !(MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC),
                want
            );
        }
        // No atime mode asked for: none given, the mount's own is kept.
        assert_eq!(remount_flags(Attrs::flags(0)), MsFlags::empty());
    }

    #[test]
    fn character_and_block_nodes_are_devices_and_their_binds_read_only() {
        for (kind, device) in [
            (libc::S_IFCHR, true),
            (libc::S_IFBLK, true),
            (libc::S_IFIFO, false),
            (libc::S_IFSOCK, false),
            (libc::S_IFREG, false),
            (libc::S_IFDIR, false),
        ] {
            assert_eq!(is_device_mode(kind | 0o666), device, "{kind:o}");
        }
        assert_ne!(DEVICE_BIND & sys::MOUNT_ATTR_RDONLY, 0);
        // Never nodev: the device must still open.
        assert_eq!(DEVICE_BIND & sys::MOUNT_ATTR_NODEV, 0);
    }

    #[test]
    fn a_volume_is_nodev_unless_its_descriptor_is_a_device_and_a_device_bind_is_read_only() {
        let volume = |dev_if_device: bool| Mount {
            kind: MountKind::Bind {
                source: "/host".into(),
                recursive: true,
                idmap: false,
                dev_if_device,
            },
            ..bind(false, 0)
        };
        let has = |a: Attrs, attr: u64| a.set & attr != 0;
        let chr = libc::S_IFCHR | 0o666;
        // A volume whose source opened as a device: opens, read-only.
        let a = bind_attrs(&volume(true), chr);
        assert!(!has(a, sys::MOUNT_ATTR_NODEV) && has(a, sys::MOUNT_ATTR_RDONLY));
        assert!(!has(bind_attrs(&volume(true), libc::S_IFBLK | 0o660), sys::MOUNT_ATTR_NODEV));
        // Anything else it may have become meanwhile (a directory of nodes, a
        // fifo, a file) stays nodev, and is not made read-only.
        for other in [libc::S_IFDIR | 0o755, libc::S_IFIFO | 0o666, libc::S_IFREG | 0o644] {
            let a = bind_attrs(&volume(true), other);
            assert!(has(a, sys::MOUNT_ATTR_NODEV) && !has(a, sys::MOUNT_ATTR_RDONLY), "{other:o}");
        }
        // A bind that does not leave it to the device (an OCI bind with nodev) keeps nodev.
        let a = bind_attrs(&volume(false), chr);
        assert!(has(a, sys::MOUNT_ATTR_NODEV) && has(a, sys::MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn a_mount_point_that_is_the_root_itself_is_refused_naming_it() {
        let dir = |p: &str| open(p, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        let root = dir("/");
        // The root however reached (here by `..`), and a directory below it.
        let root = NewRoot::of(root.as_raw_fd()).unwrap();
        let r = below_root(&root, dir("/etc/.."), "/data").unwrap_err();
        assert_eq!((r.errno, r.path.as_deref()), (libc::EINVAL, Some("/data")));
        assert!(r.detail.contains("/data is the container's root once resolved"), "{}", r.detail);
        assert!(below_root(&root, dir("/etc"), "/etc").is_ok());
    }

    #[test]
    fn nosymfollow_the_kernel_cannot_set_is_refused_naming_it() {
        let r = attrs_report(AttrsError::NoSymfollow, Step::Mount, "make the bind of /host nosymfollow".into());
        assert_eq!(r.errno, libc::EOPNOTSUPP);
        assert!(r
            .detail
            .contains("nosymfollow needs mount_setattr (Linux 5.12) or MS_NOSYMFOLLOW (5.10)"));
    }
}
