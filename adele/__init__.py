"""adele: segmentation from noisy annotations with adaptive early-learning correction."""
from .config import Config, load_config
from .errors import AdeleError, ConfigError, DatasetError, RunError

__version__ = "0.1.0"

__all__ = ["AdeleError", "Config", "ConfigError", "DatasetError", "RunError", "__version__", "load_config"]
