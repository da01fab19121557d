"""Model definitions: the BEiT vision transformer and its classifier."""

from .beit import ARCHITECTURES, Beit, build_beit

__all__ = ["ARCHITECTURES", "Beit", "build_beit"]
