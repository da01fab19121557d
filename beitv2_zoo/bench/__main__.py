"""``python -m beitv2_zoo.bench``: the same as ``beitv2-zoo bench``."""

import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
