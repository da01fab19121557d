"""``python -m beitv2_zoo.train train RECIPE ...`` / ``python -m beitv2_zoo.train test ...``."""

import sys

from .main import main

sys.exit(main())
