import numpy as np
import pytest

from adele.noise import (
    RECIPE_NAMES, Recipe, RecipeError, apply_recipe, noise_dataset, parse_recipe, recipe_from_dict,
)

NUM_CLASSES = 6  # matches the label_maps fixture (conftest.py)
IGNORE = 255

EXAMPLES = [
    "final", "under", "over", "mixed", "markov", "markov:strength=0.7", "final+missing:p=0.1",
    "final:target_area=800,iterations=2-4+extra:p=0.2+confusion:p=0.1",
]
ALL_STEPS = [
    "under", "over", "final", "mixed", "markov:p_expand=0.7", "final+missing:p=0.5",
    "final+extra:p=1+confusion:p=0.5",
]


@pytest.mark.parametrize("spec", EXAMPLES)
def test_examples_parse_and_round_trip(spec):
    recipe = parse_recipe(spec)
    assert isinstance(recipe, Recipe)
    assert [s.name for s in recipe.steps] == [part.split(":")[0] for part in spec.split("+")]
    assert parse_recipe(recipe.to_spec()) == recipe
    assert recipe_from_dict(recipe.to_dict()) == recipe
    assert hash(recipe) == hash(parse_recipe(spec))


def test_parameters_are_normalized_with_defaults():
    step = parse_recipe(" final : target_area=800 , iterations=3 ").steps[0]
    assert step.kwargs() == {"target_area": 800.0, "iterations": (3, 3), "order": "ascending", "variant": "official"}
    # the official SegTHOR noise by default: 1000 px, 2-4 iterations, a fixed order
    assert parse_recipe("final").steps[0].kwargs() == {"target_area": 1000.0, "iterations": (2, 4), "order": "ascending",
                                                       "variant": "official"}
    assert parse_recipe("final:variant=painted").steps[0].kwargs()["order"] == "random"
    assert parse_recipe("final:variant=painted,order=ascending").steps[0].kwargs()["order"] == "ascending"
    assert parse_recipe("final:target_area=none").steps[0].kwargs()["target_area"] is None
    markov = parse_recipe("markov:steps=5,p_expand=0.8").steps[0].kwargs()
    assert markov == {"strength": 0.5, "p_expand": 0.8, "steps": 5, "smoothness": 0.5}


def test_dict_form_matches_spec():
    data = {"steps": [{"name": "final", "target_area": 800, "iterations": [2, 4]},
                      {"name": "extra", "p": 0.2}, {"name": "confusion", "p": 0.1}]}
    assert recipe_from_dict(data) == parse_recipe(EXAMPLES[-1])


@pytest.mark.parametrize("spec, message", [
    ("fnal", "unknown noise recipe 'fnal'.*valid names: under, over, final, mixed, markov, missing"),
    ("final:foo=1", "unknown parameter 'foo' for 'final'.*valid parameters for final: target_area, iter"),
    ("missing:p=-0.1", r"missing:p='-0.1'.*probability in \[0, 1\]"),
    ("missing:p=1.5", r"missing:p='1.5'.*probability"),
    ("missing:p=abc", "expected a number"),
    ("final:target_area=0", "target_area='0'.*must be > 0"),
    ("final:target_area=-5", "target_area"),
    ("final:iterations=4-2", "iterations='4-2'.*1 <= lo <= hi"),
    ("final:iterations=0-2", "1 <= lo <= hi"),
    ("final:iterations=a-b", "integer range"),
    ("final:iterations=2.5", "integer range"),
    ("markov:p_expand=2", "p_expand"),
    ("final+", "empty component"),
    ("", "non-empty"),
    ("missing:p", "key=value"),
    ("missing:p=0.1,p=0.2", "given twice"),
])
def test_bad_specs_raise_one_line_value_errors(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_recipe(spec)
    assert isinstance(err.value, RecipeError)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data, message", [
    ({}, "'steps' list"),
    ({"steps": []}, "empty"),
    ({"steps": [{"p": 0.1}]}, "'name'"),
    ({"steps": [{"name": "final"}], "seed": 1}, "unknown noise recipe key"),
    ({"steps": [{"name": "extra", "p": 2}]}, r"step 0.*probability"),
    ({"steps": [{"name": "final", "iterations": [2, 3, 4]}]}, "integer range"),
])
def test_bad_dicts_raise(data, message):
    with pytest.raises(ValueError, match=message):
        recipe_from_dict(data)


@pytest.mark.parametrize("spec", ALL_STEPS)
def test_every_recipe_keeps_the_contract(spec, label_maps, check_valid):
    recipe = parse_recipe(spec)
    copies = [m.copy() for m in label_maps]
    noisy, events = noise_dataset(label_maps, recipe, seed=11, num_classes=NUM_CLASSES)
    for clean, before, out in zip(label_maps, copies, noisy):
        np.testing.assert_array_equal(clean, before)  # input not modified
        check_valid(clean, out)
    assert any(not np.array_equal(c, n) for c, n in zip(label_maps, noisy))
    assert all(isinstance(v, int) and v >= 0 for ev in events for v in ev.values())
    again, _ = noise_dataset(label_maps, spec, seed=11, num_classes=NUM_CLASSES)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(noisy, again))
    # background-only image stays valid
    empty = np.zeros((16, 20), np.uint8)
    empty[3] = IGNORE
    out, _ = apply_recipe(empty, recipe, np.random.default_rng(0), NUM_CLASSES)
    check_valid(empty, out)
    assert out is not empty


def test_seeding_is_per_image_and_order_independent(label_maps):
    label = label_maps[0]
    noisy, _ = noise_dataset([label, label, label], "markov", seed=3, num_classes=NUM_CLASSES)
    assert not np.array_equal(noisy[0], noisy[1])  # different index -> different noise
    full, _ = noise_dataset(label_maps, "final+missing:p=0.2", seed=3, num_classes=NUM_CLASSES)
    for i in (4, 1):  # any single image reproduces from (seed, index) alone
        alone, _ = apply_recipe(label_maps[i], "final+missing:p=0.2", np.random.default_rng([3, i]),
                                NUM_CLASSES)
        assert alone.tobytes() == full[i].tobytes()
    other_seed, _ = noise_dataset(label_maps, "final+missing:p=0.2", seed=4, num_classes=NUM_CLASSES)
    assert any(not np.array_equal(a, b) for a, b in zip(full, other_seed))


def test_events_count_error_types(label_maps):
    _, events = apply_recipe(label_maps[0], "under+missing:p=1+extra:p=1", np.random.default_rng(0),
                             NUM_CLASSES)
    assert set(events) == {"under", "over", "vanished", "missing", "extra"}
    assert events["under"] == len(set(np.unique(label_maps[0])) - {0, IGNORE})
    assert events["missing"] > 0 and events["extra"] == 1


def test_names_and_bad_seed():
    assert RECIPE_NAMES == ("under", "over", "final", "mixed", "markov", "missing", "confusion", "extra")
    with pytest.raises(ValueError, match="seed"):
        noise_dataset([], "final", seed=-1, num_classes=NUM_CLASSES)


def test_errors_are_adele_errors_for_the_cli():
    from adele.errors import AdeleError
    from adele.noise import LabelError

    with pytest.raises(AdeleError):
        parse_recipe("fnal")
    with pytest.raises(AdeleError):
        apply_recipe(np.full((4, 4), 7, np.uint8), "final", np.random.default_rng(0), NUM_CLASSES)
    assert issubclass(LabelError, ValueError)


# ------------------------------------------------------------------ an explicit class order

def test_explicit_order_parses_in_both_forms_and_round_trips():
    step = parse_recipe("final:order=1-3-4-2").steps[0]
    assert step.kwargs()["order"] == (1, 3, 4, 2)
    assert step.to_spec() == "final:iterations=2-4,order=1-3-4-2,target_area=1000,variant=official"
    as_dict = recipe_from_dict({"steps": [{"name": "final", "order": [1, 3, 4, 2]}]})
    assert as_dict == parse_recipe("final:order=1-3-4-2") == recipe_from_dict(as_dict.to_dict())
    assert parse_recipe("over:order=5").steps[0].kwargs()["order"] == (5,)


@pytest.mark.parametrize("spec, message", [
    ("final:order=1-x", "class ids joined by '-'"),
    ("final:order=descending", "class ids joined by '-'"),
    ("final:order=0-1-2", "background 0 is never processed"),
    ("final:order=1-3-1", "class 1 twice"),
    ("final:order=1--2", "class ids joined by '-'"),
])
def test_bad_explicit_orders(spec, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(spec)


@pytest.mark.parametrize("order, bad", [("1-3-6", "lists 6, not a class: the labels have 0-5; list ids among 1-5"),
                                        ("255-1", "lists 255, the ignore id")])
def test_an_order_naming_a_class_the_labels_lack_is_refused_before_any_image(order, bad, label_maps):
    with pytest.raises(RecipeError, match=bad):
        noise_dataset(label_maps, f"final:order={order}", seed=0, num_classes=NUM_CLASSES)
    with pytest.raises(RecipeError, match=bad):
        apply_recipe(label_maps[0], f"final:order={order}", np.random.default_rng(0), NUM_CLASSES)


def _touching_pair():
    """(12, 16) uint8: class 2 in columns 2-6 and class 3 in columns 9-13, a 2-pixel background gap between."""
    label = np.zeros((12, 16), np.uint8)
    label[3:9, 2:7] = 2
    label[3:9, 9:14] = 3
    return label


@pytest.mark.parametrize("variant, winner", [("official", "first"), ("painted", "last")])
def test_the_order_decides_which_class_takes_the_gap(variant, winner):
    """Dilating both classes by 2 pixels closes the gap; official: the earlier class keeps it, painted: the later."""
    label = _touching_pair()
    gap = np.zeros_like(label, dtype=bool)
    gap[3:9, 7:9] = True
    for order in ((2, 3), (3, 2)):
        spec = f"over:target_area=none,iterations=2,variant={variant},order={order[0]}-{order[1]}"
        out, events = apply_recipe(label, spec, np.random.default_rng(0), NUM_CLASSES)
        assert events["over"] == 2
        expected = order[0] if winner == "first" else order[1]
        assert np.all(out[gap] == expected), (variant, order)


def test_listed_ascending_order_is_ascending_and_unlisted_classes_keep_their_labels(label_maps):
    label = label_maps[0]
    present = sorted(set(np.unique(label).tolist()) - {0, IGNORE})
    listed = "-".join(str(c) for c in present)
    ascending, _ = apply_recipe(label, "final", np.random.default_rng(5), NUM_CLASSES)
    explicit, _ = apply_recipe(label, f"final:order={listed}", np.random.default_rng(5), NUM_CLASSES)
    assert ascending.tobytes() == explicit.tobytes()
    # official variant, erosion at native size: a class left out of the order is never touched
    kept = present[-1]
    only, events = apply_recipe(label, f"under:target_area=none,order={'-'.join(str(c) for c in present[:-1])}",
                                np.random.default_rng(5), NUM_CLASSES)
    assert events["under"] == len(present) - 1
    assert np.array_equal(only == kept, label == kept)
