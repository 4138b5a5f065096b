"""One worker of a journaled study, used by tests in subprocesses.

    python tests/helpers/study_worker.py JOURNAL N_TRIALS [--method bo] [--seed 0]
        [--sleep S]

Minimises Branin with ``hpo.minimize(..., resume=True)``: a first worker starts
the study, later ones (or a restarted one) continue it.
"""

import argparse
import time

FAST = dict(n_candidates=256, n_refine=2, refine_steps=10, fit_steps=10, n_initial=4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("journal")
    ap.add_argument("n_trials", type=int)
    ap.add_argument("--method", default="bo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=0.0)
    args = ap.parse_args()
    from nnopt_jax import hpo

    branin = hpo.get_function("branin")
    space = branin.space()

    def objective(p):
        time.sleep(args.sleep)
        return float(branin.fn([p[k] for k in space.names]))

    kwargs = FAST if args.method == "bo" else {}
    hpo.minimize(objective, space, args.n_trials, method=args.method, seed=args.seed,
                 journal=args.journal, resume=True, **kwargs)


if __name__ == "__main__":
    main()
