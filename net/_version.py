"""The version of the pbroker distribution: written here and nowhere else.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``); ``net``, ``broker`` and ``cred``
export it as ``__version__``.
"""

__version__ = "0.2.0"
