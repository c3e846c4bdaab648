"""Issue 38: the commands that need no network answer without importing torch or matplotlib, and the CLI works for a
user who cannot read $HOME (matplotlib's usual cache folder)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from adele.testing import make_dataset

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))

#: run each command in one fresh interpreter; after each, the heavy packages it had imported
PROBE = """
import json, sys
from adele.cli import main
seen = {}
for argv in json.loads(sys.argv[1]):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    seen[" ".join(argv)] = [rc, sorted(m for m in ("torch", "matplotlib", "scipy") if m in sys.modules)]
print(json.dumps(seen), file=sys.stderr)
"""


def test_help_version_config_show_and_data_check_import_neither_torch_nor_matplotlib(tmp_path):
    data = make_dataset(tmp_path / "ds", n_train=2, n_val=1, n_test=1, size=(16, 16))
    commands = [["--help"], ["--version"], ["config", "show"], ["data", "check", str(data)]]
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True, env=ENV, timeout=120)
    seen = json.loads(res.stderr.strip().splitlines()[-1])
    assert all(rc == 0 for rc, _ in seen.values()), seen
    assert seen["--help"][1] == seen["--version"][1] == seen["config show"][1] == [], seen  # the parser alone: no scipy either
    assert not {"torch", "matplotlib"} & set(seen[f"data check {data}"][1]), seen  # reading a dataset may take scipy, not torch


# ----------------------------------------------------------------------------- as a user who cannot read $HOME

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _as_nobody(args, home, **kw):
    env = dict(ENV, HOME=str(home))
    env.pop("MPLCONFIGDIR", None)
    env.pop("XDG_CONFIG_HOME", None)
    return subprocess.run([*NOBODY, sys.executable, *args], capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.fixture
def nobody_place():
    """A folder user nobody can enter (pytest's own are private to root), holding a HOME it cannot read."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as user nobody")
    base = Path(tempfile.mkdtemp(prefix="adele-nobody-"))
    try:
        base.chmod(0o755)
        probe = subprocess.run([*NOBODY, sys.executable, "-c", "import numpy, adele"], capture_output=True, cwd=base, env=ENV, timeout=120)
        if probe.returncode != 0:
            pytest.skip(f"user nobody cannot run this interpreter with adele: {probe.stderr.decode(errors='replace')[-200:]}")
        home = base / "home"
        (home / ".config").mkdir(parents=True)
        home.chmod(0o700)  # root's, closed: like HOME=/root for another uid
        yield base, home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_user_who_cannot_read_home_gets_answers_and_one_line_errors_not_a_traceback(nobody_place):
    base, home = nobody_place
    res = _as_nobody(["-m", "adele", "--version"], home, cwd=base)
    assert res.returncode == 0 and res.stdout.startswith("adele "), res.stderr[-2000:]

    closed = base / "closed"  # root's, read-only for others: an output folder nobody cannot write
    closed.mkdir()
    data = make_dataset(base / "ds", n_train=2, n_val=1, n_test=1, size=(16, 16))
    for p in [data, *data.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    unreadable = data / "train" / "images" / "im00.png"
    unreadable.chmod(0o000)
    for argv, words in ((["data", "export", "colin27", str(closed / "out")], "cannot write under"),
                        (["data", "check", str(data)], "im00.png")):
        res = _as_nobody(["-m", "adele", *argv], home, cwd=base)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], res.stderr[-2000:]


@pytest.mark.slow  # matplotlib builds its font cache afresh in the private folder: about 10 s
def test_a_user_who_cannot_read_home_draws_figures_with_a_private_matplotlib_cache(nobody_place):
    base, home = nobody_place
    out = base / "figs"
    out.mkdir()
    out.chmod(0o777)  # (mkdir's mode is masked by the umask)
    code = ("import numpy as np; from pathlib import Path; from adele.reporting import figures; "
            "mem = {'epochs': np.arange(1, 4), 'early_learning': np.zeros((3, 2)), 'memorized': np.ones((3, 2))}; "
            f"figures.memorization_compare([('run', mem)], Path({str(out / 'm.png')!r}))")
    res = _as_nobody(["-c", code], home, cwd=base)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "m.png").stat().st_size > 0 and "Traceback" not in res.stderr
