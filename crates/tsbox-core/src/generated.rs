//! The TypeScript files generated from this crate, and the test that keeps
//! them current: `npm run generate` writes them (TSBOX_GENERATE=1), and
//! `cargo test` fails while one is stale.
//!
//! - `ts/generated/tables.ts`: errno names, exit statuses, steps and phases
//!   ([`crate::tables`]);
//! - `ts/generated/wire.ts`: the plans and the messages of the launch channel
//!   and the control socket, declared by ts-rs from the Rust types (a
//!   dev-dependency: the helper and the addon are built without it).

/// Each generated file, by its path from the repository root, with its text.
#[cfg(test)]
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        ("ts/generated/tables.ts", crate::tables::typescript()),
        ("ts/generated/wire.ts", wire::typescript()),
    ]
}

#[cfg(test)]
mod wire {
    use ts_rs::{Config, TS};

    use crate::message::{ControlRequest, HelperMsg, NodeMsg, Rusage};
    use crate::plan::*;
    use crate::report::{Report, Step};

    /// Every type that crosses from Node to the helper or back, in the order
    /// the file declares them.
    fn declarations(cfg: &Config) -> Vec<String> {
        vec![
            SandboxPlan::decl(cfg),
            Namespace::decl(cfg),
            JoinedNamespace::decl(cfg),
            Sysctl::decl(cfg),
            DeviceNode::decl(cfg),
            TimeOffsets::decl(cfg),
            ClockOffset::decl(cfg),
            Hooks::decl(cfg),
            Hook::decl(cfg),
            MountPropagation::decl(cfg),
            MemoryPolicy::decl(cfg),
            SeccompAgent::decl(cfg),
            IoPriority::decl(cfg),
            Scheduler::decl(cfg),
            RootfsSpec::decl(cfg),
            RootMode::decl(cfg),
            Propagation::decl(cfg),
            Mount::decl(cfg),
            MountKind::decl(cfg),
            MapsPhase::decl(cfg),
            IdMaps::decl(cfg),
            CgroupPhase::decl(cfg),
            NetworkPhase::decl(cfg),
            ProcessPlan::decl(cfg),
            User::decl(cfg),
            Capabilities::decl(cfg),
            Rlimit::decl(cfg),
            TtySize::decl(cfg),
            NodeMsg::decl(cfg),
            HelperMsg::decl(cfg),
            ControlRequest::decl(cfg),
            Rusage::decl(cfg),
            Report::decl(cfg),
            Step::decl(cfg),
        ]
    }

    /// `ts/generated/wire.ts`. Integers are `number`: every one on the wire
    /// (sizes, nanoseconds since boot, microseconds) stays below 2^53.
    pub fn typescript() -> String {
        let cfg = Config::new().with_large_int("number");
        let mut out = String::from(
            "// Generated from crates/tsbox-core/src/{plan,message,report}.rs by `npm run generate`; do not edit.\n\
             // The wire types of the launch channel and the control socket: Rust's serde\n\
             // types are the one definition, declared here by ts-rs.\n",
        );
        for decl in declarations(&cfg) {
            out.push_str("\nexport ");
            out.push_str(&decl);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn generated_typescript_is_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let write = std::env::var_os("TSBOX_GENERATE").is_some();
        for (file, text) in super::files() {
            let path = root.join(file);
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(on_disk == text, "{file} is stale: run `npm run generate` and commit it");
        }
    }
}
