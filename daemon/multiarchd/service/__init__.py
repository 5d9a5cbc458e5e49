"""The long-running service, made of small parts behind small protocols (protocols.py): the
trigger (poke, debounce, coalesce, one timer), the verifier (probe bookkeeping), what to watch
(watches.py), and service.py, which wires them to the reconciler. The real loop, watcher and
systemd sit in one adapter module each: glib_loop.py (gi), inotify.py (watchdog),
systemd_glue.py (systemd-python)."""
