from pathlib import Path

import pytest

from adele.cli import main
from adele.config import Config, load_config
from adele.errors import ConfigError


def test_defaults_roundtrip_yaml(tmp_path):
    cfg = Config()
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert load_config(p) == cfg


def test_overrides_apply_and_parse_types():
    cfg = load_config(None, ["train.epochs=7", "optim.lr=0.5", "data.size=[64, 48]", "adele.consistency.scales=[1.0, 0.5]"])
    assert cfg.train.epochs == 7 and cfg.optim.lr == 0.5
    assert cfg.data.size == (64, 48) and cfg.adele.consistency.scales == (1.0, 0.5)


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.epochz=3", "unknown config key 'train.epochz'"),
        ("optim.lr=-1", "optim.lr"),
        ("train.epochs=abc", "train.epochs"),
        ("optim.name=rmsprop", "optim.name"),
        ("adele.correction.tau_fg=0.3", "tau_fg"),
        ("nosection.x=1", "unknown config key"),
        ("train.batch_size=0", "train.batch_size"),
    ],
)
def test_bad_values_name_the_field(override, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_bad_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_unknown_key_in_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match="train.epoch"):
        load_config(p)


def test_config_show(capsys):
    assert main(["config", "show", "--set", "train.epochs=3"]) == 0
    assert "epochs: 3" in capsys.readouterr().out


def test_cli_bad_override_exit_2(tmp_path, capsys):
    rc = main(["train", "--data", "colin27", "--out", str(tmp_path / "r"), "--set", "optim.lr=-0.1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: optim.lr") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_presets_are_installed_with_the_package_and_the_repo_configs_point_at_them():
    repo = Path(__file__).resolve().parents[1]
    from adele.config import PRESETS_DIR, available_presets

    assert {"colin27", "colin27-ce-dice", "segthor", "voc"} <= set(available_presets())
    for name in available_presets():
        assert (repo / "configs" / f"{name}.yaml").resolve() == (PRESETS_DIR / f"{name}.yaml").resolve()
        assert load_config(name) == load_config(repo / "configs" / f"{name}.yaml")
    with pytest.raises(ConfigError, match="preset name"):
        load_config("no-such-preset")


def test_demo_runs_the_benchmarks_default_setting(monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(repo / "benchmarks"))
    import bench_adele

    from adele.demo import DEMO_DATA, DEMO_NOISE

    defaults = bench_adele.parser().parse_args([])
    assert (defaults.dataset, defaults.config, defaults.recipes) == (DEMO_DATA, "plan", [DEMO_NOISE])
    assert DEMO_NOISE == "final:target_area=1000"  # the paper's noise level


@pytest.mark.parametrize("aug", ["data.hflip=true", "data.crop=[32, 32]", "data.scale_range=[0.7, 1.3]"])
def test_training_time_predictions_with_augmentation_are_refused(aug):
    # the softmax of an augmented batch would be stored under the un-augmented image's index
    with pytest.raises(ConfigError, match="adele.correction.predictions"):
        load_config(None, ["adele.correction.predictions=train", aug])
    load_config(None, ["adele.correction.predictions=eval", aug])
    load_config(None, ["adele.correction.predictions=train"])


@pytest.mark.parametrize("bad", ["adele.detection.horizon=-5", "adele.detection.flag_offset=-1",
                                 "adele.consistency.normalize=mean", "adele.correction.average=max"])
def test_new_method_settings_are_validated(bad):
    with pytest.raises(ConfigError):
        load_config(None, [bad])


@pytest.mark.parametrize("bad,words", [
    (["adele.correction.restart_from_original=true"], "classes=flagged"),
    (["adele.correction.rule=voc", "adele.correction.tau_bg=0.7", "adele.correction.tau_fg=0.8"], "one threshold"),
    (["adele.correction.classes=all"], "classes"),
    (["adele.consistency.temperature=0"], "temperature"),
    (["adele.consistency.form=paper"], "form"),
])
def test_official_semantics_settings_are_validated(bad, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, bad)


def test_the_official_logit_scale_is_the_default():
    """The official network trains its CE on logits / 3 and thresholds the softmax of its raw logits:
    with the consistency term on, correction and consistency read softmax(3 * logits)."""
    a = load_config(None, ["method=adele"]).adele
    assert a.consistency_temperature() == pytest.approx(1 / 3) and a.correction_temperature() == pytest.approx(1 / 3)
    a = load_config(None, ["method=adele", "adele.consistency.enabled=false"]).adele
    assert a.correction_temperature() == 1.0  # the official code without the term trains on raw logits
    a = load_config(None, ["adele.consistency.scales=[1.0,0.5]", "adele.correction.temperature=2"]).adele
    assert a.consistency_temperature() == 0.5 and a.correction_temperature() == 2
    seg = load_config("segthor").adele
    assert (seg.correction.classes, seg.correction.rule, seg.consistency.form) == ("new", "segthor", "segthor")
    assert seg.correction_temperature() == pytest.approx(1 / 3)
    voc = load_config("voc")
    assert (voc.adele.correction.classes, voc.adele.correction.rule, voc.adele.consistency.form) == ("flagged", "voc", "voc")
    assert voc.adele.correction_temperature() == 1.0 and voc.adele.consistency_temperature() == pytest.approx(1 / 3)
    assert voc.data.scale_range == (0.5, 1.5)


def test_issue_25s_default_lives_in_one_place_and_the_paper_configs_opt_out():
    """`--method adele` without a config and the colin27 presets: per-class bars (class_share 0.5) with the area
    guard (0.25); the configs that reproduce the paper keep the official single tau and no guard."""
    for cfg in (load_config(None, ["method=adele"]), load_config("colin27"), load_config("colin27-ce-dice")):
        assert (cfg.adele.correction.class_share, cfg.adele.correction.guard_area) == (0.5, 0.25)
    for name in ("segthor", "voc"):
        cor = load_config(name).adele.correction
        assert (cor.class_share, cor.guard_area) == (None, None)
    with pytest.raises(ConfigError, match="guard_area"):
        load_config(None, ["adele.correction.guard_area=0"])


def test_the_paper_presets_detect_and_noise_as_the_official_code():
    """segthor.yaml and voc.yaml: none of adele's refusals before or after the fit (the official if_update has
    none), while the default keeps them; segthor.yaml's noise processes the classes in the official order."""
    import numpy as np

    from adele.config import DetectionConfig
    from adele.core import OnsetRule, detect_onset
    from adele.noise import parse_recipe

    default = DetectionConfig()
    assert (default.min_peak_iou, default.min_rise, default.refuse_decreasing) == (0.2, 0.1, True)
    assert load_config(None, ["method=adele"]).adele.detection == default
    # starts high, drops, rises again by >= 0.1 and ends below its start: refused by default, fitted officially
    y = np.array([0.5, 0.1, 0.4, 0.3, 0.35, 0.36, 0.37, 0.37])
    assert "decreasing" in detect_onset(y, y.size, 100, OnsetRule(**default.fit_settings())).reason
    for name in ("segthor", "voc"):
        det = load_config(name).adele.detection
        assert (det.min_peak_iou, det.min_rise, det.refuse_decreasing) == (0.0, 0.0, False), name
        res = detect_onset(y, y.size, det.horizon or 100, OnsetRule(**det.fit_settings()))
        assert res.fit is not None and res.onset is not None, (name, res.reason)
    noise = parse_recipe(load_config("segthor").data.noise).steps[0].kwargs()
    assert noise["order"] == (1, 3, 4, 2) and noise["variant"] == "official" and noise["target_area"] == 1000
    assert parse_recipe("final").steps[0].kwargs()["order"] == "ascending"  # the recipes' default is unchanged


def test_validation_labels_default_to_noisy_under_synthetic_noise_and_compare_as_resolved():
    """data.val_labels null: a run with data.noise selects its checkpoint on noisy val labels, as a user's are; without
    data.noise, on the labels as given. A resume compares the resolved value, so null and what it stands for agree."""
    from adele.engine.rundir import config_changes

    noisy = load_config(overrides={"data.noise": "final:target_area=1000"})
    assert noisy.data.val_labels is None and noisy.data.validation_labels() == "noisy"
    assert load_config().data.validation_labels() == "clean"
    assert load_config(overrides={"data.noise": "final", "data.val_labels": "clean"}).data.validation_labels() == "clean"
    explicit = load_config(overrides={"data.noise": "final:target_area=1000", "data.val_labels": "noisy"})
    assert config_changes(noisy.to_dict(), explicit.to_dict()) == []
    clean = noisy.replace(**{"data.val_labels": "clean"})
    assert config_changes(clean.to_dict(), noisy.to_dict()) == [("data.val_labels", "clean", "noisy")]
    assert config_changes(load_config().to_dict(), load_config(overrides={"data.val_labels": "clean"}).to_dict()) == []
