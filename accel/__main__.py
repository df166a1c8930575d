"""``python -m accel``: the ``accel`` command line."""

from .cli import main

raise SystemExit(main())
