//! A classic-BPF interpreter for seccomp programs, for the tests: `struct
//! seccomp_data` in, the filter's return value out. It accepts exactly the
//! instructions the kernel's `seccomp_check_filter` does and checks a program
//! the way `bpf_check_classic` would (jumps in range, a return at the end), so a
//! program it runs is one the kernel would load.

use super::Instruction;

/// `struct seccomp_data` (<linux/seccomp.h>).
#[derive(Debug, Clone, Copy)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 64 bytes the filter reads, in the host's (little-endian) layout.
    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_le_bytes());
        b[4..8].copy_from_slice(&self.arch.to_le_bytes());
        b[8..16].copy_from_slice(&self.instruction_pointer.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        b
    }
}

/// The filter's decision, decoded as the kernel does (SECCOMP_RET_ACTION_FULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    KillProcess,
    KillThread,
    Trap(u16),
    Errno(u16),
    UserNotif,
    Trace(u16),
    Log,
    Allow,
}

impl Verdict {
    pub fn from_ret(ret: u32) -> Verdict {
        let data = (ret & 0xffff) as u16;
        match ret & 0xffff_0000 {
            0x8000_0000 => Verdict::KillProcess,
            0x0000_0000 => Verdict::KillThread,
            0x0003_0000 => Verdict::Trap(data),
            0x0005_0000 => Verdict::Errno(data),
            0x7fc0_0000 => Verdict::UserNotif,
            0x7ff0_0000 => Verdict::Trace(data),
            0x7ffc_0000 => Verdict::Log,
            0x7fff_0000 => Verdict::Allow,
            // The kernel treats an unknown action as KILL_PROCESS.
            _ => Verdict::KillProcess,
        }
    }
}

const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const W: u16 = 0x00;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;

const K: u16 = 0x00;
const X: u16 = 0x08;
const A: u16 = 0x10; // BPF_RET | BPF_A

const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const XOR: u16 = 0xa0;

const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;

const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

const DATA_LEN: u32 = 64;
const MEMWORDS: u32 = 16;

/// Checks a program as the kernel does before it loads it.
pub fn check(prog: &[Instruction]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > 4096 {
        return Err(format!("{} instructions", prog.len()));
    }
    for (pc, i) in prog.iter().enumerate() {
        let rest = (prog.len() - pc - 1) as u64;
        let ok = match i.code {
            c if c == LD | W | ABS => i.k % 4 == 0 && i.k < DATA_LEN,
            c if c == LD | W | LEN || c == LDX | W | LEN => true,
            c if c == LD | IMM || c == LDX | IMM || c == MISC | TAX || c == MISC | TXA => true,
            c if c == LD | MEM || c == LDX | MEM || c == ST || c == STX => i.k < MEMWORDS,
            c if c == RET | K || c == RET | A => true,
            c if c == ALU | NEG => true,
            c if c & 0x07 == ALU => {
                let op = c & 0xf0;
                [ADD, SUB, MUL, DIV, AND, OR, XOR, LSH, RSH].contains(&op) && (c & !0xf8) == ALU && !(op == DIV && c & X == 0 && i.k == 0)
            }
            c if c == JMP | JA => u64::from(i.k) < rest,
            c if c & 0x07 == JMP => {
                [JEQ, JGT, JGE, JSET].contains(&(c & 0xf0)) && (c & !0xf8) == JMP && u64::from(i.jt) < rest && u64::from(i.jf) < rest
            }
            _ => false,
        };
        if !ok {
            return Err(format!("instruction {pc} ({i:?}) would be refused by the kernel"));
        }
    }
    let last = prog[prog.len() - 1].code;
    if last != RET | K && last != RET | A {
        return Err("the program does not end with a return".into());
    }
    Ok(())
}

/// What a run of a program did, beside its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    /// The filter's 32-bit result.
    pub ret: u32,
    /// Whether the program read a system call argument (or the instruction
    /// pointer). A filter that reaches ALLOW for a call without reading them is
    /// one the kernel's action cache (Linux 5.11+) skips entirely for that call.
    pub read_args: bool,
    /// The number of instructions executed, the return included.
    pub steps: usize,
}

/// Runs a checked program over `data` and returns the filter's 32-bit result.
pub fn run(prog: &[Instruction], data: &SeccompData) -> Result<u32, String> {
    run_traced(prog, data).map(|t| t.ret)
}

/// As [`run`], and tells what the run read and how long it was.
pub fn run_traced(prog: &[Instruction], data: &SeccompData) -> Result<Trace, String> {
    Checked::new(prog)?.run(data)
}

/// A program that passed [`check`], to run many times without checking it again.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'p>(&'p [Instruction]);

impl<'p> Checked<'p> {
    pub fn new(prog: &'p [Instruction]) -> Result<Checked<'p>, String> {
        check(prog)?;
        Ok(Checked(prog))
    }

    /// As [`run_traced`].
    pub fn run(&self, data: &SeccompData) -> Result<Trace, String> {
        execute(self.0, data)
    }
}

fn execute(prog: &[Instruction], data: &SeccompData) -> Result<Trace, String> {
    let mut read_args = false;
    let mut steps = 0;
    let bytes = data.bytes();
    let (mut a, mut x): (u32, u32) = (0, 0);
    let mut mem = [0u32; MEMWORDS as usize];
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc).ok_or("ran off the end")?;
        pc += 1;
        steps += 1;
        let src = if i.code & X != 0 { x } else { i.k };
        match i.code {
            c if c == LD | W | ABS => {
                let o = i.k as usize;
                read_args |= o >= 8;
                a = u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
            }
            c if c == LD | W | LEN => a = DATA_LEN,
            c if c == LDX | W | LEN => x = DATA_LEN,
            c if c == LD | IMM => a = i.k,
            c if c == LDX | IMM => x = i.k,
            c if c == LD | MEM => a = mem[i.k as usize],
            c if c == LDX | MEM => x = mem[i.k as usize],
            c if c == ST => mem[i.k as usize] = a,
            c if c == STX => mem[i.k as usize] = x,
            c if c == MISC | TAX => x = a,
            c if c == MISC | TXA => a = x,
            c if c == RET | K => {
                return Ok(Trace {
                    ret: i.k,
                    read_args,
                    steps,
                })
            }
            c if c == RET | A => return Ok(Trace { ret: a, read_args, steps }),
            c if c == ALU | NEG => a = a.wrapping_neg(),
            c if c & 0x07 == ALU => {
                a = match c & 0xf0 {
                    ADD => a.wrapping_add(src),
                    SUB => a.wrapping_sub(src),
                    MUL => a.wrapping_mul(src),
                    DIV => a.checked_div(src).unwrap_or(0),
                    AND => a & src,
                    OR => a | src,
                    XOR => a ^ src,
                    LSH => a.checked_shl(src).unwrap_or(0),
                    RSH => a.checked_shr(src).unwrap_or(0),
                    _ => unreachable!("checked"),
                }
            }
            c if c == JMP | JA => pc += i.k as usize,
            c if c & 0x07 == JMP => {
                let taken = match c & 0xf0 {
                    JEQ => a == src,
                    JGT => a > src,
                    JGE => a >= src,
                    JSET => a & src != 0,
                    _ => unreachable!("checked"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            _ => unreachable!("checked"),
        }
    }
}
