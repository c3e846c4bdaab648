import numpy as np
from PIL import Image

from adele.reporting import figures
from adele.reporting.runs import ClassCurve


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
