import os

if os.environ.get("PYTEST_XDIST_WORKER"):  # several test processes share the cores: one thread each (OpenMP spin-waits
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # of several multi-threaded torch processes slow them by orders of magnitude)

import pytest

from adele.testing import make_dataset

os.environ.setdefault("ADELE_NO_PROGRESS", "1")


@pytest.fixture
def tiny_dataset(tmp_path):
    return make_dataset(tmp_path / "ds")


#: overrides for a tiny ADELE run that detects and corrects within its 3 epochs (the reports' and exports' tests)
TINY_TRAIN = ["data.size=[56, 48]", "model.width=8", "model.depth=3", "optim.name=adam", "optim.lr=0.003",
              "train.batch_size=4", "data.noise=final", "train.device=cpu"]


@pytest.fixture(scope="session")
def small_colin27_dir(tmp_path_factory):
    """A few Colin27 slices as a dataset folder (8 train, 3 val, 3 test; PNG)."""
    from adele.testing import small_colin27, write_source

    return write_source(small_colin27(8, 3, spread="ends"), tmp_path_factory.mktemp("c27small"), name="c27small")


@pytest.fixture(scope="session")
def tiny_run(small_colin27_dir, tmp_path_factory):
    """Factory ``tiny_run(*overrides) -> run folder``: trains once per distinct overrides per session (seeded, CPU)."""
    from adele.config import load_config
    from adele.engine import Trainer

    cache = {}

    def make(*overrides):
        key = tuple(overrides)
        if key not in cache:
            cfg = load_config(None, TINY_TRAIN + [f"data.path={small_colin27_dir}", "train.epochs=2", *overrides])
            run = tmp_path_factory.mktemp("run")
            tr = Trainer(cfg, run, log=lambda m: None)
            tr.prepare_run_dir(resume=False, overwrite=True)
            tr.fit()
            cache[key] = run
        return cache[key]

    return make


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny models on one thread (2 shared cores: oversubscribed OpenMP threads spin); restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
