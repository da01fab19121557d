"""BEiT v2 semantic segmentation at toy scale on a CPU: the classification reproduction's
MIM-pretrained tiny student fine-tuned as a BEiT + UPerNet segmenter on digit canvases, against the
same segmenter from scratch, for several seeds.

    python examples/reproduction/segmentation/run.py     # writes results.json and the README table here

Stages:

0. the classification reproduction's teacher → VQ-KD → MIM chain (``../run.py``'s stages and work
   folders, so runs that exist under ``--digits-work-dir`` are reused, not retrained);
1. the canvases (``prepare_canvases.py``): training canvases from the 997 ``main/train`` digits the
   MIM stage saw (unlabelled), validation canvases from the 300 held-out ``main/val`` digits;
2. per seed, the segmenter (``recipes/tiny_p4_canvas_seg.py``) from the seed's MIM weights and from
   random initialisation, with the same recipe and budget;
3. per run, ``beitv2-zoo test`` on the validation canvases: mIoU / mAcc / aAcc at the original label
   size, the published protocol (slide inference; one 64-pixel window per canvas).

``--ship`` also copies the seed-0 pretrained segmenter to ``beitv2_zoo/weights/files/`` for packaging.
``--max-steps N`` (every stage) and ``--canvases TRAIN VAL`` make a quick smoke run.
"""

import argparse
import hashlib
import importlib.util
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipes" / "tiny_p4_canvas_seg.py"
REPO = HERE.parents[2]
SHIPPED = REPO / "beitv2_zoo" / "weights" / "files" / "beitv2_tiny_patch4_64_canvas_upernet.safetensors"
ARMS = ("pretrained", "scratch")


def classification_reproduction():
    """``examples/reproduction/run.py`` as a module (its stages and data preparation)."""
    spec = importlib.util.spec_from_file_location("digits_reproduction_run", HERE.parent / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrain(work: Path, seeds: list[int], **overrides: object) -> dict[int, dict]:
    """The teacher → VQ-KD → MIM stages of the classification reproduction, in its work folders and
    with its settings (``../run.py``'s ``main``), reused where they exist; ``{seed: {'vqkd', 'mim'}}``."""
    digits = classification_reproduction()
    data = work / "data"
    if not (data / "main" / "val").is_dir():
        sys.path.insert(0, str(HERE.parent))
        from prepare_digits import main as prepare

        prepare(data)
    digits.run_stage("tiny-p4_digits_teacher", data / "teacher", work / "teacher", eval_interval=100, **overrides)
    chain = {}
    for seed in seeds:
        folder = work / f"seed{seed}"
        vqkd = digits.run_stage("tiny-p4_digits_vqkd", data / "main", folder / "vqkd", seed=seed,
                                teacher=str(work / "teacher" / "model.safetensors"), **overrides)
        mim = digits.run_stage("tiny-p4_digits_mim", data / "main", folder / "mim", seed=seed,
                               tokenizer=str(folder / "vqkd" / "model.safetensors"), **overrides)
        chain[seed] = {"vqkd": vqkd, "mim": mim}
    return chain


def train_segmenter(data: Path, work_dir: Path, **overrides: object) -> dict:
    """Train ``recipes/tiny_p4_canvas_seg.py`` (skipped when the run finished), then evaluate it on the
    validation canvases with ``beitv2-zoo test``'s code; returns that report plus ``seconds``."""
    from beitv2_zoo.train.config import apply_overrides
    from beitv2_zoo.train.engine import train
    from beitv2_zoo.train.evaluate import run_test
    from beitv2_zoo.train.recipes import get_recipe

    if not (work_dir / "metrics.json").is_file():
        recipe = apply_overrides(get_recipe(RECIPE), {"data_root": str(data), **overrides})
        start = time.perf_counter()
        train(recipe, work_dir, progress=False)
        seconds = time.perf_counter() - start
        (work_dir / "seconds.txt").write_text(f"{seconds:.1f}\n")
        print(f"{recipe.name} ({work_dir.parent.name}/{work_dir.name}): {seconds:.0f} s", flush=True)
    report = run_test(str(work_dir), str(data), split="validation", num_workers=0, device="cpu",
                      out=work_dir / "test_validation.json")
    return {**report, "seconds": float((work_dir / "seconds.txt").read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/canvas_segmentation"))
    parser.add_argument("--digits-work-dir", type=Path, default=Path("work_dirs/digits_reproduction"),
                        help="the classification reproduction's work folder (its pretraining runs are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and README.md go")
    parser.add_argument("--ship", action="store_true", help="copy the seed-0 pretrained segmenter into the package")
    parser.add_argument("--max-steps", type=int, default=0, help="cap every stage at this many steps (smoke runs)")
    parser.add_argument("--canvases", type=int, nargs=2, metavar=("TRAIN", "VAL"),
                        help="canvases per split (default 1000 300)")
    args = parser.parse_args(argv)
    defaults = parser.parse_args([])
    if (args.max_steps or args.canvases) and (args.work_dir == defaults.work_dir
                                              or args.digits_work_dir == defaults.digits_work_dir):
        parser.error("a smoke run (--max-steps / --canvases) needs its own --work-dir and --digits-work-dir: "
                     "the real run reuses whatever it finds in the default ones")
    caps = {"max_steps": args.max_steps} if args.max_steps else {}
    start = time.perf_counter()
    chain = pretrain(args.digits_work_dir, args.seeds, **caps)
    canvases = args.work_dir / "canvases"
    if not (canvases / "canvases.json").is_file():
        sys.path.insert(0, str(HERE))
        from prepare_canvases import main as prepare_canvases

        counts = dict(zip(("training", "validation"), args.canvases)) if args.canvases else None
        prepare_canvases(canvases, args.digits_work_dir / "data", counts=counts)
    runs: dict[int, dict] = {}
    for seed in args.seeds:
        mim = args.digits_work_dir / f"seed{seed}" / "mim" / "model.safetensors"
        runs[seed] = {arm: train_segmenter(canvases, args.work_dir / f"seed{seed}" / arm, seed=seed,
                                           pretrained=str(mim) if arm == "pretrained" else "", **caps)
                      for arm in ARMS}
    summary = summarize(chain, runs, wall_seconds=time.perf_counter() - start)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_table(summary, args.out / "README.md")
    if args.ship:
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.work_dir / f"seed{args.seeds[0]}" / "pretrained" / "model.safetensors", SHIPPED)
        print(f"shipped {SHIPPED} sha256 {hashlib.sha256(SHIPPED.read_bytes()).hexdigest()}")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_seed"}, indent=2))
    return 0


def summarize(chain: dict[int, dict], runs: dict[int, dict], wall_seconds: float = 0.0) -> dict:
    """Per-seed numbers, their mean / spread (max − min over seeds) and the gain from pretraining."""
    from beitv2_zoo.weights.labels import class_names

    names = class_names("digits-canvas")
    per_seed = {}
    for seed, arms in runs.items():
        row: dict = {"mim_val_acc": round(chain[seed]["mim"]["val_mlm_acc_1"], 2)}
        for arm, report in arms.items():
            row.update({f"{arm}_{key}": report[key] for key in ("mIoU", "mAcc", "aAcc")})
            numbered = list(report["per_class"]) == [str(i) for i in range(len(names))]  # a recipe without label_set
            row[f"{arm}_per_class_IoU"] = {names[int(k)] if numbered else k: v["IoU"]
                                           for k, v in report["per_class"].items()}
        per_seed[str(seed)] = row
    stats = {}
    for key in ("mim_val_acc", *(f"{arm}_{m}" for arm in ARMS for m in ("mIoU", "mAcc", "aAcc"))):
        values = [row[key] for row in per_seed.values()]
        stats[key] = {"mean": round(statistics.fmean(values), 2), "min": min(values), "max": max(values),
                      "spread": round(max(values) - min(values), 2)}
    gain = stats["pretrained_mIoU"]["mean"] - stats["scratch_mIoU"]["mean"]
    spread = max(stats["pretrained_mIoU"]["spread"], stats["scratch_mIoU"]["spread"])
    seconds = sum(report["seconds"] for arms in runs.values() for report in arms.values())
    first = next(iter(runs.values()))["pretrained"]
    return {"seeds": [int(s) for s in per_seed], "num_val_images": first["num_images"], "mode": first["mode"],
            "per_seed": per_seed, "stats": stats,
            "pretraining_margin": {"gain": round(gain, 2), "largest_seed_spread": spread,
                                   "gain_exceeds_spread": gain > spread},
            "segmentation_training_seconds": round(seconds), "wall_seconds": round(wall_seconds)}


def write_table(summary: dict, readme: Path) -> None:
    """Replace the table between the results markers of ``readme``."""
    s = summary["stats"]

    def cell(key: str) -> str:
        return f"{s[key]['mean']:.1f} ({s[key]['min']:.1f}–{s[key]['max']:.1f})"

    margin = summary["pretraining_margin"]
    lines = [
        f"Seeds {', '.join(map(str, summary['seeds']))}; mean (min–max over seeds); on the "
        f"{summary['num_val_images']} validation canvases ({summary['mode']} inference, original label size); "
        f"{summary['segmentation_training_seconds'] / 60:.0f} min of segmentation training on two CPU cores.",
        "",
        "| segmenter | mIoU | mAcc | aAcc |",
        "|---|---|---|---|",
        f"| MIM-pretrained backbone | **{cell('pretrained_mIoU')}** | {cell('pretrained_mAcc')} | {cell('pretrained_aAcc')} |",
        f"| from scratch | {cell('scratch_mIoU')} | {cell('scratch_mAcc')} | {cell('scratch_aAcc')} |",
        "",
        f"Gain from pretraining (mean mIoU difference) vs the largest seed-to-seed spread: "
        f"{margin['gain']:+.1f} vs {margin['largest_seed_spread']:.1f}. The MIM stage's masked-token accuracy: "
        f"{cell('mim_val_acc')} %.",
    ]
    classification_reproduction().replace_results(readme, lines)


if __name__ == "__main__":
    sys.exit(main())
