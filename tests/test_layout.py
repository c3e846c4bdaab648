"""One home per concern (import directions, defaults written once) and a CLI that behaves the same everywhere."""
import argparse
import ast
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

import adele
from adele import safety
from adele.cli import build_parser, main
from adele.data.io import write_array
from adele.noise.recipes import parse_recipe
from adele.testing import make_dataset

PKG = Path(adele.__file__).parent
README = PKG.parent / "README.md"
DOCS = PKG.parent / "docs"
TINY = ["--set", "data.size=[24, 20]", "model.width=4", "model.depth=2", "train.batch_size=2", "train.device=cpu", "--epochs", "2"]


# ----------------------------------------------------------------------------- imports


def _project_imports(path: Path):
    """(module-level?, imported module as a dotted name inside adele, line) of every import of the project in ``path``."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        package = parts[:-1]
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names = [name] + [f"{name}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        names = [n for n in names if n == "adele" or n.startswith("adele.")]
        if names:
            yield id(node) in top, names, node.lineno


def _modules(sub: str = ""):
    return sorted((PKG / sub).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [("reporting", "adele.engine"), ("labels", "adele.engine"), ("noise", "adele.engine")])
def test_reporting_labels_and_noise_never_import_the_engine(package, forbidden):
    bad = [(p.name, line) for p in _modules(package) for _, names, line in _project_imports(p) if any(n.startswith(forbidden) for n in names)]
    assert not bad, f"{package}/ imports {forbidden}: {bad}"


@pytest.mark.parametrize("package, forbidden", [("data", "adele.noise"), ("noise", "adele.data")])
def test_data_and_noise_never_import_each_other(package, forbidden):
    """Reading datasets and drawing noise are two libraries: ``adele/run/data.py`` composes them for a run (the data
    package takes the noise as a function), the ``adele noise`` command's copy lives in ``cli/``."""
    bad = [(p.name, line) for p in _modules(package) for _, names, line in _project_imports(p)
           if any(n == forbidden or n.startswith(forbidden + ".") for n in names)]
    assert not bad, f"{package}/ imports {forbidden}: {bad}"


def test_core_imports_nothing_of_the_project():
    bad = [(p.name, names) for p in _modules("core") for _, names, _ in _project_imports(p)
           if not all(n.startswith("adele.core") for n in names)]
    assert not bad


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle():
    """The modules of the project import each other without a circle (module-level and deferred imports alike)."""
    known = {_module_name(p) for p in _modules()}
    graph = {}
    for p in _modules():
        deps = set()
        for _, names, _ in _project_imports(p):
            modules = {n for n in names[1:] if n in known}  # `from . import x`: the module x, not the package
            deps |= modules or {names[0]} & known
        graph[_module_name(p)] = deps - {_module_name(p)}
    state, path, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                circles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d)
        path.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not circles, [" -> ".join(c) for c in circles]


def test_project_modules_are_imported_at_module_top_unless_a_reason_is_given():
    """A function-level import of the project hides a dependency; the few necessary ones say why on the line."""
    bad = []
    for p in _modules():
        lines = p.read_text().splitlines()
        for top, names, line in _project_imports(p):
            if not top and "deferred:" not in lines[line - 1]:
                bad.append(f"{p.relative_to(PKG)}:{line}")
    assert not bad, bad


def test_one_way_into_a_run_folder():
    """``RunFolder.open`` is the only way into a run: outside ``adele/run/`` no code calls the bare constructor or reaches
    the model loader (``RunFolder.open(path).model()`` loads a run's model)."""
    root, bad = PKG.parent, []
    for p in sorted([*root.joinpath("adele").rglob("*.py"), *root.joinpath("benchmarks").rglob("*.py"), *root.joinpath("tests").rglob("*.py")]):
        if PKG / "run" in p.parents:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            name = None
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                name = name if name == "RunFolder" else None
            elif isinstance(node, ast.ImportFrom):
                name = next((a.name for a in node.names if a.name in ("_load_model", "load_run_model")), None)
            elif isinstance(node, ast.Attribute) and node.attr in ("_load_model", "load_run_model"):
                name = node.attr
            if name:
                bad.append(f"{p.relative_to(root)}:{node.lineno} {name}")
    assert not bad, f"a second way into a run folder (use RunFolder.open): {bad}"


def test_every_error_class_is_defined_in_errors_py():
    """A user error has one home: ``adele/errors.py`` (other modules import and raise them)."""
    bad = []
    for p in _modules():
        if p == PKG / "errors.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Diverged")) for b in bases):
                    bad.append(f"{p.relative_to(PKG)}:{node.lineno} {node.name}")
    assert not bad, bad


# ----------------------------------------------------------------------------- defaults written once


def test_config_show_matches_the_method_page(capsys):
    assert main(["config", "show"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    det, con = cfg["adele"]["detection"], cfg["adele"]["consistency"]
    text = " ".join((DOCS / "method.md").read_text().split())
    others = [s for s in con["scales"] if s != 1.0]
    expected = [f"(r = {det['r']})", f"`adele.detection.flag_offset: {det['flag_offset']}`",
                f"`adele.consistency.every_steps` (default {con['every_steps']})", f"scales {others[0]} and {others[1]}",
                f"`mask: {con['mask']}`", f"`normalize: {con['normalize']}`",
                "(`adele.detection.horizon`, default `train.epochs`" if det["horizon"] is None else f"horizon {det['horizon']}"]
    missing = [e for e in expected if e not in text]
    assert not missing, f"docs/method.md disagrees with `adele config show`: {missing}"


def test_noise_defaults_in_help_and_docs_are_the_recipes(capsys):
    kw = parse_recipe("final").steps[0].kwargs()
    area, (lo, hi) = kw["target_area"], kw["iterations"]
    with pytest.raises(SystemExit):
        main(["noise", "--help"])
    help_text = capsys.readouterr().out
    assert f"target_area={area:g}, iterations={lo}-{hi}" in help_text
    assert f"`target_area={area:g}`, {lo}-{hi} iterations" in " ".join((DOCS / "noise.md").read_text().split())


def test_every_option_of_every_command_has_help():
    missing = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
                missing.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "adele")
    assert not missing, missing


# ----------------------------------------------------------------------------- files others can read


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        safety.atomic_write_text("x", tmp_path / "a.txt")
        write_array(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
        write_array(tmp_path / "c.npy", np.zeros((4, 4), np.float32))
        data = make_dataset(tmp_path / "ds")
        assert main(["noise", "--data", str(data), "--out", str(tmp_path / "noisy"), "--previews", "1"]) == 0
    finally:
        os.umask(old)
    files = [tmp_path / "a.txt", tmp_path / "b.png", tmp_path / "c.npy"] + [p for p in (tmp_path / "noisy").rglob("*") if p.is_file()]
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes
    dirs = {oct(stat.S_IMODE(p.stat().st_mode)) for p in [tmp_path / "noisy", *(tmp_path / "noisy").rglob("*")] if p.is_dir()}
    assert dirs == {"0o755"}


# ----------------------------------------------------------------------------- training output


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--out", str(out), *TINY, *extra])


def test_one_line_per_epoch_when_stdout_is_not_a_terminal_and_none_on_a_terminal(tmp_path, capsys, monkeypatch):
    data = make_dataset(tmp_path / "ds")
    assert _train(data, tmp_path / "log") == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2, out
    assert re.fullmatch(r"epoch 1/2  loss \d+\.\d{4}  train IoU (\d+\.\d{4}|nan)  val Dice \d+\.\d{4}  \d+\.\d s", lines[0]), lines[0]

    import adele.engine.trainer as trainer

    monkeypatch.setattr(trainer, "stdout_is_terminal", lambda: True)
    assert _train(data, tmp_path / "tty") == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    # the lines are additive: the same numbers either way
    assert json.loads((tmp_path / "log" / "metrics.json").read_text()) == json.loads((tmp_path / "tty" / "metrics.json").read_text())
    assert (tmp_path / "log" / "history.csv").read_text().count("\n") == (tmp_path / "tty" / "history.csv").read_text().count("\n")


def test_data_noise_on_a_folder_with_its_own_noisy_labels_is_refused_without_renoise(tmp_path, capsys):
    data = make_dataset(tmp_path / "ds", clean=True)
    assert _train(data, tmp_path / "r", "--set", "data.noise=final") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "--renoise" in err and "data.noise=null" in err
    assert not (tmp_path / "r").exists()
    assert _train(data, tmp_path / "r", "--set", "data.noise=final", "--renoise") == 0
    assert "warning: --renoise" in capsys.readouterr().err
    assert _train(data, tmp_path / "plain") == 0  # its own noisy labels, no data.noise: as always


# ----------------------------------------------------------------------------- run folder argument, overwrite


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    data = make_dataset(root / "ds")
    assert main(["train", "--data", str(data), "--out", str(root / "run"), *TINY]) == 0
    return root / "run", data


@pytest.mark.parametrize("command", ["predict", "export-labels"])
def test_run_folder_is_positional_and_the_old_spelling_warns(run_and_data, tmp_path, capsys, command):
    run, data = run_and_data
    extra = ["--input", str(data / "test" / "images")] if command == "predict" else []
    assert main([command, str(run), *extra, "--out", str(tmp_path / "new"), "--device", "cpu"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main([command, "--run", str(run), *extra, "--out", str(tmp_path / "old"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: --run is deprecated" in err and f"adele {command} {run}" in err
    assert main([command, str(run), "--run", str(run), *extra, "--out", str(tmp_path / "both")]) == 2
    assert "give the run folder once" in capsys.readouterr().err
    assert main([command, *extra, "--out", str(tmp_path / "none")]) == 2
    assert "RUN: name the run folder" in capsys.readouterr().err


def test_every_writing_command_refuses_an_existing_output_without_overwrite(run_and_data, tmp_path, capsys):
    run, data = run_and_data
    commands = {
        "train": ["train", "--data", str(data), *TINY, "--out"],
        "noise": ["noise", "--data", str(data), "--previews", "0", "--out"],
        "report": ["report", str(run), "--examples", "0", "--out"],
        "predict": ["predict", str(run), "--input", str(data / "test" / "images"), "--device", "cpu", "--out"],
        "export-labels": ["export-labels", str(run), "--device", "cpu", "--out"],
        "data export": ["data", "export", "colin27", "--out"],
    }
    for name, args in commands.items():
        out = tmp_path / name.replace(" ", "_")
        if name == "data export":  # positional OUT
            args = ["data", "export", "colin27", str(out)]
            again = args
        else:
            args, again = args + [str(out)], args + [str(out)]
        assert main(args) == 0, name
        capsys.readouterr()
        assert main(again) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "--overwrite" in err and len(err.splitlines()) == 1, (name, err)
        assert main(again + ["--overwrite"]) == 0, name
