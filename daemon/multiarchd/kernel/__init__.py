"""The kernel's binfmt_misc table: reading entry files, the kernel's refusals in words, whose
table it is, and what writes to it: table.py, driven by apply.py from a plan, through raw.py's
write(), which the boot record's replay also uses for its register lines."""
