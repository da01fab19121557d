"""Process start to first prediction with the weights already on disk, in fresh subprocesses.

Each script prints one JSON line with its peak RSS; the parent measures the wall time,
interpreter start included, as a user would experience ``python predict.py``.
"""

import json
import subprocess
import sys
import time

# VmHWM is this process's peak resident set since exec; ru_maxrss would also count the parent's pages
# that the child shared between fork and exec.
_PEAK_RSS = (
    "import json\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print(json.dumps({'peak_rss_mb': int(hwm) / 1024}))"
)

OURS = """
from beitv2_zoo import get_model, inference_model
model = get_model({name!r}, pretrained={weights!r})
inference_model(model, {image!r})
"""

TIMM = """
import torch, timm
from PIL import Image
from safetensors.torch import load_file
from timm.models.beit import Beit
model = Beit(**{timm_kwargs!r}).eval()
model.load_state_dict(load_file({weights!r}))
transform = timm.data.create_transform(**timm.data.resolve_data_config({{}}, model=model))
with torch.inference_mode():
    model(transform(Image.open({image!r}).convert('RGB')).unsqueeze(0)).softmax(-1)
"""

MMPRETRAIN = """
import warnings
warnings.filterwarnings('ignore')
from mmpretrain import inference_model
inference_model({name!r}, {image!r}, pretrained={mm_weights!r})
"""

IMPORT_ONLY = {"import beitv2_zoo": "import beitv2_zoo", "import torch": "import torch"}


def run_script(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; returns wall seconds and peak RSS (MB)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code + "\n" + _PEAK_RSS], capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    return {"seconds": seconds, **json.loads(result.stdout.strip().splitlines()[-1])}
