//! Messages on the two SOCK_SEQPACKET channels of a launch:
//! Node ⇄ helper (`NodeMsg` one way, `HelperMsg` the other) and
//! helper ⇄ container child (`HelperMsg::Go` down, `ChildMsg` up).
//! The numbers are DESIGN.md's sync points.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::report::Report;

/// Node → helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum NodeMsg {
    /// (2) The first message: what to build.
    Plan(Box<Plan>),
    /// (3) The id maps are written; let the child set up and exec.
    Go,
    /// The cgroup the plan names exists now, limits written (`awaitCgroup`).
    CgroupReady,
    /// Deliver a signal to the container's PID 1 (init forwards it).
    Signal { signo: i32 },
}

/// Helper → Node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum HelperMsg {
    /// (3) The container's PID 1 exists, in its new namespaces; its host pid,
    /// and whether it is in its cgroup or the helper places it (else Node
    /// places it now). Node says go unless the plan had the helper write the
    /// id maps.
    Cloned { pid: i32, placed: bool },
    /// (4) The command was exec'd.
    Started,
    /// The pseudo-terminal's master, attached to this message (SCM_RIGHTS).
    Pty,
    /// A step failed; the helper exits after this.
    Failed(Report),
    /// (5) The container ended.
    Exited {
        /// Exit status of the command, when it exited.
        code: Option<i32>,
        /// Signal that ended the command, when one did.
        signal: Option<i32>,
        rusage: Rusage,
    },
}

/// Helper → container child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ChildGo {
    /// The id maps are written: set up (the idmapped trees are attached).
    Go,
    /// The child is in its cgroup (sent after `Go`, always): it may enter its
    /// cgroup namespace, and exec.
    Placed,
}

/// Container child (or its init) → helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ChildMsg {
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

/// Resource usage of the container's PID 1 and everything it reaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
        let v: serde_json::Value = serde_json::from_slice(&crate::encode(&HelperMsg::Cloned { pid: 42, placed: true })).unwrap();
        assert_eq!(v, serde_json::json!({"type": "cloned", "pid": 42, "placed": true}));
        let back: NodeMsg = crate::decode(br#"{"type":"signal","signo":15}"#).unwrap();
        assert_eq!(back, NodeMsg::Signal { signo: 15 });
    }

    #[test]
    fn a_failure_carries_the_whole_report() {
        let r = Report::new(Step::PivotRoot, 22).path("/rootfs");
        let msg = HelperMsg::Failed(r.clone());
        let back: HelperMsg = crate::decode(&crate::encode(&msg)).unwrap();
        assert_eq!(back, HelperMsg::Failed(r));
    }
}
