//! An interpreter for the eBPF the device program generator emits, for the
//! tests: `struct bpf_cgroup_dev_ctx` in, the verdict out. It knows only
//! the instructions [`program`](super::program) may use and refuses a program
//! the kernel's verifier would (an unknown opcode, a jump backwards or out
//! of range, a register read before it is written, a load through anything
//! but the context, an exit with R0 unset, a last instruction that is not an
//! exit), so a program it runs is also one of the shape the kernel loads.

use super::program::*;
use super::Insn;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reg {
    Unset,
    Ctx,
    Scalar(u64),
}

/// Checks `prog` and runs it on a device access: `kind` (1 block, 2 char),
/// `access` (ACC_* bits), the device's numbers. Returns the program's R0.
pub fn run(prog: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> Result<u64, String> {
    if prog.is_empty() || prog.len() > 4096 {
        return Err(format!("{} instructions", prog.len()));
    }
    if prog.last().unwrap().code != JMP_EXIT {
        return Err("the last instruction is not an exit".into());
    }
    let ctx: [u32; 3] = [(access << 16) | kind, major, minor];
    let mut r = [Reg::Unset; 11];
    r[1] = Reg::Ctx;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > prog.len() {
            return Err("ran more steps than there are instructions (a loop)".into());
        }
        let i = prog.get(pc).ok_or_else(|| format!("pc {pc} is past the end"))?;
        let (dst, src) = (usize::from(i.dst), usize::from(i.src));
        if dst > 10 || src > 10 {
            return Err(format!("pc {pc}: register out of range"));
        }
        let scalar = |r: &[Reg; 11], n: usize| match r[n] {
            Reg::Scalar(v) => Ok(v),
            other => Err(format!("pc {pc}: r{n} is {other:?}, not a number")),
        };
        let jump = |taken: bool| -> Result<usize, String> {
            if i.off < 0 {
                return Err(format!("pc {pc}: a backward jump"));
            }
            let target = pc + 1 + if taken { i.off as usize } else { 0 };
            if target >= prog.len() {
                return Err(format!("pc {pc}: a jump out of the program"));
            }
            Ok(target)
        };
        match i.code {
            LDX_MEM_W => {
                if r[src] != Reg::Ctx {
                    return Err(format!("pc {pc}: a load through r{src}, which is not the context"));
                }
                if i.off < 0 || i.off % 4 != 0 || i.off > 8 {
                    return Err(format!("pc {pc}: a load at offset {} of the context", i.off));
                }
                r[dst] = Reg::Scalar(u64::from(ctx[i.off as usize / 4]));
                pc += 1;
            }
            ALU32_AND_K => {
                r[dst] = Reg::Scalar(u64::from(scalar(&r, dst)? as u32 & i.imm as u32));
                pc += 1;
            }
            ALU32_RSH_K => {
                if !(0..32).contains(&i.imm) {
                    return Err(format!("pc {pc}: a shift by {}", i.imm));
                }
                r[dst] = Reg::Scalar(u64::from((scalar(&r, dst)? as u32) >> i.imm));
                pc += 1;
            }
            ALU32_MOV_K => {
                r[dst] = Reg::Scalar(u64::from(i.imm as u32));
                pc += 1;
            }
            ALU32_MOV_X => {
                r[dst] = Reg::Scalar(u64::from(scalar(&r, src)? as u32));
                pc += 1;
            }
            // A 64-bit jump compares with the immediate sign-extended.
            JMP_JEQ_K => pc = jump(scalar(&r, dst)? == i.imm as i64 as u64)?,
            JMP_JNE_K => pc = jump(scalar(&r, dst)? != i.imm as i64 as u64)?,
            JMP_JNE_X => pc = jump(scalar(&r, dst)? != scalar(&r, src)?)?,
            JMP_EXIT => return scalar(&r, 0),
            code => return Err(format!("pc {pc}: opcode {code:#04x} is not one the generator uses")),
        }
    }
}
