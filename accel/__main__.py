"""``python -m accel``: the ``accel`` command line."""

from .console import main

raise SystemExit(main())
