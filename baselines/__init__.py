"""The matched DiT baseline and the field's efficient mixers on LinGen's backbone (linear attention as in
SANA-Video, STA sliding tile attention, Radial attention). Each folder is one mixer: ``spec.py`` (pure python: its
options, cost terms and ``ENTRY``), ``model.py`` (torch) and ``preset.yaml`` (registry names and flavors).
LinGen's Table 2 ablations are variants in ``lingen/preset.yaml``."""
