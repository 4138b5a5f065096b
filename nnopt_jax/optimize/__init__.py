"""Multi-objective tuning of a whole training + compression recipe (``nnopt optimize``).

One loop over the three pillars: multi-objective Bayesian optimisation
(:class:`nnopt_jax.hpo.multiobjective.ParEGO`) over a conditional search space
of recipes (method: dense, magnitude pruning, sparse VD, VNQ; learning rate;
width; the method's own knobs), each trial a shortened run through the
training and compression core, scored by validation error, the exported
model's size in bytes and its inference latency measured on this machine.
See ``docs/optimize.md``.
"""
