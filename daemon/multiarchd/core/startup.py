"""The start-up code of a guarded image of QEMU (core/cpu_image.py), one function per host: a
few instructions the kernel runs before QEMU's own entry, as machine code, commented
instruction by instruction. Pure."""

from __future__ import annotations

import struct

EM_X86_64, EM_AARCH64 = 62, 183
AT_SECURE = 23  # auxiliary vector: the kernel changed the credentials (setuid, binfmt's C)


# Both stubs do the same, in three steps:
#  1. walk the initial stack (argc, argv, NULL, envp, NULL, auxv pairs up to AT_NULL) to find
#     its end and AT_SECURE's value;
#  2. write a new one below it, 16-byte aligned: argc + len(words), argv[0], the words, the
#     rest of argv, envp less every QEMU_* string when AT_SECURE is not 0, the auxv pairs as
#     they were (their pointers still point at the strings above, which stay where they are);
#  3. move the stack pointer to it and jump to QEMU's entry.
# A copy and not an edit in place: the C library finds auxv right after envp's NULL, so a
# shorter envp must move everything below auxv, and a longer argv everything above argc.
# Only the stack pointer and the scratch registers of the process ABI change: rdx on x86-64
# and x0 on arm64, which the kernel hands to _start, are left as they were.

def _x86_64(words: list[int], entry_at: int) -> bytes:
    """`words`: offsets of the strings to put after argv[0], from the stub's first byte;
    rip-relative values count from each instruction's end. Direction flag clear at entry (the
    ABI): lods/stos/movs step forward."""
    k = len(words)
    code = bytearray()
    code += bytes.fromhex("4889e6")            # mov rsi, rsp
    code += bytes.fromhex("48ad")              # lodsq                  rax = argc
    code += bytes.fromhex("488d74c608")        # lea rsi, [rsi+rax*8+8] envp[0]
    code += bytes.fromhex("48ad")              # 1: lodsq
    code += bytes.fromhex("4885c0")            # test rax, rax
    code += bytes.fromhex("75f9")              # jnz 1b                 rsi = auxv
    code += bytes.fromhex("31c9")              # xor ecx, ecx           AT_SECURE, 0 if absent
    code += bytes.fromhex("48ad")              # 2: lodsq               type
    code += bytes.fromhex("4989c0")            # mov r8, rax
    code += bytes.fromhex("48ad")              # lodsq                  value
    code += bytes.fromhex("4983f8") + bytes([AT_SECURE])  # cmp r8, AT_SECURE
    code += bytes.fromhex("480f44c8")          # cmove rcx, rax
    code += bytes.fromhex("4d85c0")            # test r8, r8
    code += bytes.fromhex("75ec")              # jnz 2b                 rsi = past AT_NULL
    code += bytes.fromhex("4889e7")            # mov rdi, rsp
    code += bytes.fromhex("4829f7")            # sub rdi, rsi           -(bytes read)
    code += bytes.fromhex("488d7c3c") + struct.pack("<b", -8 * k)
    #                                            lea rdi, [rsp+rdi-8k]  room for all, below
    code += bytes.fromhex("4883e7f0")          # and rdi, -16           aligned
    code += bytes.fromhex("4989f9")            # mov r9, rdi            the new stack pointer
    code += bytes.fromhex("4889e6")            # mov rsi, rsp
    code += bytes.fromhex("48ad")              # lodsq                  argc
    code += bytes.fromhex("4883c0") + bytes([k])  # add rax, k
    code += bytes.fromhex("48ab")              # stosq
    code += bytes.fromhex("48a5")              # movsq                  argv[0]
    for at in words:
        code += bytes.fromhex("488d05") + struct.pack("<i", at - (len(code) + 7))
        #                                        lea rax, [rip+word]
        code += bytes.fromhex("48ab")          # stosq
    code += bytes.fromhex("48ad")              # 3: lodsq               the rest of argv
    code += bytes.fromhex("48ab")              # stosq
    code += bytes.fromhex("4885c0")            # test rax, rax
    code += bytes.fromhex("75f7")              # jnz 3b                 (its NULL copied too)
    code += bytes.fromhex("48ad")              # 4: lodsq               envp
    code += bytes.fromhex("4885c0")            # test rax, rax
    code += bytes.fromhex("7414")              # jz 6f
    code += bytes.fromhex("e30e")              # jrcxz 5f               not AT_SECURE: keep
    code += bytes.fromhex("8138") + b"QEMU"    # cmp dword [rax], "QEMU"  (a shorter string
    #                                            reads at most 3 bytes past its NUL: the stack
    #                                            ends in a zero word after the last string)
    code += bytes.fromhex("7506")              # jne 5f
    code += bytes.fromhex("8078045f")          # cmp byte [rax+4], "_"
    code += bytes.fromhex("74e9")              # je 4b                  QEMU_*: dropped
    code += bytes.fromhex("48ab")              # 5: stosq
    code += bytes.fromhex("ebe5")              # jmp 4b
    code += bytes.fromhex("48ab")              # 6: stosq               envp's NULL
    code += bytes.fromhex("48ad")              # 7: lodsq               auxv type
    code += bytes.fromhex("48ab")              # stosq
    code += bytes.fromhex("4989c0")            # mov r8, rax
    code += bytes.fromhex("48a5")              # movsq                  its value
    code += bytes.fromhex("4d85c0")            # test r8, r8
    code += bytes.fromhex("75f2")              # jnz 7b                 AT_NULL copied too
    code += bytes.fromhex("4c89cc")            # mov rsp, r9
    code += b"\xe9" + struct.pack("<i", entry_at - (len(code) + 5))  # jmp QEMU's entry
    return bytes(code)


def _aarch64(words: list[int], entry_at: int) -> bytes:
    """As _x86_64; branch and adr offsets count from the instruction itself."""
    def adr(reg: int, pc: int, target: int) -> int:
        off = target - pc
        return 0x10000000 | (off & 3) << 29 | ((off >> 2) & 0x7FFFF) << 5 | reg

    k = len(words)
    code = [0x910003E9,    # mov x9, sp
            0xF840852A,    # ldr x10, [x9], #8      argc
            0x8B0A0D29,    # add x9, x9, x10, lsl #3
            0x91002129,    # add x9, x9, #8         envp[0]
            0xF840852A,    # 1: ldr x10, [x9], #8
            0xB5FFFFEA,    # cbnz x10, 1b           x9 = auxv
            0xD280000B,    # mov x11, #0            AT_SECURE, 0 if absent
            0xA8C1312A,    # 2: ldp x10, x12, [x9], #16   type, value
            0xF100015F | AT_SECURE << 10,  # cmp x10, #AT_SECURE
            0x9A8B018B,    # csel x11, x12, x11, eq
            0xB5FFFFAA,    # cbnz x10, 2b           x9 = past AT_NULL
            0x910003EC,    # mov x12, sp
            0xCB0C012D,    # sub x13, x9, x12       bytes read
            0xCB0D018D,    # sub x13, x12, x13
            0xD10001AD | (8 * k) << 10,  # sub x13, x13, #8k   room for all, below
            0x927CEDAD,    # and x13, x13, #-16     aligned
            0xAA0D03EE,    # mov x14, x13           the new stack pointer
            0x910003E9,    # mov x9, sp
            0xF840852A,    # ldr x10, [x9], #8      argc
            0x9100014A | k << 10,  # add x10, x10, #k
            0xF80085AA,    # str x10, [x13], #8
            0xF840852A,    # ldr x10, [x9], #8      argv[0]
            0xF80085AA]    # str x10, [x13], #8
    for at in words:
        code += [adr(10, 4 * len(code), at),        # adr x10, word
                 0xF80085AA]                         # str x10, [x13], #8
    code += [0xF840852A,   # 3: ldr x10, [x9], #8   the rest of argv
             0xF80085AA,   # str x10, [x13], #8
             0xB5FFFFCA,   # cbnz x10, 3b           (its NULL copied too)
             0x5288AA2F,   # mov w15, #0x4551       "QE"
             0x72AAA9AF,   # movk w15, #0x554d, lsl #16   "MU"
             0xF840852A,   # 4: ldr x10, [x9], #8   envp
             0xB400014A,   # cbz x10, 6f
             0xB40000EB,   # cbz x11, 5f            not AT_SECURE: keep
             0xB940014C,   # ldr w12, [x10]         (as on x86-64: at most 3 bytes past a NUL)
             0x6B0F019F,   # cmp w12, w15
             0x54000081,   # b.ne 5f
             0x3940114C,   # ldrb w12, [x10, #4]
             0x71017D9F,   # cmp w12, #'_'
             0x54FFFF00,   # b.eq 4b                QEMU_*: dropped
             0xF80085AA,   # 5: str x10, [x13], #8
             0x17FFFFF6,   # b 4b
             0xF80085AA,   # 6: str x10, [x13], #8  envp's NULL
             0xA8C1312A,   # 7: ldp x10, x12, [x9], #16   an auxv pair
             0xA88131AA,   # stp x10, x12, [x13], #16
             0xB5FFFFCA,   # cbnz x10, 7b           AT_NULL copied too
             0x910001DF]   # mov sp, x14
    code += [0x14000000 | ((entry_at - 4 * len(code)) >> 2) & 0x3FFFFFF]  # b QEMU's entry
    return struct.pack(f"<{len(code)}I", *code)


STUBS = {EM_X86_64: _x86_64, EM_AARCH64: _aarch64}
STUB_SIZE = 256  # both fit; the mark and the strings follow at this offset
# Right after the code: says which start-up code this is (the audit trusts only this one).
GUARD_MARK = b"\0multiarchd-qemu-guard 2\0"
