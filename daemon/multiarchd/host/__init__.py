"""This machine: its architecture and interpreter files (facts.py), what it runs natively
(native.py), and running probe programs through binfmt_misc (probing.py)."""
