"""The data everything else passes around: frozen dataclasses and enums, no I/O.

policy (what is asked), catalog (what is known), host (what this machine has), registration and
table (what the kernel holds), problems (what is wrong, and where), errors (domain failures),
reply (an answer owed to a caller, given later).
"""
