"""Names the boot path shares with everything else, kept here with no import at all so that the
boot record's replay (reconciler/record.py, kernel/raw.py) takes them without loading the model:
the prefix of multiarchd's own entries, and the binfmt_misc files that are no entry."""

OWNED_PREFIX = "multiarch-"  # entries multiarchd owns: multiarch-<arch> or multiarch-<name>
CONTROL_FILES = frozenset({"register", "status", ".", ".."})  # (and the directory's own names)
