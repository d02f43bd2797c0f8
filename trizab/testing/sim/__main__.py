"""``python -m trizab.testing.sim``: soak, replay or time failovers (see :func:`main`)."""

import sys

from trizab.testing.sim import main

sys.exit(main())
