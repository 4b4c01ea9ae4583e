//! Idmapped mounts, made by the helper after the id maps are written (it has
//! CAP_SYS_ADMIN where the filesystems live; the child does not). A rootfs or
//! volume owned by host root then appears owned by container root, so a
//! container can write where Docker's could, while its root stays nobody on
//! the host. The detached trees travel to the child with its `go`.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use tsbox_core::{IdMaps, MountKind, Report, RootfsSpec, SandboxPlan, Step};

use crate::sys;
use crate::trace::{trace, Trace};

/// The host paths to idmap, in the order the child consumes them: the rootfs
/// first, then an image's lower layers (top first), then each bind source
/// that asks for it.
/// With each, whether its submounts come along (the rootfs's do; a bind's
/// only when it is recursive, so that a plain bind never brings mounts, with
/// none of its flags, that a non-idmapped one would not).
pub fn sources(plan: &SandboxPlan) -> Vec<(Step, &str, bool)> {
    let RootfsSpec::Path { path, idmap, layers, .. } = &plan.rootfs;
    let mut out = Vec::new();
    if *idmap {
        out.push((Step::OpenRootfs, path.as_str(), true));
        out.extend(layers.iter().map(|l| (Step::OpenRootfs, l.as_str(), false)));
    }
    for m in &plan.mounts {
        if let MountKind::Bind {
            source,
            idmap: true,
            recursive,
            ..
        } = &m.kind
        {
            out.push((Step::OpenSource, source.as_str(), *recursive));
        }
    }
    out
}

/// Detached, idmapped copies of every source that asks for one. The
/// rootfs, idmapped by default, is bound as it is where its filesystem
/// cannot be (and traced); a volume that asked for it is an error there,
/// never a bind with the host's ids.
pub fn trees(plan: &SandboxPlan, child: Pid, tr: &Trace) -> Result<Vec<OwnedFd>, Report> {
    let wanted = sources(plan);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let ns_path = format!("/proc/{child}/ns/user");
    let userns = open(ns_path.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
        Report::new(Step::Idmap, e as i32)
            .path(ns_path.clone())
            .detail("open the container's user namespace")
    })?;
    wanted
        .into_iter()
        .map(|(step, path, recursive)| {
            let tree = sys::open_tree_clone(path, recursive)
                .map_err(|e| Report::new(step, e as i32).path(path).detail("clone the mount tree of the source"))?;
            match sys::mount_setattr_idmap(tree.as_raw_fd(), userns.as_raw_fd(), recursive) {
                Ok(()) => trace!(tr, "idmap: {path} shifted into the container's id range"),
                Err(e) if step == Step::OpenRootfs => trace!(tr, "idmap: {path} cannot be idmapped ({e}); bound as it is"),
                Err(e) => {
                    return Err(Report::new(Step::Idmap, e as i32)
                        .path(path)
                        .detail("make an idmapped mount of the volume")
                        .hint("its filesystem cannot be idmapped by this kernel (tmpfs needs 6.3, overlayfs and network filesystems vary); bind it without idmap"))
                }
            }
            Ok(tree)
        })
        .collect()
}

/// Writes the child's id maps from the plan (setgroups first: the kernel
/// refuses an unprivileged gid_map until it says "deny"). The helper is the
/// child's parent with the caller's credentials, so it may write whatever Node
/// could have written itself; only newuidmap/newgidmap stay with Node.
pub fn write_maps(child: Pid, maps: &IdMaps, tr: &Trace) -> Result<(), Report> {
    for (step, file, data) in [
        (Step::Setgroups, "setgroups", &maps.setgroups),
        (Step::UidMap, "uid_map", &maps.uid_map),
        (Step::GidMap, "gid_map", &maps.gid_map),
    ] {
        let path = format!("/proc/{child}/{file}");
        std::fs::write(&path, data.as_bytes()).map_err(|e| {
            Report::new(step, e.raw_os_error().unwrap_or(libc::EIO))
                .path(path.clone())
                .detail(format!("write {:?} to {path}", data.trim()))
        })?;
        trace!(tr, "{file}: {}", data.trim().replace('\n', ", "));
    }
    Ok(())
}
