"""Import hygiene: no training code and no network at import time."""

import subprocess
import sys
import textwrap
from pathlib import Path


def test_import_touches_neither_train_nor_network():
    script = textwrap.dedent(
        """
        import socket, sys
        def refuse(*args, **kwargs):
            raise AssertionError("network access during import")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        import beitv2_zoo
        beitv2_zoo.list_models()
        loaded = [m for m in sys.modules if m.startswith("beitv2_zoo.train")]
        assert not loaded, loaded
        assert "torch" not in sys.modules, "import beitv2_zoo and list_models must not load torch"
        from beitv2_zoo import get_model  # the lazy names still resolve
        assert callable(get_model) and "torch" in sys.modules
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_public_api_is_exported():
    import beitv2_zoo

    for name in ("get_model", "inference_model", "list_models", "get_record", "create_transform", "__version__"):
        assert hasattr(beitv2_zoo, name)
    assert set(beitv2_zoo.__all__) <= set(dir(beitv2_zoo))


def test_package_data_is_installed():
    from importlib import resources

    files = resources.files("beitv2_zoo")
    assert files.joinpath("py.typed").is_file()
    assert files.joinpath("weights", "labels", "imagenet1k.txt").is_file()
    assert files.joinpath("weights", "labels", "imagenet21k.tsv").is_file()


def test_loading_and_predicting_leave_torch_compiler_machinery_unimported():
    """Building on the meta device once pulled in sympy and torch._dynamo (about a second of a cold start)."""
    script = textwrap.dedent(
        """
        import sys
        from beitv2_zoo import get_model, inference_model
        model = get_model("beitv2_tiny_patch4_32_digits", pretrained=True)  # shipped in the wheel
        inference_model(model, "examples/images/chelsea.jpg")
        heavy = [m for m in ("sympy", "torch._dynamo", "torch.fx.experimental.symbolic_shapes") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
