"""Scale-out on a Dask cluster through joblib's Dask backend.

Everything in robustlearn that runs in parallel does so through joblib:
scikit-learn's ``GridSearchCV(..., n_jobs=...)`` over defenses,
:func:`robustlearn.evaluate` with ``n_jobs`` (its units of work, attack x
batch), the ``baselines`` command. Inside :func:`dask_backend` (or joblib's
own ``with joblib.parallel_backend("dask"):`` with a ``distributed.Client``)
those jobs run on the workers of a Dask cluster; every unit is seeded on its
own, so the results equal a local run with the same seeds.

Dask is an extra: ``pip install "robustlearn[dask]"``.
"""

from __future__ import annotations

import contextlib

#: Environment for Dask worker processes that train or attack torch networks. Dask's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers, which also switches off glibc's adaptive
#: mmap threshold: every tensor of 128 KiB or more is then a fresh ``mmap`` whose pages the
#: kernel zeroes on first touch, and a training job in a worker measured up to twice its CPU
#: time in this process. A 32 MiB threshold (glibc's adaptive ceiling) for both restores
#: the usual behaviour. Start local clusters inside :func:`worker_environment`, or set these
#: variables for ``dask worker``.
TORCH_WORKER_ENVIRON = {"MALLOC_MMAP_THRESHOLD_": 32 * 1024**2,
                        "MALLOC_TRIM_THRESHOLD_": 32 * 1024**2}


def worker_environment():
    """Dask config under which worker processes started in the block get
    :data:`TORCH_WORKER_ENVIRON` (a ``LocalCluster``'s, say).

    Returns
    -------
    context manager
        ``dask.config.set`` of ``distributed.nanny.pre-spawn-environ``.
    """
    import dask

    return dask.config.set({f"distributed.nanny.pre-spawn-environ.{key}": value
                            for key, value in TORCH_WORKER_ENVIRON.items()})


try:  # the plugin base class exists only with the dask extra installed
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - without the extra, dask_backend raises first
    _WorkerPlugin = object


class TorchThreads(_WorkerPlugin):
    """Dask worker plugin: set torch's intra-op threads on every worker, now and on restart.

    A worker runs as many joblib tasks at once as it has threads; each task
    using all of the machine's cores for torch would oversubscribe them, so
    each gets ``n_threads`` (default 1: start workers with as many threads as
    cores they may use).

    Parameters
    ----------
    n_threads : int, default=1
    """

    name = "robustlearn-torch-threads"

    def __init__(self, n_threads=1):
        self.n_threads = int(n_threads)

    def setup(self, worker):
        import torch

        torch.set_num_threads(self.n_threads)


def _client(scheduler):
    try:
        from distributed import Client
    except ImportError:
        raise ImportError('running on a Dask cluster needs the dask extra: '
                          'pip install "robustlearn[dask]"') from None
    return Client(scheduler)


@contextlib.contextmanager
def dask_backend(scheduler=None, *, torch_threads=1, scatter=None):
    """Run joblib-parallel work of this block on a Dask cluster.

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        The scheduler's address (``"tcp://HOST:PORT"``), a connected client
        (kept open afterwards), or None for the current default client.
    torch_threads : int, default=1
        Torch threads of every worker (:class:`TorchThreads`).
    scatter : list of objects, optional
        Large arguments the jobs share (the training data of a grid search,
        say): they are sent to the workers once, when the block starts, and
        every job refers to the workers' copy instead of carrying its own
        (joblib's ``parallel_backend("dask", scatter=...)``; jobs recognise
        them by identity, so pass the very objects given to ``fit``).

    Yields
    ------
    distributed.Client

    Examples
    --------
    >>> with dask_backend("tcp://10.0.0.5:8786"):  # doctest: +SKIP
    ...     GridSearchCV(make_defense("mlp"), grid, n_jobs=-1).fit(X, y)
    """
    import joblib

    own = scheduler is None or isinstance(scheduler, str)
    if scheduler is None:
        from distributed import get_client

        client = get_client()
        own = False
    else:
        client = _client(scheduler) if isinstance(scheduler, str) else scheduler
    try:
        client.register_plugin(TorchThreads(torch_threads))
        options = {} if scatter is None else {"scatter": list(scatter)}
        with joblib.parallel_backend("dask", **options):
            yield client
    finally:
        if own:
            client.close()
