"""``python -m broker``: the ``pbroker`` command (serve an application, open a manhole); see broker.runner."""

import sys

from .runner import main

sys.exit(main())
