"""LinGen Table 2 ablation variants. Each is the LinGen model with one switch of ``ModelConfig.mate`` changed
(set by ``experiments/models/lingen.yaml: variants``), so they share every line of model code:

    lingen-no-tesa    mate.tesa=false        (w/o TESA)
    lingen-no-rms     mate.scan=fixed        (w/o RMS: always spatial row-major)
    lingen-zigzag     mate.scan=zigzag       (w/ Zigzag: ZigMa snake paths by index gather, cycling over 8 paths)
    lingen-mamba1     mate.ssm.kind=mamba1   (w/ Mamba: Mamba-1 selective scan)
    lingen-no-ma      mate.ma=false          (w/o MA-branch: TESA only)
    lingen-no-review  mate.review=false      (w/o review tokens)
"""
from __future__ import annotations

from lingen.model import build_lingen

build_variant = build_lingen
