//! Placing the container in its cgroup where clone3 could not (v1 and hybrid
//! hierarchies, or a kernel without CLONE_INTO_CGROUP).
//!
//! Moving a process between cgroups waits for an RCU grace period on most
//! kernels (the write side of cgroup_threadgroup_rwsem), a few milliseconds
//! that do not depend on us. The helper pays it while the child builds its
//! mounts, and tells the child when it is done; Node is not involved.

use nix::errno::Errno;
use nix::unistd::Pid;
use tsbox_core::{Report, Step};

use crate::trace::{trace, Trace};

/// Moves `pid` (the whole process) into every hierarchy by writing it to each
/// of `procs` (the `cgroup.procs` files). A child that has already exited is
/// not an error here: the monitor reports why it did.
pub fn place(procs: &[String], pid: Pid, tr: &Trace) -> Result<(), Report> {
    let text = pid.to_string();
    for path in procs {
        match write_existing(path, text.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => {}
            Err(e) => {
                return Err(Report::new(Step::Cgroup, e.raw_os_error().unwrap_or(libc::EIO))
                    .path(path.clone())
                    .detail(format!("place process {pid} in the container's cgroup")))
            }
        }
    }
    trace!(
        tr,
        "cgroup: pid {pid} placed in {}",
        procs
            .iter()
            .map(|p| p.trim_end_matches("/cgroup.procs"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Moves the calling thread into the cgroup of each of `tasks` (v1 `tasks`
/// files) by writing `0`. The kernel takes cgroup_threadgroup_rwsem for
/// writing, and so waits for an RCU grace period, only when a move names a
/// pid or a whole thread group (cgroup.procs); a thread that moves itself
/// skips it. The helper is single-threaded, and a clone copies the cgroups
/// of the thread that calls it, so the child it clones next starts in them.
/// Every file is tried, whatever fails (going back, each hierarchy the
/// thread can leave it leaves); the first failure is the one reported.
pub fn move_self(tasks: &[String]) -> Result<(), Report> {
    let mut first = None;
    for path in tasks {
        if let (Err(e), None) = (write_existing(path, b"0"), &first) {
            first = Some(
                Report::new(Step::Cgroup, e.raw_os_error().unwrap_or(libc::EIO))
                    .path(path.clone())
                    .detail("move the helper's thread into this cgroup (to clone the container there, or back)"),
            );
        }
    }
    first.map_or(Ok(()), Err)
}

/// Writes `bytes` to the cgroup file `path` in one write, never creating
/// nor truncating it (std::fs::write would ask for both).
fn write_existing(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new().write(true).open(path)?.write_all(bytes)
}

/// Removes the container's cgroup directories (the v2 directory and the
/// directory of every `cgroup.procs` of its cgroup phase), once its processes
/// are gone and its caller cannot: best effort, retrying while the kernel
/// still counts the exiting processes (EBUSY), for about a second. Those of
/// `kept` (a joined cgroupsPath, which existed before) stay.
pub fn remove(phase: &tsbox_core::CgroupPhase, kept: &[String], tr: &Trace) {
    use tsbox_core::CgroupPhase;
    let (procs, dir) = match phase {
        CgroupPhase::None => return,
        CgroupPhase::CloneInto { dir, procs } => (procs, Some(dir)),
        CgroupPhase::Place { procs, .. } => (procs, None),
        CgroupPhase::Enter { procs, dir, .. } => (procs, dir.as_ref()),
    };
    let mut dirs: Vec<String> = procs
        .iter()
        .filter_map(|p| p.strip_suffix("/cgroup.procs").map(str::to_string))
        .collect();
    dirs.extend(dir.cloned());
    dirs.sort();
    dirs.dedup();
    dirs.retain(|d| !kept.contains(d));
    for dir in dirs {
        for attempt in 0..50 {
            match std::fs::remove_dir(&dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => std::thread::sleep(std::time::Duration::from_millis(20)),
                _ => break,
            }
        }
        trace!(tr, "cgroup: removed {dir} (the caller is gone)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_tries_every_hierarchy_and_reports_the_first_that_failed() {
        let base = std::env::temp_dir().join(format!("tsbox-cgroup-move-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let file = |name: &str| base.join(name).display().to_string();
        std::fs::write(file("a"), "").unwrap();
        std::fs::write(file("c"), "").unwrap();
        // "b" does not exist: the move into it fails, "c" is still written.
        let r = move_self(&[file("a"), file("b"), file("c")]).unwrap_err();
        assert_eq!((r.errno, r.path.as_deref()), (libc::ENOENT, Some(file("b").as_str())));
        assert_eq!(std::fs::read_to_string(file("a")).unwrap(), "0");
        assert_eq!(std::fs::read_to_string(file("c")).unwrap(), "0");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_monitor_removes_what_the_container_made_and_keeps_a_joined_cgroup() {
        let base = std::env::temp_dir().join(format!("tsbox-cgroup-remove-{}", std::process::id()));
        let made = base.join("made");
        let joined = base.join("joined");
        std::fs::create_dir_all(&made).unwrap();
        std::fs::create_dir_all(&joined).unwrap();
        let procs = |d: &std::path::Path| format!("{}/cgroup.procs", d.display());
        let phase = tsbox_core::CgroupPhase::Place {
            procs: vec![procs(&made), procs(&joined)],
            made_by_node: false,
        };
        remove(&phase, &[joined.display().to_string()], &Trace::new(false, 0));
        assert!(!made.exists());
        assert!(joined.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
