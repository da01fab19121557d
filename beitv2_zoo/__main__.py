"""``python -m beitv2_zoo`` is the ``beitv2-zoo`` command."""

import sys

from .cli import main

sys.exit(main())
