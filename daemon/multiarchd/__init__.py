"""multiarchd: keeps the kernel's binfmt_misc table true to a policy."""

# The one place the version is written: pyproject.toml, the D-Bus Version property, --version,
# the rpm spec (by macro) and the tests read it from here; the Debian changelog and the
# Kubernetes image tag are checked against it by the test suite.
__version__ = "0.1.0"
