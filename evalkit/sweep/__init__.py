"""``python -m evalkit sweep``: FLOPs, latency and memory over models x resolutions x durations (paper Fig. 1b,
Fig. 6, Fig. 20, Table 1 max frames, Table 2 costs). See :mod:`evalkit.sweep.cli`."""
