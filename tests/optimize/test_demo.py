from nnopt_jax.optimize.demo import run_demo


def test_optimize_demo_stage_names_the_knee(tmp_path):
    summary = run_demo(tmp_path / "optimize", seed=0, progress=False)
    assert "knee" in summary["result"] and summary["knee"]["knee"] is True
    assert (tmp_path / "optimize" / "front.png").is_file()
