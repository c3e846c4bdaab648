import numpy as np
from PIL import Image

from adele.reporting import figures
from adele.reporting.class_curves import ClassCurve


def _curves(n):
    e = np.arange(1, 21)
    return [ClassCurve(f"c{i}", e, 1 - np.exp(-e / 8)) for i in range(n)]


def test_iou_curves_keep_the_legend_beside_a_single_row_and_short_under_a_full_grid(tmp_path):
    """The legend takes a cell: with 5 classes (a full row) it sits beside them, not in an empty row of plot height;
    under a full 2-row grid its row is short; otherwise it takes the first free cell."""
    sizes = {}
    for n in (4, 5, 9, 10):
        with Image.open(figures.iou_curves(_curves(n), [5], tmp_path / f"{n}.png")) as im:
            sizes[n] = im.size
    assert sizes[5][1] == sizes[4][1] and sizes[5][0] > sizes[4][0]  # one row, one column wider
    assert sizes[9][0] == sizes[10][0] and sizes[9][1] < sizes[10][1] < 1.5 * sizes[9][1]  # a short third row


def test_matplotlib_cache_probe_treats_a_folder_it_may_not_search_as_unusable(tmp_path, monkeypatch):
    """Issue 38: HOME=/root for a user who cannot read it; Path.exists() raises PermissionError (EACCES) there.
    The probe must answer with a private folder, not raise (root searches every folder, so the denial is simulated)."""
    import os
    from pathlib import Path

    home = tmp_path / "home"
    real_exists = Path.exists

    def denied(self, *a, **k):
        if str(self).startswith(str(home)):
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self, *a, **k)

    monkeypatch.setattr(Path, "exists", denied)
    d = figures.private_config_dir({"HOME": str(home)})
    assert d is not None and os.path.isdir(d) and not d.startswith(str(home))
    assert figures.private_config_dir({"HOME": str(home), "MPLCONFIGDIR": str(tmp_path)}) is None  # the user's own choice wins
