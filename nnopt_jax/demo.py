"""``nnopt demo``: every pillar in a few minutes on sklearn digits, no data to fetch.

Stages (each writes into its own sub-directory of ``out``):

1. ``train``: a small LeNet with the sharded training loop (config, metrics,
   results and a learning curve in ``out`` itself; it replaces a previous
   demo in ``out``, sub-directories included);
2. ``hpo``: a short Bayesian optimisation of an MLP's hyper-parameters;
3. ``nas``: a tiny DARTS search that prints the derived genotype;
4. ``compress``: sparse variational dropout of a small network.
5. ``optimize``: a few recipes of a multi-objective search (error, bytes, latency).
"""

from __future__ import annotations

import importlib
import json
import pathlib
import time

from nnopt_jax.report import markdown_table, print_rows

STAGES = {
    "hpo": "nnopt_jax.hpo.demo",
    "nas": "nnopt_jax.nas.darts.demo",
    "compress": "nnopt_jax.bayes.demo",
    "optimize": "nnopt_jax.optimize.demo",
}


def _train_stage(out: pathlib.Path, *, seed: int, progress: bool, epochs: int) -> dict:
    from nnopt_jax.config import load_config
    from nnopt_jax.training import train_and_evaluate

    cfg = load_config(pathlib.Path(__file__).parent.parent / "configs" / "digits_lenet.py") \
        if (pathlib.Path(__file__).parent.parent / "configs").exists() else None
    if cfg is None:  # installed without the repository's configs/
        from nnopt_jax.config import Config
        cfg = Config(seed=seed, data=dict(name="digits", validation_fraction=0.0),
                     model=dict(name="small_lenet"),
                     train=dict(optimizer="adam", learning_rate=3e-3, schedule="cosine",
                                batch_size=64, num_epochs=40))
    cfg.seed = seed
    cfg.train.num_epochs = epochs
    res = train_and_evaluate(cfg, out_dir=out, overwrite=True, progress=progress)
    return {"stage": "train", "what": f"SmallLeNet on digits, {res['epochs']} epochs, "
                                      f"{res['devices']} device(s)",
            "result": f"test error {100 * res['test_error']:.2f} %",
            "seconds": res["wall_time_s"]}


def _describe(stage: str, summary: dict) -> tuple[str, str]:
    """(what, result) of a pillar stage for the summary table."""
    if stage == "nas" and "genotype_str" in summary:
        genotype = summary["genotype_str"].replace("\n", " ")
        return ("tiny first-order DARTS search on digits",
                f"val acc {100 * summary.get('val_acc', float('nan')):.1f} %; {genotype}")
    if stage == "compress" and "compression" in summary:
        return (f"sparse VD {summary.get('model', '')} on digits",
                f"test error {100 * summary['test_error']:.2f} %, "
                f"{summary['compression']:.1f}x fewer weights, "
                f"export {summary.get('export_bytes', '?')} B "
                f"(dense {summary.get('dense_float32_bytes', '?')} B)")
    return summary.get("what", stage), summary.get("result") or _compact(summary)


def _compact(summary: dict) -> str:
    """The scalar entries of a stage summary as ``key=value`` pairs."""
    items = [(k, v) for k, v in summary.items()
             if isinstance(v, (int, float, str)) and k not in ("what", "seconds")]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def run_demo(out: str | pathlib.Path = "runs/demo", *, seed: int = 0, skip=(),
             progress: bool = True, train_epochs: int = 15) -> list[dict]:
    """Runs the demo stages and prints/writes a summary table.

    Returns:
        One summary row per stage (``stage``, ``what``, ``result``, ``seconds``).
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if "train" not in skip:
        rows.append(_train_stage(out, seed=seed, progress=progress, epochs=train_epochs))
    for name, module in STAGES.items():
        if name in skip:
            continue
        t0 = time.perf_counter()
        summary = importlib.import_module(module).run_demo(out / name, seed=seed,
                                                           progress=progress)
        what, result = _describe(name, summary)
        rows.append({"stage": name, "what": what, "result": result,
                     "seconds": summary.get("seconds", time.perf_counter() - t0)})
    print_rows("nnopt demo", rows, ["stage", "what", "result", "seconds"])
    (out / "summary.json").write_text(json.dumps(rows, indent=2, default=str))
    (out / "summary.md").write_text(markdown_table(rows, ["stage", "what", "result", "seconds"]))
    print(f"wrote {out}/")
    return rows
