//! The phases of a container's life and the messages that carry them, on the
//! three kinds of SOCK_SEQPACKET channel (framed by [`crate::wire`]):
//!
//! - the launch channel, Node ⇄ helper: [`NodeMsg`] one way, [`HelperMsg`]
//!   the other;
//! - the child channel, helper ⇄ the container's first process:
//!   [`ToChild`] down, [`ChildMsg`] up;
//! - the control socket of a running container's monitor: [`ControlRequest`]
//!   in, [`HelperMsg`] out (exec, signals, wait, from any process).
//!
//! Each [`Phase`] is one message type, with one place on each side that
//! sends it and one that handles it (README, How it works).

use serde::{Deserialize, Serialize};

use crate::plan::{Namespace, ProcessPlan, SandboxPlan};
use crate::report::Report;

/// The phases of a launch, in order: `plan → cloned → [maps, cgroup,
/// network] → go → ready → process → started → exited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Node → helper: the [`SandboxPlan`].
    Plan = 1,
    /// Helper → Node: the child exists, in its new namespaces.
    Cloned = 2,
    /// The id maps are written (by the helper, or by Node with newuidmap).
    Maps = 3,
    /// The child is in its cgroup, or will be (v1: the helper places it while
    /// the child builds its mounts; it enters its cgroup namespace after).
    Cgroup = 4,
    /// Node's hook has set up the child's network namespace.
    Network = 5,
    /// Helper → child: everything outside is in place: build the sandbox.
    Go = 6,
    /// The sandbox is built (pivoted into its root): waiting for its process.
    Ready = 7,
    /// The [`ProcessPlan`] reaches the child (Node may send it with the plan).
    Process = 8,
    /// The process was exec'd.
    Started = 9,
    /// The container's PID 1 has ended.
    Exited = 10,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Plan,
        Phase::Cloned,
        Phase::Maps,
        Phase::Cgroup,
        Phase::Network,
        Phase::Go,
        Phase::Ready,
        Phase::Process,
        Phase::Started,
        Phase::Exited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::Cloned => "cloned",
            Phase::Maps => "maps",
            Phase::Cgroup => "cgroup",
            Phase::Network => "network",
            Phase::Go => "go",
            Phase::Ready => "ready",
            Phase::Process => "process",
            Phase::Started => "started",
            Phase::Exited => "exited",
        }
    }
}

/// Node → helper, on the launch channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum NodeMsg {
    /// Phase 1, the first message: the sandbox to build (with the id range's
    /// lock attached, which the helper holds until the container is gone).
    Plan(Box<SandboxPlan>),
    /// Phase 3: Node wrote the id maps (`MapsPhase::Node`).
    Maps,
    /// Phase 4: Node made the cgroup (`made_by_node` of `CgroupPhase::Place` and `CgroupPhase::Enter`).
    Cgroup,
    /// Phase 5: Node's network hook is done (`NetworkPhase::Node`).
    Network,
    /// Node ran the OCI `prestart` and `createRuntime` hooks
    /// (`SandboxPlan::runtime_hooks`): the child may go on to its
    /// createContainer hooks and pivot_root.
    RuntimeHooks,
    /// Phase 8: the process to run in the sandbox. May come right after the
    /// plan; the helper hands it to the child when the sandbox is ready.
    Process(Box<ProcessPlan>),
    /// The process of a created container (OCI `create`, the API's
    /// `create()`): the monitor keeps it until `start` comes, from Node or
    /// from any process on the control socket, so what runs is what was
    /// asked for at create.
    Hold(Box<ProcessPlan>),
    /// Run the held process (phase 8 of a created container).
    Start,
    /// Deliver a signal to the container's PID 1 (init forwards it).
    Signal { signo: i32 },
    /// `tsbox-init --exec`, the first and only message: start `process` in a
    /// running container. With it come `stdio` descriptors (0 or 3), then one
    /// per namespace in `namespaces`, then the v2 cgroup directory's when
    /// `cgroupDir` (a monitor's `namespaces` reply).
    #[serde(rename_all = "camelCase")]
    ExecInto {
        process: Box<ProcessPlan>,
        stdio: u32,
        namespaces: Vec<Namespace>,
        procs: Vec<String>,
        cgroup_dir: bool,
    },
}

/// Helper → Node on the launch channel; monitor → client on a control
/// connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum HelperMsg {
    /// Phase 2: the container's PID 1 exists, in its new namespaces (its host
    /// pid), and the monitor's pid (another one when detached).
    Cloned { pid: i32, monitor: i32 },
    /// The container is in its cgroups, and its first process waits for the
    /// runtime's OCI hooks (`SandboxPlan::runtime_hooks`): Node runs them now.
    Placed,
    /// Phase 7: the sandbox is built and waits for its process.
    Ready,
    /// A pseudo-terminal's master, attached to this message (SCM_RIGHTS).
    Pty,
    /// Phase 9: the process was exec'd (its host pid).
    Started { pid: i32 },
    /// A step failed; the container (or the exec'd process) is gone.
    Failed(Report),
    /// Phase 10: the process ended.
    Exited {
        /// Exit status of the command, when it exited.
        code: Option<i32>,
        /// Signal that ended the command, when one did.
        signal: Option<i32>,
        rusage: Rusage,
        /// The contents of the plan's `usage_files`, in its order (None: not
        /// readable); empty for an exec'd process.
        #[serde(default)]
        #[cfg_attr(test, ts(optional, type = "Array<string | null>"))]
        usage: Vec<Option<String>>,
    },
    /// Reply to `namespaces`: the namespaces whose descriptors come with it,
    /// in this order, then the v2 cgroup directory's when `cgroupDir`; the
    /// `cgroup.procs` files a process is placed through otherwise.
    #[serde(rename_all = "camelCase")]
    Namespaces {
        namespaces: Vec<Namespace>,
        procs: Vec<String>,
        cgroup_dir: bool,
    },
}

/// Helper → the container's first process (or an exec'd one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ToChild {
    /// Phase 6: the id maps are written; build the sandbox (the idmapped
    /// trees are attached).
    Go,
    /// Phase 4 done on v1: the child is in its cgroup (sent after `Go`,
    /// always): it may enter its cgroup namespace.
    Placed,
    /// The runtime's hooks ran (`SandboxPlan::runtime_hooks`): the mounts
    /// made, the child goes on to pivot_root.
    Hooked,
    /// Phase 8: the process to become.
    Process(Box<ProcessPlan>),
}

/// The container's first process (or its init, or an exec'd process) → helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ChildMsg {
    /// Phase 7: the sandbox is built; a descriptor of each of its
    /// `namespaces` is attached (SCM_RIGHTS), in that order, so the monitor
    /// can join them for exec without naming any pid.
    Ready {
        namespaces: Vec<crate::plan::Namespace>,
    },
    Failed(Report),
    /// The pseudo-terminal's master, attached (SCM_RIGHTS); sent before exec.
    Pty,
    /// init: the command was exec'd. (Without init, EOF on the channel says it.)
    Started,
    /// init: how the command ended, just before init exits.
    Ended {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// A request to a running container's monitor, on its control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ControlRequest {
    /// Run a process in the container (stdin, stdout and stderr attached,
    /// unless it has a tty). Replies `started` or `failed`, then `exited`.
    /// Without `detach` the process is killed when the connection closes.
    Exec { process: Box<ProcessPlan>, detach: bool },
    /// Reply `namespaces`, with a descriptor of each of the container's
    /// namespaces and of its v2 cgroup: for a process the caller starts
    /// itself (`tsbox-init --exec`), which then descends from the caller, as
    /// a runc exec'd process does (an OCI runtime's `exec --detach`: conmon
    /// and containerd's shim are subreapers that wait for it).
    Namespaces,
    /// Signal the container's PID 1 or, on an exec connection, its process.
    Signal { signo: i32 },
    /// Reply `exited` when the container has ended.
    Wait,
    /// Run the process the container was created with (held since
    /// `create`). Replies `started` or `failed`; refused when it was started
    /// already.
    Start,
    /// No reply: the container is killed when this connection closes. An
    /// egress allowlist's keeper holds one, so that the container never
    /// outlives its policy, however the keeper ends (kill -9 included).
    Guard,
}

/// Resource usage of the container's PID 1 and everything it reaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Rusage {
    pub user_usec: u64,
    pub system_usec: u64,
    pub max_rss_kib: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Step;

    #[test]
    fn messages_are_tagged_by_type() {
        let v: serde_json::Value = serde_json::from_slice(&crate::encode(&HelperMsg::Cloned { pid: 42, monitor: 41 })).unwrap();
        assert_eq!(v, serde_json::json!({"type": "cloned", "pid": 42, "monitor": 41}));
        let back: NodeMsg = crate::decode(br#"{"type":"signal","signo":15}"#).unwrap();
        assert_eq!(back, NodeMsg::Signal { signo: 15 });
        let back: NodeMsg = crate::decode(br#"{"type":"cgroup"}"#).unwrap();
        assert_eq!(back, NodeMsg::Cgroup);
    }

    #[test]
    fn a_failure_carries_the_whole_report() {
        let r = Report::new(Step::PivotRoot, 22).path("/rootfs");
        let msg = HelperMsg::Failed(r.clone());
        let back: HelperMsg = crate::decode(&crate::encode(&msg)).unwrap();
        assert_eq!(back, HelperMsg::Failed(r));
    }

    #[test]
    fn the_phases_are_numbered_in_order() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i + 1, "{}", p.as_str());
        }
    }
}
