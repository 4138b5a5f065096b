"""The ``nnopt`` command line: parses, loads a config, calls the library.

Every long command writes into ``--out DIR`` (default under ``runs/``) and
continues an interrupted run with ``--resume``; a fresh run refuses a
directory that holds another run unless ``--overwrite`` (see
:mod:`nnopt_jax.rundir`). Errors of the user's making (a bad config value,
output directory, dataset location, checkpoint, genotype file, multi-host
setup) print one ``nnopt: error: ...`` line and exit with status 2; set
``NNOPT_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import textwrap

from nnopt_jax.host_memory import retain_freed_memory

EPILOG = textwrap.dedent("""\
    examples:
      nnopt demo                                         # every pillar on sklearn digits
      nnopt train --config configs/mnist_lenet300.py --data-dir ../shared/data/mnist
      nnopt train --config configs/mnist_lenet300.py:smoke --set train.learning_rate=3e-4
      nnopt hpo --config configs/hpo/digits_mlp.py
      nnopt compress --config configs/compress/lenet300_svd.py --data-dir ../shared/data/mnist
      nnopt optimize --config configs/optimize/digits.py --out runs/optimize/digits
      nnopt nas search --config configs/nas/darts_fashion_search.py
      nnopt nas train --config configs/nas/darts_fashion_train.py --genotype DARTS_V2
      nnopt nas bench201 --method bo --queries 100 --runs 10 --data-dir ../shared/data/nasbench201
      nnopt nas bench201 --objectives params --queries 100 --runs 10
      nnopt data check mnist --data-dir ../shared/data/mnist

    A fresh run refuses an --out that holds another run: pass --resume to continue
    it (only e.g. train.num_epochs may change) or --overwrite to discard it.
    Every command has --help with an example. Errors print one line;
    NNOPT_DEBUG=1 shows the traceback. Multi-host runs
    (--distributed) wait NNOPT_DISTRIBUTED_TIMEOUT seconds (default 300) for the
    coordinator at JAX_COORDINATOR_ADDRESS. On a multi-core CPU, train and
    compress time one device against data parallelism before a long run and
    keep the faster (NNOPT_CPU_LAYOUT=intra_op|data_parallel to choose).
    """)


SEED_KEYS = {"train": "seed", "hpo": "hpo.seed", "compress": "seed", "optimize": "seed",
             "nas search": "search.seed", "nas train": "train.seed"}
"""The config key ``--seed`` sets, per command (the same flag, whatever the config's layout)."""

DATA_DIR_HELP = "dataset directory (else $NNOPT_DATA_DIR, ~/.cache/nnopt, system locations)"


def _add_parser(sub, name: str, *, help: str, example: str,
                description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` ends with an example line."""
    description = description or help[:1].upper() + help[1:]
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 79),
                          epilog=f"Example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_run_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", required=True, metavar="FILE[:VARIANT]",
                        help="Python config file with get_config(); ':smoke' picks the "
                             "small variant")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value, e.g. "
                                                  "train.learning_rate=1e-3 (repeatable)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"the run's seed (sets {SEED_KEYS[command]}; default: the config's)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--out", type=pathlib.Path, help="output directory (default: runs/...)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same config; e.g. more epochs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard the run already in --out and start afresh")
    parser.add_argument("--distributed", action="store_true",
                        help="join a multi-host run (jax.distributed.initialize; needs "
                             "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID or "
                             "a launcher JAX detects, e.g. SLURM)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnopt", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Optimise neural networks for accuracy, speed and size: hyper-parameter "
                    "optimisation, architecture search and Bayesian compression, in JAX.")
    from nnopt_jax import __version__
    parser.add_argument("--version", action="version", version=f"nnopt_jax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = _add_parser(sub, "demo", help="a few-minute tour of every pillar on sklearn digits",
                       example="nnopt demo --out runs/demo --skip nas")
    demo.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/demo"),
                      help="output directory (default: runs/demo; a previous demo there is "
                           "replaced)")
    demo.add_argument("--seed", type=int, default=0, help="seed of every stage (default: 0)")
    demo.add_argument("--skip", default="", help="comma-separated stages to skip "
                                                 "(train,hpo,nas,compress,optimize)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    train = _add_parser(sub, "train", help="train a classifier from a config",
                        example="nnopt train --config configs/mnist_lenet300.py "
                                "--data-dir ../shared/data/mnist")
    _add_run_options(train, "train")

    hpo = _add_parser(sub, "hpo", help="tune a training run's hyper-parameters",
                      example="nnopt hpo --config configs/hpo/digits_mlp.py "
                              "--out runs/hpo/digits_mlp")
    _add_run_options(hpo, "hpo")

    compress = _add_parser(sub, "compress", help="sparse VD / VNQ / pruning of a network",
                           example="nnopt compress --config configs/compress/lenet300_svd.py "
                                   "--data-dir ../shared/data/mnist")
    _add_run_options(compress, "compress")

    optimize = _add_parser(
        sub, "optimize", help="multi-objective tuning of a training + compression recipe",
        example="nnopt optimize --config configs/optimize/lenet300_mnist.py:smoke "
                "--out runs/optimize/lenet300_smoke",
        description="Multi-objective BO (ParEGO) over a recipe (method, learning rate, width "
        "and the method's knobs) for validation error, exported bytes and measured latency; "
        "writes the Pareto front (front.md, front.json, front.png), the front's exports and "
        "the knee point.")
    _add_run_options(optimize, "optimize")

    nas = _add_parser(sub, "nas", help="architecture search (DARTS, NAS-Bench-201)",
                      example="nnopt nas search --config configs/nas/darts_fashion_search.py")
    nas_sub = nas.add_subparsers(dest="nas_command", metavar="VERB", required=True)
    search = _add_parser(
        nas_sub, "search", help="DARTS search (first or second order)",
        example="nnopt nas search --config configs/nas/darts_fashion_search.py "
                "--set search.order=first",
        description="DARTS search. The hypergradient is the config's search.order: "
        "first, second (exact, autodiff through the virtual step) or second_fd (the "
        "paper's finite difference, Eq. 8), e.g. --set search.order=second_fd.")
    _add_run_options(search, "nas search")
    nas_train = _add_parser(nas_sub, "train", help="train a genotype from scratch",
                            example="nnopt nas train --config configs/nas/darts_fashion_train.py "
                                    "--genotype configs/nas/darts_fashion_searched.json")
    _add_run_options(nas_train, "nas train")
    nas_train.add_argument("--genotype", required=True,
                           help="genotype JSON file or published name (DARTS_V1, DARTS_V2)")
    bench = _add_parser(nas_sub, "bench201", help="black-box search on the NAS-Bench-201 table",
                        example="nnopt nas bench201 --method all --queries 100 --runs 10 "
                                "--data-dir ../shared/data/nasbench201",
                        description="Black-box search on the NAS-Bench-201 table. Finished "
                        "runs found in --out are reused, so rerunning a command continues it.")
    bench.add_argument("--method", default="all",
                       help="random, evolution, bo, bo_overlap, or all (comma-separated); "
                       "with --objectives: random, parego")
    bench.add_argument("--queries", type=int, default=100, help="queries per run (default: 100)")
    bench.add_argument("--runs", type=int, default=10,
                       help="runs per method; run r uses seed --seed + r (default: 10)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the first run (default: 0)")
    bench.add_argument("--data-dir", type=pathlib.Path, default=None,
                       help="the table's CSV or its directory (default: $NNOPT_DATA_DIR/"
                            "nasbench201, ~/.cache/nnopt/nasbench201, ../shared/data/"
                            "nasbench201)")
    bench.add_argument("--data", dest="data_dir", type=pathlib.Path, default=None,
                       help=argparse.SUPPRESS)  # the flag's earlier name
    bench.add_argument("--objectives", default=None, metavar="OBJ",
                       help="multi-objective search of validation accuracy against params, "
                            "flops or latency (methods random,parego)")
    bench.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/nb201"),
                       help="output directory (default: runs/nb201)")

    data = _add_parser(sub, "data", help="download or check datasets",
                       example="nnopt data check mnist --data-dir ../shared/data/mnist")
    data_sub = data.add_subparsers(dest="data_command", metavar="VERB", required=True)
    for verb, text in (("download", "fetch a dataset and verify its checksums"),
                       ("check", "locate, verify and load a dataset")):
        p = _add_parser(data_sub, verb, help=text,
                        example=f"nnopt data {verb} fashion_mnist --data-dir ~/data/fashion")
        p.add_argument("name", help="mnist, fashion_mnist, cifar10 or digits")
        p.add_argument("--data-dir", help=DATA_DIR_HELP)
    return parser


def _command(args) -> str:
    """``train``, ``hpo``, ``compress``, ``nas search`` or ``nas train``."""
    return f"nas {args.nas_command}" if args.command == "nas" else args.command


def _load(args) -> "object":
    from nnopt_jax.config import ConfigError, apply_overrides, load_config
    overrides = list(args.overrides)
    if args.seed is not None:  # before --set, so an explicit --set of the key wins
        overrides.insert(0, f"{SEED_KEYS[_command(args)]}={args.seed}")
    cfg = apply_overrides(load_config(args.config), overrides)
    if args.data_dir:
        if not pathlib.Path(args.data_dir).is_dir():
            raise ConfigError(f"--data-dir {args.data_dir} is not a directory; pass the "
                              "directory that holds the dataset's files")
        # a training config has a data block; an HPO config has it in its base config
        for block in (cfg, cfg.get("base")):
            if isinstance(block, dict) and isinstance(block.get("data"), dict):
                block["data"]["data_dir"] = args.data_dir
    return cfg


def _out_dir(args, kind: str) -> pathlib.Path:
    if args.out is not None:
        return args.out
    stem = pathlib.Path(args.config.partition(":")[0]).stem
    variant = args.config.partition(":")[2]
    return pathlib.Path("runs") / kind / (f"{stem}_{variant}" if variant else stem)


def _cmd_train(args) -> int:
    from nnopt_jax.report import print_table
    from nnopt_jax.training import train_and_evaluate
    cfg = _load(args)
    out = _out_dir(args, "train")
    res = train_and_evaluate(cfg, out_dir=out, resume=args.resume, overwrite=args.overwrite,
                             progress=not args.no_progress)
    print_table("result", {k: res[k] for k in ("dataset", "model", "n_params", "epochs",
                                               "val_error", "test_error",
                                               "seconds_per_epoch", "wall_time_s")})
    print(f"wrote {out}/")
    return 0


def _cmd_hpo(args) -> int:
    from nnopt_jax.hpo.cli import hpo_command
    return hpo_command(_load(args), _out_dir(args, "hpo"), args.resume,
                       overwrite=args.overwrite, progress=not args.no_progress)


def _cmd_compress(args) -> int:
    from nnopt_jax.bayes.cli import compress_command
    return compress_command(_load(args), _out_dir(args, "compress"), args.resume,
                            overwrite=args.overwrite, progress=not args.no_progress)


def _cmd_optimize(args) -> int:
    from nnopt_jax.optimize.cli import optimize_command
    return optimize_command(_load(args), _out_dir(args, "optimize"), args.resume,
                            overwrite=args.overwrite, progress=not args.no_progress)


def _cmd_nas(args) -> int:
    if args.nas_command == "bench201":
        from nnopt_jax.nas.nb201 import cli as nb201_cli
        if args.objectives:
            method = "random,parego" if args.method == "all" else args.method
            return nb201_cli.bench201_mo_command(method, args.objectives, args.queries,
                                                 args.runs, args.data_dir, args.out, args.seed)
        return nb201_cli.bench201_command(args.method, args.queries, args.runs, args.data_dir,
                                          args.out, args.seed)
    from nnopt_jax.nas.darts import cli as darts_cli
    cfg = _load(args)
    run = dict(overwrite=args.overwrite, progress=not args.no_progress)
    if args.nas_command == "search":
        return darts_cli.search_command(cfg, _out_dir(args, "nas"), args.resume, **run)
    return darts_cli.train_command(cfg, args.genotype, _out_dir(args, "nas"), args.resume,
                                   **run)


def _cmd_data(args) -> int:
    from nnopt_jax.data import cli as data_cli
    if args.data_command == "download":
        return data_cli.download_command(args.name, args.data_dir)
    return data_cli.check_command(args.name, args.data_dir)


def _cmd_demo(args) -> int:
    from nnopt_jax.demo import run_demo
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    run_demo(args.out, seed=args.seed, skip=skip, progress=not args.no_progress)
    return 0


COMMANDS = {"train": _cmd_train, "hpo": _cmd_hpo, "compress": _cmd_compress,
            "optimize": _cmd_optimize, "nas": _cmd_nas,
            "data": _cmd_data, "demo": _cmd_demo}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types ``main`` reports in one line: what the user can fix."""
    from nnopt_jax.checkpoint import CheckpointError
    from nnopt_jax.parallel import DistributedError
    # ValueError covers ConfigError, RunDirError, genotype and dataset errors;
    # OSError covers FileExistsError, NotADirectoryError, PermissionError, ...
    return (ValueError, OSError, CheckpointError, DistributedError, FloatingPointError)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"nnopt: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    import warnings
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("NNOPT_DEBUG"))
    show = warnings.showwarning
    if not debug:
        warnings.showwarning = _one_line_warning
    try:
        # Before JAX starts its threads: XLA:CPU's buffers then reuse freed pages.
        retain_freed_memory()
        if args.command in ("train", "hpo", "compress", "nas"):
            from nnopt_jax.parallel import initialize_distributed
            # --distributed, or JAX_COORDINATOR_ADDRESS & co. in the environment.
            joined = initialize_distributed(True if getattr(args, "distributed", False) else None)
            if not joined and args.command in ("train", "compress"):
                from nnopt_jax.cpu_layout import configure
                configure()  # one CPU device per core; each run measures whether to use them
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("nnopt: interrupted; continue with --resume", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not isinstance(err, _user_errors()):
            raise
        print(f"nnopt: error: {str(err).strip() or type(err).__name__}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
