"""multiarchd: keeps the kernel's binfmt_misc table true to a policy."""

__version__ = "0.1.0"
