"""``python -m beitv2_zoo.train train RECIPE ...`` / ``python -m beitv2_zoo.train test ...``: the arguments of
``beitv2-zoo train`` / ``beitv2-zoo test``."""

import sys

from .commands import main

sys.exit(main())
