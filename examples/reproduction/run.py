"""The whole BEiT v2 recipe at toy scale on a CPU: teacher → VQ-KD → MIM → fine-tune / linear probe,
pretrained against the same architecture from scratch, for several seeds.

    python examples/reproduction/run.py            # writes results.json, curves.png, README table here

Stages (recipes ``tiny-p4_digits_*``, the files in ``recipes/`` beside this script, run by path;
data from ``prepare_digits.py``):

0. teacher: a tiny BEiT classifier trained on the 500 labelled ``teacher/train`` digits
   (once; it is the fixed "external" network, as CLIP is for BEiT v2);
1. per seed, a VQ-KD tokenizer distilling the teacher's patch features on the unlabelled
   ``main/train`` images;
2. per seed, BEiT v2 MIM pretraining of the student on the same unlabelled images;
3. per seed, fine-tuning and linear probing on the labelled ``main/train`` images, from the
   MIM weights and from random initialisation with the same recipe and budget.

Every number is measured on the 300 held-out ``main/val`` images. ``--ship`` also copies the
seed-0 pretrained fine-tuned classifier to ``beitv2_zoo/weights/files/`` (the registered name
``beitv2_tiny_patch4_32_digits``; its record's sha256 must then be updated).
"""

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = HERE / "recipes"
REPO = HERE.parents[1]
SHIPPED = REPO / "beitv2_zoo" / "weights" / "files" / "beitv2_tiny_patch4_32_digits.safetensors"
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def run_stage(recipe_name: str, data: Path, work_dir: Path, **overrides: object) -> dict:
    """Train the recipe ``recipes/<module name of recipe_name>.py`` in this process (skipped when its
    final weights exist); return its metrics.json."""
    from beitv2_zoo.train.config import apply_overrides
    from beitv2_zoo.train.engine import train
    from beitv2_zoo.train.recipes import get_recipe, module_name

    if not (work_dir / "metrics.json").is_file():
        recipe = get_recipe(RECIPES / f"{module_name(recipe_name)}.py")
        recipe = apply_overrides(recipe, {"data_root": str(data), **overrides})
        start = time.perf_counter()
        train(recipe, work_dir, progress=False)
        seconds = time.perf_counter() - start
        (work_dir / "seconds.txt").write_text(f"{seconds:.1f}\n")
        print(f"{recipe_name} ({work_dir.name}): {seconds:.0f} s", flush=True)
    metrics = json.loads((work_dir / "metrics.json").read_text())
    return {**metrics, "seconds": float((work_dir / "seconds.txt").read_text())}


def log_rows(work_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/digits_reproduction"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json, curves.png and README.md go")
    parser.add_argument("--ship", action="store_true", help="copy the seed-0 fine-tuned model into the package")
    args = parser.parse_args()
    work = args.work_dir
    data = work / "data"
    if not (data / "main" / "val").is_dir():
        sys.path.insert(0, str(HERE))
        from prepare_digits import main as prepare

        prepare(data)

    teacher = run_stage("tiny-p4_digits_teacher", data / "teacher", work / "teacher", eval_interval=100)
    runs: dict[int, dict] = {}
    for seed in args.seeds:
        folder = work / f"seed{seed}"
        vqkd = run_stage("tiny-p4_digits_vqkd", data / "main", folder / "vqkd", seed=seed,
                         teacher=str(work / "teacher" / "model.safetensors"))
        mim = run_stage("tiny-p4_digits_mim", data / "main", folder / "mim", seed=seed,
                        tokenizer=str(folder / "vqkd" / "model.safetensors"))
        result = {"vqkd": vqkd, "mim": mim}
        for task in ("finetune", "linear-probe"):
            for arm, pretrained in (("pretrained", str(folder / "mim" / "model.safetensors")), ("scratch", "")):
                result[f"{task}_{arm}"] = run_stage(f"tiny-p4_digits_{task}", data / "main", folder / f"{task}_{arm}",
                                                    seed=seed, pretrained=pretrained, eval_interval=95)
        runs[seed] = result

    summary = summarize(teacher, runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(work, args.seeds[0], args.out / "curves.png")
    write_table(summary, args.out / "README.md")
    if args.ship:
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / f"seed{args.seeds[0]}" / "finetune_pretrained" / "model.safetensors", SHIPPED)
        print(f"shipped {SHIPPED} sha256 {hashlib.sha256(SHIPPED.read_bytes()).hexdigest()}")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_seed"}, indent=2))
    return 0


def summarize(teacher: dict, runs: dict[int, dict]) -> dict:
    """Per-seed numbers and their mean / spread (max − min over seeds)."""
    per_seed = {}
    for seed, r in runs.items():
        per_seed[str(seed)] = {
            "codebook_usage_val": round(100 * r["vqkd"]["val_codebook_usage"], 2),
            "vqkd_val_rec_loss": round(r["vqkd"]["val_rec_loss"], 4),
            "mim_val_acc": round(r["mim"]["val_mlm_acc_1"], 2),
            "mim_val_acc_aggregation": round(r["mim"]["val_mlm_acc_2"], 2),
            **{f"{key}_top1": r[key]["val_top1"] for key in
               ("finetune_pretrained", "finetune_scratch", "linear-probe_pretrained", "linear-probe_scratch")},
            "finetune_pretrained_top5": r["finetune_pretrained"]["val_top5"],
        }
    keys = next(iter(per_seed.values())).keys()
    stats = {}
    for key in keys:
        values = [seed_values[key] for seed_values in per_seed.values()]
        stats[key] = {"mean": round(statistics.fmean(values), 2), "min": min(values), "max": max(values),
                      "spread": round(max(values) - min(values), 2)}
    margins = {}
    for task in ("finetune", "linear-probe"):
        gain = stats[f"{task}_pretrained_top1"]["mean"] - stats[f"{task}_scratch_top1"]["mean"]
        spread = max(stats[f"{task}_pretrained_top1"]["spread"], stats[f"{task}_scratch_top1"]["spread"])
        margins[task] = {"gain": round(gain, 2), "largest_seed_spread": spread, "gain_exceeds_spread": gain > spread}
    seconds = teacher["seconds"] + sum(stage["seconds"] for r in runs.values() for stage in r.values())
    return {"teacher_val_top1": teacher["val_top1"], "seeds": [int(s) for s in per_seed], "per_seed": per_seed,
            "stats": stats, "pretraining_margin": margins, "training_seconds": round(seconds)}


def plot(work: Path, seed: int, out: Path) -> None:
    """One panel per curve of the first seed (``beitv2_zoo.viz.curves_figure``)."""
    from beitv2_zoo.viz import curves_figure

    folder = work / f"seed{seed}"

    def series(run: Path, key: str) -> list[tuple[float, float]]:
        return [(row["step"], row[key]) for row in log_rows(run) if key in row]

    panels = {
        "VQ-KD reconstruction loss (1 - cos)": series(folder / "vqkd", "rec_loss"),
        "VQ-KD codebook usage this epoch": series(folder / "vqkd", "codebook_usage"),
        "MIM loss (both branches)": series(folder / "mim", "loss"),
        "MIM masked-token accuracy": series(folder / "mim", "mlm_acc_1"),
        "fine-tune val top-1, MIM-pretrained": series(folder / "finetune_pretrained", "val_top1"),
        "fine-tune val top-1, from scratch": series(folder / "finetune_scratch", "val_top1"),
        "linear probe val top-1, MIM-pretrained": series(folder / "linear-probe_pretrained", "val_top1"),
        "linear probe val top-1, from scratch": series(folder / "linear-probe_scratch", "val_top1"),
    }
    curves_figure(panels, title=f"BEiT v2 on scikit-learn digits, seed {seed} (x: optimizer step)").save(out)


def write_table(summary: dict, readme: Path) -> None:
    """Replace the table between the results markers of ``readme``."""
    s = summary["stats"]

    def cell(key: str) -> str:
        return f"{s[key]['mean']:.1f} ({s[key]['min']:.1f}–{s[key]['max']:.1f})"

    lines = [
        f"Seeds {', '.join(map(str, summary['seeds']))}; mean (min–max over seeds); all on the 300 held-out images; "
        f"{summary['training_seconds'] / 60:.0f} min of training on two CPU cores.",
        "",
        "| stage | metric | value |",
        "|---|---|---|",
        f"| teacher (supervised, 500 other images) | top-1 | {summary['teacher_val_top1']:.1f} |",
        f"| VQ-KD tokenizer | codebook usage, % of 64 codes used | {cell('codebook_usage_val')} |",
        f"| MIM pretraining | masked-token accuracy, % | {cell('mim_val_acc')} |",
        f"| fine-tune | top-1, MIM-pretrained | **{cell('finetune_pretrained_top1')}** |",
        f"| fine-tune | top-1, from scratch | {cell('finetune_scratch_top1')} |",
        f"| linear probe | top-1, MIM-pretrained | **{cell('linear-probe_pretrained_top1')}** |",
        f"| linear probe | top-1, from scratch | {cell('linear-probe_scratch_top1')} |",
    ]
    margin = summary["pretraining_margin"]
    lines += ["", "Gain from pretraining (mean top-1 difference) vs the largest seed-to-seed spread: " + "; ".join(
        f"{task} {m['gain']:+.1f} vs {m['largest_seed_spread']:.1f}" for task, m in margin.items()) + "."]
    replace_results(readme, lines)


def replace_results(readme: Path, lines: list[str]) -> None:
    """Write ``lines`` between the results markers of ``readme`` (created with only them if missing)."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else f"{MARK_START}\n{MARK_END}\n"
    head, _, rest = text.partition(MARK_START)
    _, _, tail = rest.partition(MARK_END)
    readme.write_text(head + MARK_START + "\n" + "\n".join(lines) + "\n" + MARK_END + tail, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
