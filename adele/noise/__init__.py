"""Synthetic annotation noise for segmentation label maps (pure numpy/scipy).

Every function takes ``label: (H, W)`` integer class ids (0 = background,
``ignore_index`` = 255 = ignore) and an ``np.random.Generator``, and returns a
new ``uint8`` map; ignore pixels are never changed. Recipes compose the noise
types from a spec string such as ``'final+missing:p=0.1'``.
"""

from ..errors import LabelError, RecipeError
from .boundary import markov_noise, markov_noise_events
from .morph import morph_mask, morph_noise, morph_noise_events
from .objects import add_blobs, confuse_objects, drop_objects
from .recipes import (
    RECIPE_NAMES,
    Recipe,
    Step,
    apply_recipe,
    load_recipe,
    noise_dataset,
    parse_recipe,
    recipe_from_dict,
)
from .report import format_table, noise_stats, preview_png
from .synthetic import random_blob, synthetic_label_map

__all__ = [
    "LabelError",
    "RECIPE_NAMES",
    "Recipe",
    "RecipeError",
    "Step",
    "add_blobs",
    "apply_recipe",
    "load_recipe",
    "confuse_objects",
    "drop_objects",
    "format_table",
    "markov_noise",
    "markov_noise_events",
    "morph_mask",
    "morph_noise",
    "morph_noise_events",
    "noise_dataset",
    "noise_stats",
    "parse_recipe",
    "preview_png",
    "random_blob",
    "recipe_from_dict",
    "synthetic_label_map",
]
