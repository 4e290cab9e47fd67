"""The `ragkit` command: a thin layer over the Python API."""
