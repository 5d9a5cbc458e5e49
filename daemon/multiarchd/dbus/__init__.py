"""The D-Bus interface: its names, records and errors (api.py, pure) and the pydbus adapter
that serves it and calls it (pydbus_glue.py, the only pydbus importer)."""
