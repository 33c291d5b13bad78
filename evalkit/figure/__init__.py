"""The LinGen project page's efficiency figure (absolute latency and TFLOP per step, DiT-4B vs LinGen-4B; the
counterpart of the paper's Fig. 6) as data: :mod:`digitize` (PNG -> values with pixel uncertainty, numpy only)
and :mod:`fit` (the geometry search under the project's analytic cost; imports the models). ``report`` reads
their outputs (experiments/paper/efficiency_figure_values.yaml, published fit runs) and imports neither."""
