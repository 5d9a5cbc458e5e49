"""What the tests (and bench/) use to run real parts: each helper once, as a context manager.

paths (where things are), notify (an sd_notify listener), holder (a process holding namespaces
open), binfmt (a private binfmt_misc instance), bus (a private system bus), journal (a private
journald), daemon (one way to start multiarchd), nspawn (systemd as PID 1), fullns (a user
namespace mapping 65536 IDs), commands (running the installed commands), fakes (the service's
protocols, faked, with a virtual clock).
"""
