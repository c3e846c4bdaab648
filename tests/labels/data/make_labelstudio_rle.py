"""Writes labelstudio_rle.json: reference RLEs from Label Studio's own converter.

Run in a throwaway virtual environment with `pip install label-studio-converter numpy`:
    python make_labelstudio_rle.py > labelstudio_rle.json
"""
import importlib.metadata as md
import json
import sys

import numpy as np
from label_studio_converter import brush

def rows(m):
    return ["".join("1" if v else "0" for v in r) for r in m]

cases = {}
m = np.zeros((5, 7), bool); m[1:4, 2:6] = True; m[0, 0] = True; m[4, 6] = True
cases["pattern_5x7"] = m
yy, xx = np.mgrid[:24, :40]
cases["disk_24x40"] = (yy - 11) ** 2 + (xx - 22) ** 2 < 81
m = np.zeros((130, 131), bool); m[-1, -1] = True
cases["long_run_130x131"] = m  # a run of zeros longer than 2**16 values
cases["checker_6x4"] = (yy[:6, :4] + xx[:6, :4]) % 2 == 1
out = {"converter": f"label-studio-converter {md.version('label-studio-converter')}, label_studio_converter.brush.mask2rle(mask * 255)",
       "masks": [{"name": k, "height": int(v.shape[0]), "width": int(v.shape[1]), "rows": rows(v),
                  "rle": brush.mask2rle((v * 255).astype(np.uint8))} for k, v in cases.items()]}
json.dump(out, sys.stdout, separators=(",", ":"))
