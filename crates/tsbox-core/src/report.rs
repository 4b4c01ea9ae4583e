//! Setup steps and the error report a failed step produces: the step, the errno,
//! the path or value involved, and a hint (DESIGN.md, Errors).

use serde::{Deserialize, Serialize};

use crate::tables::errno_name;

/// Every step of a launch that can fail, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Step {
    ReadPlan,
    Join,
    Clone,
    UidMap,
    GidMap,
    Cgroup,
    Idmap,
    WaitGo,
    Sysctl,
    MountPropagation,
    OpenRootfs,
    OpenSource,
    Staging,
    BindRootfs,
    Mount,
    Device,
    Hook,
    PivotRoot,
    Sethostname,
    Loopback,
    UnshareCgroup,
    Rlimit,
    Setsid,
    User,
    Tty,
    Setgroups,
    Setgid,
    Setuid,
    Capabilities,
    NoNewPrivs,
    Chdir,
    InitFork,
    Seccomp,
    Exec,
    Start,
}

impl Step {
    /// Every step, in the order they run.
    pub const ALL: [Step; 35] = [
        Step::ReadPlan,
        Step::Join,
        Step::Clone,
        Step::UidMap,
        Step::GidMap,
        Step::Cgroup,
        Step::Idmap,
        Step::WaitGo,
        Step::Sysctl,
        Step::MountPropagation,
        Step::OpenRootfs,
        Step::OpenSource,
        Step::Staging,
        Step::BindRootfs,
        Step::Mount,
        Step::Device,
        Step::Hook,
        Step::PivotRoot,
        Step::Sethostname,
        Step::Loopback,
        Step::UnshareCgroup,
        Step::Rlimit,
        Step::Setsid,
        Step::User,
        Step::Tty,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Capabilities,
        Step::NoNewPrivs,
        Step::Chdir,
        Step::InitFork,
        Step::Seccomp,
        Step::Exec,
        Step::Start,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReadPlan => "read_plan",
            Step::Join => "join",
            Step::Clone => "clone",
            Step::UidMap => "uid_map",
            Step::GidMap => "gid_map",
            Step::Cgroup => "cgroup",
            Step::Idmap => "idmap",
            Step::WaitGo => "wait_go",
            Step::Sysctl => "sysctl",
            Step::MountPropagation => "mount_propagation",
            Step::OpenRootfs => "open_rootfs",
            Step::OpenSource => "open_source",
            Step::Staging => "staging",
            Step::BindRootfs => "bind_rootfs",
            Step::Mount => "mount",
            Step::Device => "device",
            Step::Hook => "hook",
            Step::PivotRoot => "pivot_root",
            Step::Sethostname => "sethostname",
            Step::Loopback => "loopback",
            Step::UnshareCgroup => "unshare_cgroup",
            Step::Rlimit => "rlimit",
            Step::Setsid => "setsid",
            Step::User => "user",
            Step::Tty => "tty",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Capabilities => "capabilities",
            Step::NoNewPrivs => "no_new_privs",
            Step::Chdir => "chdir",
            Step::InitFork => "init_fork",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
            Step::Start => "start",
        }
    }
}

/// What went wrong, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{step}({target}): {errno_name} — {detail}", step = step.as_str(), target = path.as_deref().unwrap_or(""), errno_name = errno_name(*errno))]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Report {
    pub step: Step,
    /// 0 when the failure is not a system call's (a bad value, say).
    pub errno: i32,
    pub path: Option<String>,
    /// What was being done, in words: "mount proc on /proc".
    pub detail: String,
    pub hint: Option<String>,
}

impl Report {
    pub fn new(step: Step, errno: i32) -> Report {
        Report {
            step,
            errno,
            path: None,
            detail: String::new(),
            hint: hint(step, errno).map(str::to_owned),
        }
    }

    pub fn path(mut self, path: impl Into<String>) -> Report {
        self.path = Some(path.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Report {
        self.detail = detail.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Report {
        self.hint = Some(hint.into());
        self
    }
}

/// A hint for the failures users meet; `None` where the errno says it all.
pub fn hint(step: Step, errno: i32) -> Option<&'static str> {
    const EPERM: i32 = 1;
    const ENOENT: i32 = 2;
    const ENOEXEC: i32 = 8;
    const E2BIG: i32 = 7;
    const EACCES: i32 = 13;
    const EBUSY: i32 = 16;
    const ENOTDIR: i32 = 20;
    const EINVAL: i32 = 22;
    const EFAULT: i32 = 14;
    const EROFS: i32 = 30;
    const ENOSPC: i32 = 28;
    const ELOOP: i32 = 40;
    Some(match (step, errno) {
        (Step::Clone, EPERM) | (Step::Clone, ENOSPC) => {
            "creating user namespaces is restricted here; check /proc/sys/user/max_user_namespaces and, on Ubuntu, kernel.apparmor_restrict_unprivileged_userns"
        }
        (Step::UidMap, EPERM) | (Step::UidMap, EINVAL) | (Step::GidMap, EPERM) | (Step::GidMap, EINVAL) => {
            "the host ids must exist and be yours to map; as non-root only your own id maps without newuidmap/newgidmap"
        }
        (Step::Cgroup, EBUSY) => "on v2 a process may only join a cgroup without controllers enabled in its cgroup.subtree_control",
        (Step::Cgroup, EACCES) | (Step::Cgroup, EPERM) => {
            "the container's cgroup is not writable by this user; delegate a cgroup to it (systemd: Delegate=yes) or run as root"
        }
        (Step::Clone, EINVAL) => "the kernel refused these namespace flags; is it built with user and pid namespaces?",
        (Step::OpenRootfs, ENOENT) => "the rootfs directory does not exist; pass an existing directory with --rootfs",
        (Step::OpenRootfs, ENOTDIR) => "the rootfs must be a directory holding a root filesystem, not a file",
        (Step::OpenRootfs, EACCES) => "the rootfs is not readable by the user running tsbox",
        (Step::OpenSource, ENOENT) => "the host path of a volume must exist before the container starts",
        (Step::Mount, ENOENT) | (Step::Mount, ENOTDIR) => {
            "the mount point is missing from the rootfs, or a path component is not a directory"
        }
        (Step::Mount, EROFS) => "a read-only root gets no new directories: create it in the root filesystem first, or run without --read-only",
        (Step::Mount, ELOOP) => "the mount target resolves through a symlink loop inside the rootfs",
        (Step::Mount, EPERM) => "the kernel refused the mount in this user namespace (a locked or too-revealing mount)",
        (Step::PivotRoot, EINVAL) => "the rootfs must be a directory on a mount that is not shared; is it inside another container's rootfs?",
        (Step::Exec, ENOENT) => "the command was not found in the container: check the name and the container's PATH",
        (Step::Exec, EACCES) => "the command is not executable (mode bits, or a noexec mount) by the container user",
        (Step::Exec, E2BIG) => "the arguments and environment together are over the kernel's limit for execve (ARG_MAX, a quarter of the stack rlimit), or one of them is over 128 KiB: pass large data through a file or stdin",
        (Step::Exec, ENOEXEC) => "the file is not an executable this kernel can run (no #! line, or another architecture)",
        (Step::Seccomp, EINVAL) => "the kernel refused the seccomp filter: is it built with CONFIG_SECCOMP_FILTER? (a malformed program would be a tsbox bug)",
        (Step::Seccomp, EFAULT) => "the kernel could not read the seccomp program (a tsbox bug)",
        (Step::Seccomp, EACCES) => "installing a seccomp filter needs no_new_privs or CAP_SYS_ADMIN: keep noNewPrivileges on, or load the filter before capabilities are dropped",
        (Step::Chdir, ENOENT) => "the working directory does not exist in the container",
        (Step::Setuid, EINVAL) | (Step::Setgid, EINVAL) => {
            "the id is not mapped in the container's user namespace: widen --uidmap/--gidmap, or, as an ordinary user, add a subordinate range (sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER) so that 65536 ids map"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_as_one_line_naming_step_path_and_errno() {
        let r = Report::new(Step::PivotRoot, 22)
            .path("/var/lib/x/rootfs")
            .detail("pivot_root into the rootfs");
        assert_eq!(r.to_string(), "pivot_root(/var/lib/x/rootfs): EINVAL — pivot_root into the rootfs");
        assert!(r.hint.as_deref().unwrap().contains("not shared"));
    }

    #[test]
    fn steps_serialise_as_their_names() {
        for step in [
            Step::ReadPlan,
            Step::PivotRoot,
            Step::NoNewPrivs,
            Step::UnshareCgroup,
            Step::UidMap,
            Step::GidMap,
            Step::Cgroup,
        ] {
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(json, format!("\"{}\"", step.as_str()));
        }
    }

    #[test]
    fn missing_and_unexecutable_commands_get_hints() {
        assert!(hint(Step::Exec, 2).is_some());
        assert!(hint(Step::Exec, 13).is_some());
        assert!(hint(Step::Sethostname, 22).is_none());
    }
}
