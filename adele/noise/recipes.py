"""Noise recipes: a small spec language, its parser, and seeded application.

A spec is components joined by ``+``, each ``name[:key=value,...]``, applied
left to right::

    final
    markov:strength=0.7
    final+missing:p=0.1
    final:target_area=800,iterations=2-4+extra:p=0.2+confusion:p=0.1

The same recipe as a dict (e.g. from YAML)::

    {"steps": [{"name": "final", "target_area": 800, "iterations": [2, 4]},
               {"name": "extra", "p": 0.2}]}

Names and parameters (defaults in brackets):

* ``under``, ``over``, ``final``, ``mixed`` -- :func:`~adele.noise.morph_noise`;
  ``target_area`` [1000, the official SegTHOR size] (``none`` = native size),
  ``iterations`` [2-4], ``variant`` [official]: the official SegTHOR noise
  (iterations per slice, bicubic resize, classes in a fixed order, dilation only
  into background); ``painted``: this project's earlier variant (iterations per
  class, nearest resize of the bounding box, classes repainted over each other),
  ``order`` [ascending with ``official``, random with ``painted``]: the order the
  classes are processed in: ``ascending``, ``random`` (drawn per image) or the
  class ids joined by ``-`` (a list in the dict form): ``order=1-3-4-2`` is the
  official SegTHOR noise's order (with ``official`` an earlier class keeps the
  pixels a later one would dilate into; with ``painted`` a later class is painted
  over an earlier one). Only the listed classes get noise; an id the dataset does
  not have is refused when the recipe is applied.
* ``markov`` -- :func:`~adele.noise.markov_noise`; ``strength`` [0.5],
  ``p_expand`` [0.5], ``steps`` [none], ``smoothness`` [0.5].
* ``missing`` -- :func:`~adele.noise.drop_objects`; ``p`` [0.1].
* ``confusion`` -- :func:`~adele.noise.confuse_objects`; ``p`` [0.1], ``dilation`` [2].
* ``extra`` -- :func:`~adele.noise.add_blobs`; ``p`` [0.2], ``radius`` [0.03-0.1],
  ``class_source`` [present].

Seeding: :func:`noise_dataset` gives image ``i`` its own generator
``np.random.default_rng([seed, i])``, so results do not depend on the machine,
on the processing order, or on which other images are in the list.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import RecipeError
from .boundary import markov_noise_events
from .morph import morph_noise_events
from .objects import add_blobs, confuse_objects, drop_objects


# ---------------------------------------------------------------- value parsers
# Each takes a string (from a spec) or a native value (from a dict) and returns
# the normalized value, raising ValueError with the expected form.

def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not math.isfinite(out):
        raise ValueError("expected a finite number")
    return out


def _integer(value: Any) -> int:
    out = _number(value)
    if out != int(out):
        raise ValueError("expected an integer")
    return int(out)


def _probability(value: Any) -> float:
    out = _number(value)
    if not 0.0 <= out <= 1.0:
        raise ValueError("must be a probability in [0, 1]")
    return out


def _non_negative(value: Any) -> float:
    out = _number(value)
    if out < 0:
        raise ValueError("must be >= 0")
    return out


def _positive(value: Any) -> float:
    out = _number(value)
    if out <= 0:
        raise ValueError("must be > 0")
    return out


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))


def _target_area(value: Any) -> float | None:
    if _is_none(value):
        return None
    try:
        return _positive(value)
    except ValueError:
        raise ValueError("must be > 0 (pixels), or none for native size") from None


def _optional_steps(value: Any) -> int | None:
    if _is_none(value):
        return None
    out = _integer(value)
    if out < 0:
        raise ValueError("must be an integer >= 0, or none")
    return out


def _pair(value: Any) -> tuple[Any, Any]:
    """``'2-4'`` / ``'3'`` / ``3`` / ``[2, 4]`` -> a (lo, hi) pair of raw values."""
    if isinstance(value, str):
        parts = re.split(r"(?<![eE])-", value.strip())
        if len(parts) == 1:
            return parts[0], parts[0]
        if len(parts) == 2 and parts[0] and parts[1]:
            return parts[0], parts[1]
        raise ValueError("expected 'lo-hi' or a single value")
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError("expected a [lo, hi] pair")
        return value[0], value[1]
    return value, value


def _iterations(value: Any) -> tuple[int, int]:
    try:
        lo, hi = (_integer(v) for v in _pair(value))
    except ValueError:
        raise ValueError("expected an integer range 'lo-hi' (e.g. 2-4) or one integer") from None
    if lo < 1 or hi < lo:
        raise ValueError("range must satisfy 1 <= lo <= hi")
    return lo, hi


def _radius(value: Any) -> tuple[float, float]:
    try:
        lo, hi = (_number(v) for v in _pair(value))
    except ValueError:
        raise ValueError("expected a range 'lo-hi' of fractions of the image size") from None
    if not 0 < lo <= hi:
        raise ValueError("range must satisfy 0 < lo <= hi")
    return lo, hi


def _class_source(value: Any) -> str:
    out = str(value).strip()
    if out not in ("present", "any"):
        raise ValueError("must be 'present' or 'any'")
    return out


def _paint_order(value: Any) -> str | tuple[int, ...] | None:
    """``'random'`` / ``'ascending'``, or class ids: ``'1-3-4-2'`` / ``[1, 3, 4, 2]`` -> ``(1, 3, 4, 2)``."""
    if _is_none(value):
        return None
    if value in ("random", "ascending"):
        return str(value)
    expected = "order must be 'random', 'ascending' or class ids joined by '-' (e.g. 1-3-4-2)"
    if isinstance(value, str):
        parts = value.strip().split("-")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        parts = [value]
    else:
        raise ValueError(expected)
    try:
        ids = tuple(_integer(v) for v in parts)
    except ValueError:
        raise ValueError(expected) from None
    if not ids or min(ids) < 1:
        raise ValueError("order lists foreground class ids (>= 1; background 0 is never processed)")
    repeated = sorted({c for c in ids if ids.count(c) > 1})
    if repeated:
        raise ValueError(f"order lists class {repeated[0]} twice; list each class once")
    return ids


def _variant(value: Any) -> str:
    if value not in ("official", "painted"):
        raise ValueError(f"variant must be 'official' or 'painted', got {value!r}")
    return str(value)


def _min_one(value: Any) -> int:
    out = _integer(value)
    if out < 1:
        raise ValueError("must be an integer >= 1")
    return out


# ------------------------------------------------------------------- registry

StepFn = Callable[..., "tuple[np.ndarray, dict[str, int]]"]


def _morph_step(mode: str) -> StepFn:
    def run(label, rng, num_classes, ignore_index, order=None, **kw):
        return morph_noise_events(label, rng, mode, num_classes, ignore_index=ignore_index, class_order=order, **kw)
    return run


def _markov_step(label, rng, num_classes, ignore_index, **kw):
    return markov_noise_events(label, rng, num_classes, ignore_index=ignore_index, **kw)


def _counting(name: str, fn) -> StepFn:
    def run(label, rng, num_classes, ignore_index, **kw):
        out, count = fn(label, rng, num_classes=num_classes, ignore_index=ignore_index, **kw)
        return out, {name: count}
    return run


def _default(fn: Callable, name: str) -> Any:
    """The default of parameter ``name`` of a noise function: written once, in that function's signature."""
    return inspect.signature(fn).parameters[name].default


DEFAULT_TARGET_AREA = _default(morph_noise_events, "target_area")
DEFAULT_ITERATIONS = _default(morph_noise_events, "iterations")
_MORPH_PARAMS = {"target_area": (_target_area, DEFAULT_TARGET_AREA), "iterations": (_iterations, DEFAULT_ITERATIONS),
                 "order": (_paint_order, None), "variant": (_variant, _default(morph_noise_events, "variant"))}
#: the processing order each variant takes when the recipe names none
_DEFAULT_ORDER = {"official": "ascending", "painted": "random"}

#: name -> (step function, {param: (parser, default)})
_REGISTRY: dict[str, tuple[StepFn, dict[str, tuple[Callable[[Any], Any], Any]]]] = {
    "under": (_morph_step("under"), _MORPH_PARAMS),
    "over": (_morph_step("over"), _MORPH_PARAMS),
    "final": (_morph_step("final"), _MORPH_PARAMS),
    "mixed": (_morph_step("mixed"), _MORPH_PARAMS),
    "markov": (_markov_step, {
        "strength": (_non_negative, _default(markov_noise_events, "strength")),
        "p_expand": (_probability, _default(markov_noise_events, "p_expand")),
        "steps": (_optional_steps, _default(markov_noise_events, "steps")),
        "smoothness": (_positive, _default(markov_noise_events, "smoothness")),
    }),
    # the object functions take p without a default: a recipe's p is given here only
    "missing": (_counting("missing", drop_objects), {"p": (_probability, 0.1)}),
    "confusion": (_counting("confusion", confuse_objects), {
        "p": (_probability, 0.1),
        "dilation": (_min_one, _default(confuse_objects, "dilation")),
    }),
    "extra": (_counting("extra", add_blobs), {
        "p": (_probability, 0.2),
        "radius": (_radius, _default(add_blobs, "radius")),
        "class_source": (_class_source, _default(add_blobs, "class_source")),
    }),
}

RECIPE_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Step:
    """One recipe component: a registered ``name`` and its validated parameters.

    ``params`` holds every parameter of the component (defaults filled in),
    as sorted ``(key, value)`` pairs so the step is hashable.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def to_spec(self) -> str:
        if not self.params:
            return self.name
        body = ",".join(f"{k}={format_value(v)}" for k, v in self.params)
        return f"{self.name}:{body}"


@dataclass(frozen=True)
class Recipe:
    """An ordered tuple of noise :class:`Step` s, applied left to right."""

    steps: tuple[Step, ...]

    def to_spec(self) -> str:
        """Canonical spec string with every parameter spelled out."""
        return "+".join(s.to_spec() for s in self.steps)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """Dict form accepted by :func:`recipe_from_dict` (ranges as lists)."""
        return {"steps": [
            {"name": s.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in s.params}}
            for s in self.steps
        ]}


def _valid_names() -> str:
    return ", ".join(RECIPE_NAMES)


def _make_step(name: str, raw: Mapping[str, Any], where: str) -> Step:
    if name not in _REGISTRY:
        raise RecipeError(f"unknown noise recipe {name!r} in {where}; valid names: {_valid_names()}")
    schema = _REGISTRY[name][1]
    params = {key: default for key, (_, default) in schema.items()}
    for key, value in raw.items():
        if key not in schema:
            valid = ", ".join(schema)
            raise RecipeError(
                f"unknown parameter {key!r} for {name!r} in {where}; valid parameters for {name}: {valid}"
            )
        try:
            params[key] = schema[key][0](value)
        except ValueError as err:
            raise RecipeError(f"bad value {name}:{key}={value!r} in {where}: {err}") from None
    if "variant" in params and params.get("order") is None:
        params["order"] = _DEFAULT_ORDER[params["variant"]]
    return Step(name, tuple(sorted(params.items())))


def parse_recipe(spec: str | Recipe) -> Recipe:
    """Parse ``'name[:key=value,...]+name...'`` into a :class:`Recipe`.

    Raises:
        RecipeError (a ``ValueError``): one line naming the bad part, with the
        valid names or parameters.
    """
    if isinstance(spec, Recipe):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise RecipeError(
            f"a noise recipe must be a non-empty string such as 'final' or "
            f"'final+missing:p=0.1', got {spec!r}; valid names: {_valid_names()}"
        )
    steps = []
    for part in re.split(r"(?<![eE])\+", spec):
        where = f"recipe component {part.strip()!r}"
        name, _, body = part.strip().partition(":")
        name = name.strip()
        if not name:
            raise RecipeError(f"empty component in noise recipe {spec!r}; join components with '+'")
        raw: dict[str, str] = {}
        if body.strip():
            for item in body.split(","):
                key, eq, value = item.partition("=")
                key, value = key.strip(), value.strip()
                if not eq or not key or not value:
                    raise RecipeError(
                        f"bad parameter {item.strip()!r} in {where}; write key=value, e.g. p=0.1"
                    )
                if key in raw:
                    raise RecipeError(f"parameter {key!r} given twice in {where}")
                raw[key] = value
        steps.append(_make_step(name, raw, where))
    return Recipe(tuple(steps))


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    """Build a :class:`Recipe` from ``{"steps": [{"name": ..., **params}, ...]}``.

    Raises:
        RecipeError (a ``ValueError``) naming the bad step.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("steps"), (list, tuple)):
        raise RecipeError(
            "a noise recipe dict needs a 'steps' list, e.g. "
            "{'steps': [{'name': 'final', 'target_area': 1000}]}"
        )
    if not data["steps"]:
        raise RecipeError(f"the noise recipe 'steps' list is empty; valid names: {_valid_names()}")
    extra = set(data) - {"steps"}
    if extra:
        raise RecipeError(f"unknown noise recipe key(s) {sorted(extra)}; only 'steps' is allowed")
    steps = []
    for i, entry in enumerate(data["steps"]):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise RecipeError(f"noise recipe step {i} must be a mapping with a 'name', got {entry!r}")
        raw = {k: v for k, v in entry.items() if k != "name"}
        steps.append(_make_step(str(entry["name"]), raw, f"recipe step {i} ({entry['name']!r})"))
    return Recipe(tuple(steps))


def check_recipe_classes(recipe: Recipe | str, num_classes: int | None, ignore_index: int = 255) -> Recipe:
    """The recipe, parsed; raises :class:`RecipeError` when an ``order`` lists a class the labels cannot hold.

    ``num_classes``: ``C`` (ids ``0 .. C-1``); ``None`` checks only against ``ignore_index``.
    """
    recipe = parse_recipe(recipe)
    for step in recipe.steps:
        order = step.kwargs().get("order")
        if not isinstance(order, tuple):
            continue
        bad = [c for c in order if c == ignore_index or (num_classes is not None and c >= num_classes)]
        if bad:
            have = f"the ignore id ({ignore_index})" if bad[0] == ignore_index else f"not a class: the labels have 0-{num_classes - 1}"
            fix = "the foreground classes" if num_classes is None else f"ids among 1-{num_classes - 1}"
            raise RecipeError(f"noise recipe component {step.name!r}: order={format_value(order)} lists {bad[0]}, "
                              f"{have}; list {fix}")
    return recipe


def apply_recipe(
    label: np.ndarray,
    recipe: Recipe | str,
    rng: np.random.Generator,
    num_classes: int,
    ignore_index: int = 255,
) -> tuple[np.ndarray, dict[str, int]]:
    """Apply a recipe's steps in order to one label map.

    Args:
        label: ``(H, W)`` integer class ids, 0 = background, ``ignore_index`` = ignore.
        recipe: a :class:`Recipe` or a spec string.
        rng: randomness, consumed by the steps in order.
        num_classes: ``C`` (ids ``>= C`` other than ignore raise ``LabelError``).

    Returns:
        ``(noisy (H, W) uint8, events)``; ``events`` sums the steps' counts, e.g.
        ``{'under': 9, 'over': 0, 'vanished': 1, 'missing': 2}``.

    Raises:
        RecipeError: an ``order`` lists a class id ``>= num_classes`` or the ignore id.
    """
    recipe = check_recipe_classes(recipe, num_classes, ignore_index)
    out = label
    events: dict[str, int] = {}
    for step in recipe.steps:
        out, step_events = _REGISTRY[step.name][0](out, rng, num_classes, ignore_index, **step.kwargs())
        for key, count in step_events.items():
            events[key] = events.get(key, 0) + int(count)
    if out is label:  # a recipe always returns a new array
        out = np.array(label, dtype=np.uint8)
    return out, events


def noise_dataset(
    labels: Sequence[np.ndarray],
    recipe: Recipe | str,
    seed: int,
    num_classes: int,
    ignore_index: int = 255,
) -> tuple[list[np.ndarray], list[dict[str, int]]]:
    """Apply a recipe to every label map, image ``i`` seeded by ``default_rng([seed, i])``.

    Args:
        labels: sequence of ``(H, W)`` integer label maps (an ``(N, H, W)`` array works).
        recipe: a :class:`Recipe` or a spec string.
        seed: non-negative integer.

    Returns:
        ``(noisy maps (list of (H, W) uint8), per-image event dicts)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    recipe = check_recipe_classes(recipe, num_classes, ignore_index)  # before any image is noised
    noisy, events = [], []
    for i, label in enumerate(labels):
        out, ev = apply_recipe(label, recipe, np.random.default_rng([seed, i]), num_classes, ignore_index)
        noisy.append(out)
        events.append(ev)
    return noisy, events


def load_recipe(spec: str) -> Recipe:
    """A spec string (``final+missing:p=0.1``) or the path of a YAML file holding ``{steps: [...]}``."""
    from pathlib import Path

    if spec.endswith((".yaml", ".yml")):
        path = Path(spec)
        if not path.is_file():
            raise RecipeError(f"noise recipe file {spec} not found")
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            raise RecipeError(f"{spec}: not a readable YAML file; fix the syntax") from None
        return recipe_from_dict(data)
    return parse_recipe(spec)
