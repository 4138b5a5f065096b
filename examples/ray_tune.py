"""A Ray Tune search run by this project's Bayesian optimiser (NNOptSearch).

Several trials run at once under ``ConcurrencyLimiter``; the searcher keeps
them apart with the constant liar. Tune writes the searcher's JSON checkpoint
into the experiment directory, and the script restores a searcher from it (a
study resumed later, or on another head node, continues from there). Run::

    python examples/ray_tune.py                       # 16 trials, 4 at a time, local Ray
    python examples/ray_tune.py --n-trials 8 --max-concurrent 2

On a cluster, ``ray.init(address="auto")`` instead of the local instance is
the only change: the trials then spread over its machines.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

# quiet, local, no telemetry; set before Ray is imported
for _var, _value in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
                     "RAY_AIR_NEW_OUTPUT": "0"}.items():
    os.environ.setdefault(_var, _value)

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402

from nnopt_jax.hpo.ray import NNOptSearch  # noqa: E402


def trainable(config: dict) -> None:
    """A stand-in for a training run: reports one validation loss."""
    loss = (0.05 + 0.1 * (math.log10(config["lr"]) - math.log10(3e-3)) ** 2
            + 0.02 * (config["layers"] - 3) ** 2
            + {"relu": 0.03, "tanh": 0.08, "gelu": 0.0}[config["activation"]])
    tune.report({"loss": loss})


PARAM_SPACE = {"lr": tune.loguniform(1e-5, 1e-1), "layers": tune.randint(1, 7),
               "activation": tune.choice(["relu", "tanh", "gelu"])}


def main(argv=None) -> NNOptSearch:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-trials", type=int, default=16)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=None,
                        help="experiment directory (default: a temporary one)")
    args = parser.parse_args(argv)
    storage = args.storage or tempfile.mkdtemp(prefix="nnopt_ray_")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        search = ConcurrencyLimiter(NNOptSearch(seed=args.seed),
                                    max_concurrent=args.max_concurrent)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 0.5}), param_space=PARAM_SPACE,
            tune_config=tune.TuneConfig(search_alg=search, metric="loss", mode="min",
                                        num_samples=args.n_trials),
            run_config=tune.RunConfig(name="nnopt", storage_path=os.path.abspath(storage),
                                      verbose=0))
        results = tuner.fit()
    finally:
        ray.shutdown()
    best = results.get_best_result()
    print(f"trials: {len(results)}")
    print(f"best value: {best.metrics['loss']:.6f}")
    print(f"best params: {best.config}")
    restored = NNOptSearch()  # e.g. in a new process: continue from Tune's checkpoint
    restored.restore_from_dir(os.path.join(storage, "nnopt"))
    print(f"restored searcher: {len(restored.history)} finished trials, next suggestion "
          f"{restored.suggest('next')}")
    return restored


if __name__ == "__main__":
    main()
