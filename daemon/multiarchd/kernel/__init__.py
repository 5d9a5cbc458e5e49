"""The kernel's binfmt_misc table: reading entry files, the kernel's refusals in words, and
table.py, the only code that writes to the kernel (apply.py drives it from a plan)."""
