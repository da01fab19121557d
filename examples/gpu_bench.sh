#!/usr/bin/env bash
# The GPU benchmark in one prepared command: run it from the repository root on a machine with one
# CUDA card (written for an H100, where it should take about 3 to 4 minutes; every run has its own
# time limit and the limits add up to 7.5 minutes, so it ends within 8 whatever happens):
#
#     bash examples/gpu_bench.sh [OUT_DIR]        # OUT_DIR defaults to $OUT, else bench_gpu/
#
# Four runs of `python -m beitv2_zoo.bench --device cuda`, most important first, each writing its
# own JSON and text report (a run that fails or times out loses only its own section), on random
# weights and medians of 10 interleaved repeats:
#
#   1. throughput (limit 120 s): BEiT-B/16 at 224, beitv2_zoo against timm (and mmpretrain if
#      installed) at batch 1, 64 and 256, fp32 (no TF32) and bf16 (our bf16 weights; timm's bf16
#      autocast), with numerics and the card's measured GEMM peaks (bench_gpu_throughput.json);
#   2. MIM pretraining step (limit 150 s): BEiT v2 base with its VQ-KD tokenizer, batch 256, bf16
#      autocast, AdamW, 10 steps per timed run, SDPA (the kernel PyTorch picks) against eager
#      attention; images/s, model FLOP utilisation against the datasheet bf16 peak and the
#      measured one, peak memory (bench_gpu_mim.json);
#   3. folder inference (limit 90 s): 1024 JPEG photos, batch 256, 8 decoding threads, fp32,
#      against the model alone (bench_gpu_folder.json);
#   4. the MIM step with SDPA held to its memory-efficient and to its cuDNN kernel, SDPA's own
#      choice as reference (limit 90 s; bench_gpu_mim_kernels.json).
#
# Nothing is downloaded: the weights are random and the photos are made from examples/images.
# Needs torch with CUDA, safetensors, pillow, numpy; timm for the comparison (it is noted, not
# fatal, when missing). Set BENCH_DEVICE=cpu BENCH_SMALL=1 to dry-run the same steps on a CPU
# with the tiny test models (the test suite does this).
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-${OUT:-bench_gpu}}"
mkdir -p "$out_dir"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
device="${BENCH_DEVICE:-cuda}"

if [ "${BENCH_SMALL:-0}" = "1" ]; then
    model=test_beit_tiny; mim_model=test_beitv2_mim_tiny; repeats=1
    batches=(2); mim_batch=2; mim_steps=1; photos=4; folder_batch=2; workers=2
else
    model=beit-base-p16_beitv2-in21k-pre_3rdparty_in1k; mim_model=beitv2_mim_base_patch16; repeats=10
    batches=(1 64 256); mim_batch=256; mim_steps=10; photos=1024; folder_batch=256; workers=8
fi

python - "$device" <<'EOF' 2>&1 | tee "$out_dir/environment.txt"
import importlib.util, platform, sys, time
import torch
print(time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python", platform.python_version(), "torch", torch.__version__,
      "cuda", torch.version.cuda)
if sys.argv[1].startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    print("device:", torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, "GiB")
for name in ("timm", "mmpretrain"):
    print(name, "installed" if importlib.util.find_spec(name) else "not installed (left out of the comparison)")
import beitv2_zoo.bench, safetensors.torch  # fail here, naming the missing module, when a dependency is absent
EOF
[ "${PIPESTATUS[0]}" = "0" ] || exit 1

status=0
run() {  # run SECONDS NAME ARGS...: one benchmark run with its own limit, JSON and report
    local limit="$1" name="$2"
    shift 2
    echo "== $name (at most ${limit} s)" >&2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" python -m beitv2_zoo.bench --device "$device" --model "$model" --repeats "$repeats" \
        --json "$out_dir/bench_gpu_$name.json" "$@" > "$out_dir/bench_gpu_$name.txt" 2> "$out_dir/bench_gpu_$name.log"
    local code=$?
    echo "   exit $code after $((SECONDS - start)) s" >&2
    cat "$out_dir/bench_gpu_$name.txt"
    [ "$code" = "0" ] || { tail -5 "$out_dir/bench_gpu_$name.log" >&2; status=1; }
}

mim=(--only mim-step --mim-model "$mim_model" --mim-batch-size "$mim_batch" --mim-steps "$mim_steps")
run 120 throughput --only throughput --batch-sizes "${batches[@]}" --peers timm mmpretrain
run 150 mim "${mim[@]}" --mim-attentions sdpa eager
run 90 folder --only folder --precisions fp32 --folder-images "$photos" --folder-batch-sizes "$folder_batch" --folder-workers "$workers"
run 90 mim_kernels "${mim[@]}" --mim-attentions sdpa sdpa:efficient sdpa:cudnn
echo "results in $out_dir/" >&2
exit $status
