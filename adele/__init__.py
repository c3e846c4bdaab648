"""adele: segmentation from noisy annotations with adaptive early-learning correction.

From Python (see :mod:`adele.api`)::

    import adele
    run = adele.load_run("runs/adele")
    mask = run.predict(image)              # or run.predict_file("scan.nii.gz")
    labels = run.corrected_labels()       # space="original" for the source's own grid
    rows = run.label_quality()            # most suspicious first
"""
from ._version import __version__
from .config import Config, load_config
from .errors import AdeleError, ConfigError, DatasetError, RunError

__all__ = ["AdeleError", "Config", "ConfigError", "DatasetError", "Run", "RunError", "__version__", "load_config", "load_run"]


def __getattr__(name: str):
    # torch is imported only when the API is used, so `import adele` stays light
    if name in ("load_run", "Run"):
        from . import api  # deferred: torch is imported only when the API is used

        return getattr(api, name)
    raise AttributeError(f"module 'adele' has no attribute {name!r}")
