"""Command-line entry points: `multiarchd` (the service) and `multiarchctl` (the admin tool)."""
