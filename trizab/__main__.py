"""``python -m trizab`` is the ``trizab`` command."""

from trizab.cli import main

raise SystemExit(main())
