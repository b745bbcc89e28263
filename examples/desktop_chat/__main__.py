"""``python -m examples.desktop_chat``: see app.py."""

import sys

from .app import main

sys.exit(main())
