"""docs/settings.md is generated from adele/config/settings.py: the page and the code cannot disagree."""
import dataclasses
import typing

import pytest

from adele import config, config_doc


def test_settings_page_is_what_the_generator_writes_now():
    assert config_doc.PAGE.read_text() == config_doc.render(), \
        "docs/settings.md differs from adele/config/settings.py; run `python -m adele.config_doc` and commit the page"


def test_every_setting_has_a_row_with_its_default():
    page = config_doc.render()
    defaults = config.Config().to_dict()
    for name in config_doc._all_names():
        value = defaults
        for part in name.split("."):
            value = value[part]
        row = next((line for line in page.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        assert f"| `{config_doc._value(tuple(value) if isinstance(value, list) else value)}` |" in row, (name, row)


def test_a_setting_without_a_description_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Bare:
        #: described
        a: int = 1
        b: int = 2

    @dataclasses.dataclass(frozen=True)
    class Root:
        bare: Bare = dataclasses.field(default_factory=Bare)

    with pytest.raises(ValueError) as exc:
        config_doc.render(Root)
    undescribed = str(exc.value).split(";")[0]
    assert "'bare.b'" in undescribed and "'bare.a'" not in undescribed


def test_planned_values_come_from_the_plan():
    plans = config_doc.planned()
    assert plans["train.loss"] == "`ce_dice`" and plans["data.size"] == "from the data"
    assert set(plans) <= set(config_doc._all_names())
    assert typing.get_type_hints(config.TrainConfig)["epochs"] is int
