__version__ = "0.2.0"


def written_by() -> str:
    """``'beitv2_zoo <version>'``: the ``written_by`` metadata of files this version writes."""
    return f"beitv2_zoo {__version__}"
