//! What the tsbox addon and the `tsbox-init` helper agree on: the launch plan,
//! the messages on the SOCK_SEQPACKET channels, the setup steps and the error
//! report every failed step produces.
//!
//! Everything on the wire is JSON, one message per packet. The plan carries
//! [`PLAN_VERSION`]; the helper refuses a plan of another version, so an addon and
//! a helper from different releases fail loudly instead of misreading each other.

pub mod devices;
#[cfg(test)]
mod generated;
pub mod message;
pub mod nssocket;
pub mod plan;
pub mod report;
pub mod seccomp;
pub mod tables;
pub mod wire;

pub use message::{ChildMsg, ControlRequest, HelperMsg, NodeMsg, Phase, Rusage, ToChild};
pub use plan::{
    Capabilities, CgroupPhase, ClockOffset, DeviceNode, Hook, Hooks, IdMaps, IoPriority, JoinedNamespace, MapsPhase, MemoryPolicy, Mount,
    MountKind, Namespace, NetworkPhase, ProcessPlan, Propagation, Rlimit, RootMode, RootfsSpec, SandboxPlan, Scheduler, SeccompAgent,
    Sysctl, TimeOffsets, TtySize, User, PLAN_VERSION,
};
pub use report::{Report, Step};
pub use tables::{errno_name, exit_code_for};

/// Encodes a message as one packet.
pub fn encode<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys,
    // no custom Serialize impls.
    serde_json::to_vec(msg).expect("tsbox wire types always serialise")
}

/// Decodes one packet.
pub fn decode<'a, T: serde::Deserialize<'a>>(packet: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(packet)
}
