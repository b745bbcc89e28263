"""Coverage-guided fuzz targets (atheris) for pbroker's parsers; see fuzz/README.md.

This package must not import ``net``, ``broker`` or ``cred`` itself: each target imports them
inside ``_util.instrument()`` so that atheris instruments them.
"""
