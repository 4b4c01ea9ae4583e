//! A [`Policy`] as an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`.
//!
//! The kernel runs it with R1 pointing at `struct bpf_cgroup_dev_ctx`
//! (<linux/bpf.h>): `u32 access_type` (the device type in the low 16 bits,
//! the access bits above them), `u32 major`, `u32 minor`; it returns 1 to
//! allow, 0 to deny (EPERM). The program:
//!
//! ```text
//!     r2 = type, r3 = access, r4 = major, r5 = minor      (the prologue)
//!   block i, one per exception:
//!     if r2 != kind       goto block i+1
//!     w1 = w3; w1 &= ...  access test (below)             (skipped when it cannot fail)
//!     if r4 != major      goto block i+1                  (left out for *)
//!     if r5 != minor      goto block i+1                  (left out for *)
//!     w0 = !default; exit
//!   w0 = default; exit
//! ```
//!
//! The access test is the v1 controller's: with the default deny, the
//! exception must cover all of the request (`access & ~exception == 0`); with
//! the default allow, it denies when it shares any of it (`access &
//! exception != 0`). Every jump is forward, so the verifier sees no loop.

use super::{Kind, Policy, ACC_ALL};

/// `struct bpf_insn` (<linux/bpf.h>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes: class | size or op | source (<linux/bpf_common.h>, <linux/bpf.h>).
pub(super) const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
pub(super) const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K: w(dst) &= imm
pub(super) const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K: w(dst) >>= imm
pub(super) const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K: w(dst) = imm
pub(super) const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X: w(dst) = w(src)
pub(super) const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K: if dst == imm goto +off
pub(super) const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K: if dst != imm goto +off
pub(super) const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X: if dst != src goto +off
pub(super) const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT: return r0

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, dst, src, off, imm }
    }

    /// The 8 bytes the kernel reads. tsbox runs on x86_64 and aarch64, both
    /// little-endian, where the destination register is the low nibble.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// A jump to a label not placed yet: the block after the current one.
const NEXT: i16 = i16::MIN;

/// The program that decides as `policy` does.
pub fn program(policy: &Policy) -> Vec<Insn> {
    let mut p = vec![
        // r2 = access_type & 0xffff: the device type.
        Insn::new(LDX_MEM_W, 2, 1, 0, 0),
        Insn::new(ALU32_AND_K, 2, 0, 0, 0xffff),
        // r3 = access_type >> 16: the access asked for.
        Insn::new(LDX_MEM_W, 3, 1, 0, 0),
        Insn::new(ALU32_RSH_K, 3, 0, 0, 16),
        // r4 = major, r5 = minor.
        Insn::new(LDX_MEM_W, 4, 1, 4, 0),
        Insn::new(LDX_MEM_W, 5, 1, 8, 0),
    ];
    let verdict = |allow: bool| i32::from(allow);
    for (key, access) in &policy.exceptions {
        let start = p.len();
        p.push(Insn::new(JMP_JNE_K, 2, 0, NEXT, key.kind as i32));
        if policy.default_allow {
            // Denied when the request shares any of the exception's access.
            p.push(Insn::new(ALU32_MOV_X, 1, 3, 0, 0));
            p.push(Insn::new(ALU32_AND_K, 1, 0, 0, i32::from(*access)));
            p.push(Insn::new(JMP_JEQ_K, 1, 0, NEXT, 0));
        } else if *access != ACC_ALL {
            // Allowed when the exception covers all of the request.
            p.push(Insn::new(ALU32_MOV_X, 1, 3, 0, 0));
            p.push(Insn::new(ALU32_AND_K, 1, 0, 0, i32::from(!*access & ACC_ALL)));
            p.push(Insn::new(JMP_JNE_K, 1, 0, NEXT, 0));
        }
        for (reg, number) in [(4, key.major), (5, key.minor)] {
            let Some(n) = number else { continue };
            match i32::try_from(n) {
                // An immediate is sign-extended to 64 bits, and the register
                // holds the number zero-extended: equal for these only.
                Ok(imm) => p.push(Insn::new(JMP_JNE_K, reg, 0, NEXT, imm)),
                Err(_) => {
                    // w1 = n zero-extends, as the load did.
                    p.push(Insn::new(ALU32_MOV_K, 1, 0, 0, n as i32));
                    p.push(Insn::new(JMP_JNE_X, reg, 1, NEXT, 0));
                }
            }
        }
        p.push(Insn::new(ALU32_MOV_K, 0, 0, 0, verdict(!policy.default_allow)));
        p.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
        // The block's jumps land on the next block's first instruction.
        let next = p.len();
        for (pc, insn) in p.iter_mut().enumerate().skip(start) {
            if insn.off == NEXT {
                insn.off = i16::try_from(next - pc - 1).expect("a block is a few instructions long");
            }
        }
    }
    p.push(Insn::new(ALU32_MOV_K, 0, 0, 0, verdict(policy.default_allow)));
    p.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    p
}

// The kind is compared with the context's type as it is: BPF_DEVCG_DEV_BLOCK
// and BPF_DEVCG_DEV_CHAR.
const _: () = assert!(Kind::Block as i32 == 1 && Kind::Char as i32 == 2);
