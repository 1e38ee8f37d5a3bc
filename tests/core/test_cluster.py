"""Scale-out on Dask: a grid search and an evaluation on a local two-worker cluster give the
results of a sequential run."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.cluster import dask_backend

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, on loopback only."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        with distributed.Client(cluster) as dask_client:
            yield dask_client


@pytest.fixture
def one_torch_thread():
    """The workers run one torch thread; so does the sequential reference (same float order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.timeout(120)
def test_grid_search_on_dask_equals_sequential(client, digits, one_torch_thread):
    X, y, _, _ = digits
    X, y = X[:300], y[:300]
    estimator = robustlearn.make_defense("mlp", hidden_layer_sizes=(16,), max_epochs=4,
                                         random_state=0, device="cpu")
    grid = {"lr": [1e-2, 3e-2]}
    sequential = GridSearchCV(estimator, grid, cv=2, n_jobs=1).fit(X, y)
    with dask_backend(client):
        on_dask = GridSearchCV(estimator, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"],
                                  sequential.cv_results_["mean_test_score"])
    # the data sent to the workers once (scatter), not with every job: the same scores
    with dask_backend(client, scatter=[X, y]):
        scattered = GridSearchCV(estimator, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(scattered.cv_results_["mean_test_score"],
                                  sequential.cv_results_["mean_test_score"])
    assert sequential.best_score_ > 0.5  # chance is 0.1
    threads = client.run(torch.get_num_threads)
    assert sorted(threads.values()) == [1, 1]


@pytest.mark.timeout(120)
def test_evaluate_on_dask_equals_sequential(client, fitted_mlp, digits, one_torch_thread):
    _, _, X_test, y_test = digits
    kwargs = dict(attacks=["fgsm", ("linf-pgd", {"steps": 5})], epsilons=[0, 0.05, 0.1],
                  batch_size=40, random_state=0)
    sequential = robustlearn.evaluate(fitted_mlp, X_test[:120], y_test[:120], **kwargs)
    with dask_backend(client):
        on_dask = robustlearn.evaluate(fitted_mlp, X_test[:120], y_test[:120], n_jobs=-1,
                                       **kwargs)
    assert on_dask.worst_case == sequential.worst_case
    assert [a["accuracy"] for a in on_dask.attacks] == [a["accuracy"] for a in sequential.attacks]
    assert sequential.worst_case["linf"]["accuracy"][-1] < sequential.clean["accuracy"]


def test_evaluate_rejects_zero_jobs(fitted_mlp, digits):
    _, _, X_test, y_test = digits
    with pytest.raises(ValueError, match="n_jobs"):
        robustlearn.evaluate(fitted_mlp, X_test[:10], y_test[:10], attacks=["fgsm"],
                             epsilons=[0.1], n_jobs=0)


@pytest.mark.timeout(120)
def test_cli_evaluate_with_a_scheduler_equals_a_local_run(client, fitted_mlp, tmp_path):
    from robustlearn import cli

    model = robustlearn.save(fitted_mlp, tmp_path / "mlp.safetensors")
    common = ["evaluate", "--model", str(model), "--test-n", "60", "--attack", "fgsm",
              "--epsilons", "0,0.1", "--batch-size", "30"]
    assert cli.main(common + ["--out", str(tmp_path / "local")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "dask"),
                              "--scheduler", client.scheduler.address]) == 0
    local, on_dask = (robustlearn.evaluation.RobustnessReport.from_json(
        (tmp_path / name / "report.json").read_text()) for name in ("local", "dask"))
    assert on_dask.worst_case == local.worst_case


@pytest.mark.timeout(120)
def test_a_run_on_dask_resumes_from_its_log(client, fitted_mlp, digits, tmp_path):
    from robustlearn.evaluation.journal import JOURNAL_NAME

    _, _, X_test, y_test = digits
    kwargs = dict(attacks=["fgsm", ("linf-pgd", {"steps": 3})], epsilons=[0, 0.1],
                  batch_size=30, random_state=0)
    full = robustlearn.evaluate(fitted_mlp, X_test[:90], y_test[:90], **kwargs)
    out = tmp_path / "run"
    with dask_backend(client):
        robustlearn.evaluate(fitted_mlp, X_test[:90], y_test[:90], out_dir=out, n_jobs=-1,
                             **kwargs)
        log = out / JOURNAL_NAME
        lines = log.read_text().splitlines()
        log.write_text("\n".join(lines[:5]) + "\n")  # the config line and 4 of 9 units
        resumed = robustlearn.evaluate(fitted_mlp, X_test[:90], y_test[:90], out_dir=out,
                                       resume=True, n_jobs=-1, **kwargs)
    assert len(log.read_text().splitlines()) == len(lines)
    assert resumed.worst_case == full.worst_case
    assert [a["accuracy"] for a in resumed.attacks] == [a["accuracy"] for a in full.attacks]


@pytest.mark.timeout(120)
def test_workers_started_in_worker_environment_keep_the_adaptive_allocator():
    import os

    from robustlearn.cluster import TORCH_WORKER_ENVIRON, worker_environment

    with worker_environment(), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dask_client:
        seen = dask_client.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_"))
    # the mmap threshold is what matters (tensors from the heap, not from fresh mmaps); the
    # trim threshold may come from this process's environment once a cluster has set it here
    assert list(seen.values()) == [str(TORCH_WORKER_ENVIRON["MALLOC_MMAP_THRESHOLD_"])]
