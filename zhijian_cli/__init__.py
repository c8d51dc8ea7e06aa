"""The ``zhijian`` command line: composes the other packages (demo, profiles, ingest)."""
