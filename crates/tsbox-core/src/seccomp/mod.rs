//! Seccomp: OCI `linux.seccomp` profiles, tsbox's default profile, and their
//! compilation to a classic BPF program that finds a call's rules by binary
//! search on its number (`compile.rs`; pure Rust, tsbox never links libseccomp,
//! and seccompiler supplies the encoding of the actions).
//!
//! The addon compiles a profile once, in the parent, for the host architecture
//! and caches the program; the plan carries it as a [`Bpf`]; the container
//! process only loads it, as its last step before execve (DESIGN.md, sync
//! point 4). Everything here is arch-independent data plus a compiler that
//! takes the target [`Arch`] as an argument, so the unit tests compile and check
//! the filters of both supported architectures on either host.
//!
//! How a profile is evaluated (the contract the compiler keeps and the tests
//! check with a BPF interpreter):
//! - a system call made through another ABI than the target's (32-bit x86 via
//!   `int 0x80`, arm32 compat) kills the process, and so does an x32 call on
//!   x86_64 (a number from 0x40000000 up, -1 excepted), whatever the profile's
//!   `architectures`: it shares x86_64's arch value and matches no rule, so the
//!   default action would let it past every rule of a deny-list (compile.rs);
//! - rules with argument conditions are tried before rules without, each group
//!   in profile order, and the first rule that matches decides — so
//!   `chmod` allowed outright and `chmod` with S_ISUID set denied reads the way
//!   it is written, whatever the order;
//! - conditions of one rule must all hold (AND); conditions compare the full
//!   64-bit argument, as libseccomp does;
//! - anything no rule matches gets `defaultAction`.

mod compile;
mod default;
mod profile;
mod relax;
mod syscalls;

#[cfg(test)]
mod bpf_interp;
#[cfg(test)]
mod tests;

pub use compile::compile;
pub use default::{default_profile, default_profile_json, hardening_rules, SOCKET_FAMILIES};
pub use profile::{Action, Agent, Arg, Op, Profile, SyscallRule, ARCHITECTURES, FLAGS};
pub use relax::relax;

use std::fmt;

/// The largest errno a filter may return (the kernel's MAX_ERRNO).
pub const MAX_ERRNO: u32 = 4095;
/// The kernel's limit on the length of a seccomp program (BPF_MAXINSNS).
pub const MAX_INSTRUCTIONS: usize = 4096;
/// Bytes per instruction: `struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }`.
pub const INSTRUCTION_SIZE: usize = 8;

/// A problem with a profile, or with compiling it. Each one that concerns the
/// profile names the JSON path of the value at fault, e.g.
/// `syscalls[3].names[1]: unknown syscall "mkdri"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    #[error("(profile): not valid JSON: {message}")]
    Json { message: String },
    #[error("{}: expected {expected}", shown(.path))]
    Type { path: String, expected: &'static str },
    #[error("{path}: required")]
    Missing { path: String },
    #[error("{path}: unknown field (an OCI linux.seccomp object has defaultAction, defaultErrnoRet, architectures, flags, listenerPath, listenerMetadata and syscalls; a rule has names, action, errnoRet and args; an argument has index, value, valueTwo and op)")]
    UnknownField { path: String },
    #[error("{path}: unknown syscall {name:?}")]
    UnknownSyscall { path: String, name: String },
    #[error("{path}: unknown action {value:?} (expected one of {})", profile::action_names())]
    UnknownAction { path: String, value: String },
    #[error("{path}: unknown operator {value:?} (expected one of {})", profile::op_names())]
    UnknownOp { path: String, value: String },
    #[error("{path}: unknown architecture {value:?} (expected one of {})", ARCHITECTURES.join(", "))]
    UnknownArch { path: String, value: String },
    #[error("{path}: unknown flag {value:?} (expected one of {})", FLAGS.join(", "))]
    UnknownFlag { path: String, value: String },
    /// Valid OCI that tsbox cannot honour: refused, never dropped.
    #[error("{path}: {what} is not supported by tsbox: {why}")]
    Unsupported { path: String, what: String, why: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("seccomp filters are compiled for x86_64 and aarch64, not {arch}")]
    HostArch { arch: &'static str },
    #[error("the compiled filter has {len} instructions; the kernel accepts at most {MAX_INSTRUCTIONS}: split the profile's rules or drop redundant ones")]
    TooLarge { len: usize },
    #[error("a seccomp program must be 1 to {MAX_INSTRUCTIONS} instructions of {INSTRUCTION_SIZE} bytes; got {len} bytes")]
    BadProgram { len: usize },
    /// The compiler found one of its own invariants broken: a tsbox bug,
    /// reported as such.
    #[error("seccomp compiler (a tsbox bug): {0}")]
    Backend(String),
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "(profile)"
    } else {
        path
    }
}

impl SeccompError {
    /// The JSON path of the value at fault, when the problem is in the profile.
    pub fn path(&self) -> Option<&str> {
        match self {
            SeccompError::Type { path, .. }
            | SeccompError::Missing { path }
            | SeccompError::UnknownField { path }
            | SeccompError::UnknownSyscall { path, .. }
            | SeccompError::UnknownAction { path, .. }
            | SeccompError::UnknownOp { path, .. }
            | SeccompError::UnknownArch { path, .. }
            | SeccompError::UnknownFlag { path, .. }
            | SeccompError::Unsupported { path, .. }
            | SeccompError::Invalid { path, .. } => Some(shown(path)),
            _ => None,
        }
    }

    /// The problem without its path: what [`Problem`] carries.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match self.path() {
            Some(path) => text.strip_prefix(&format!("{path}: ")).map(str::to_owned).unwrap_or(text),
            None => text.strip_prefix("(profile): ").map(str::to_owned).unwrap_or(text),
        }
    }
}

/// One problem of a profile: the JSON path of the value at fault
/// (`syscalls[3].names[1]`, or `(profile)` for the whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every problem of the profile in `text` (OCI `linux.seccomp` JSON) for
/// `arch`: not JSON, the wrong shape, values tsbox cannot honour, unknown
/// system calls, a program over the kernel's limit. Empty when it compiles.
/// This is the one validator of profiles; the TypeScript side only reports
/// what it finds.
pub fn problems(text: &str, arch: Arch, agent: Agent) -> Vec<Problem> {
    let found = match Profile::from_json_for(text, agent) {
        Ok(profile) => match compile(&profile, arch) {
            Ok(_) => return Vec::new(),
            Err(p) => p,
        },
        Err(p) => p,
    };
    found
        .0
        .iter()
        .map(|e| Problem {
            path: e.path().unwrap_or("(profile)").to_owned(),
            message: e.message(),
        })
        .collect()
}

/// Every problem found, in document order; displayed one after another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<SeccompError>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl From<SeccompError> for Problems {
    fn from(e: SeccompError) -> Problems {
        Problems(vec![e])
    }
}

/// The architectures tsbox compiles filters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture this program runs on, which is the one the container's
    /// processes make their system calls with.
    pub fn host() -> Result<Arch, SeccompError> {
        if cfg!(target_arch = "x86_64") {
            Ok(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Ok(Arch::Aarch64)
        } else {
            Err(SeccompError::HostArch {
                arch: std::env::consts::ARCH,
            })
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The OCI (libseccomp) name, as in `architectures`.
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }

    /// `seccomp_data.arch` for this ABI (AUDIT_ARCH_* from <linux/audit.h>).
    pub fn audit_arch(self) -> u32 {
        const AUDIT_ARCH_64BIT_LE: u32 = 0x8000_0000 | 0x4000_0000;
        match self {
            Arch::X86_64 => 62 | AUDIT_ARCH_64BIT_LE,
            Arch::Aarch64 => 183 | AUDIT_ARCH_64BIT_LE,
        }
    }

    /// The number of a system call on this architecture, if it has it.
    pub fn syscall(self, name: &str) -> Option<u32> {
        let table = match self {
            Arch::X86_64 => syscalls::X86_64,
            Arch::Aarch64 => syscalls::AARCH64,
        };
        table.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| table[i].1)
    }
}

/// True for the name of a system call on any Linux architecture: the check
/// that tells a typo from a call this architecture just does not have.
pub fn is_known_syscall(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.syscall(name).is_some()) || syscalls::OTHER_ARCHES.binary_search(&name).is_ok()
}

/// A compiled seccomp program: the raw `struct sock_filter` array, each
/// instruction 8 little-endian bytes (the byte order of both supported
/// architectures), ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
///
/// In the plan it travels as a hex string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bpf(Vec<u8>);

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Bpf {
    /// Checks the length: whole instructions, at least one, at most the kernel's limit.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Bpf, SeccompError> {
        let n = bytes.len() / INSTRUCTION_SIZE;
        if !bytes.len().is_multiple_of(INSTRUCTION_SIZE) || n == 0 || n > MAX_INSTRUCTIONS {
            return Err(SeccompError::BadProgram { len: bytes.len() });
        }
        Ok(Bpf(bytes))
    }

    fn from_instructions(prog: &[Instruction]) -> Result<Bpf, SeccompError> {
        if prog.len() > MAX_INSTRUCTIONS {
            return Err(SeccompError::TooLarge { len: prog.len() });
        }
        let mut bytes = Vec::with_capacity(prog.len() * INSTRUCTION_SIZE);
        for i in prog {
            bytes.extend_from_slice(&i.code.to_le_bytes());
            bytes.push(i.jt);
            bytes.push(i.jf);
            bytes.extend_from_slice(&i.k.to_le_bytes());
        }
        Bpf::from_bytes(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The number of instructions.
    pub fn len(&self) -> usize {
        self.0.len() / INSTRUCTION_SIZE
    }

    /// Never true: a program has at least one instruction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn instructions(&self) -> impl Iterator<Item = Instruction> + '_ {
        self.0.chunks_exact(INSTRUCTION_SIZE).map(|c| Instruction {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
    }

    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(self.0.len() * 2);
        for b in &self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    pub fn from_hex(hex: &str) -> Result<Bpf, SeccompError> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let h = hex.as_bytes();
        if !h.len().is_multiple_of(2) {
            return Err(SeccompError::BadProgram { len: h.len() / 2 });
        }
        let bytes = h
            .chunks_exact(2)
            .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or(SeccompError::Invalid {
                path: "seccomp".into(),
                message: "the program is not a hex string".into(),
            })?;
        Bpf::from_bytes(bytes)
    }
}

impl fmt::Debug for Bpf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bpf({} instructions)", self.len())
    }
}

impl serde::Serialize for Bpf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Bpf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bpf, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Bpf::from_hex(&hex).map_err(serde::de::Error::custom)
    }
}
