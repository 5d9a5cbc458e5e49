"""Command-line entry points: `multiarchd` (multiarchd.py: the service, or one run with --once)
and `multiarchctl` (multiarchctl.py: the verbs; sources.py: the same answers from the daemon
over D-Bus or from a local run)."""
