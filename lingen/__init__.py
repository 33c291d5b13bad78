"""LinGen (arXiv 2412.09856): a video diffusion transformer whose self-attention is replaced by MATE.

Importing this package does not import torch; the modules ``lingen.model``, ``lingen.mate``, ... do.
``lingen.config`` and ``lingen.analytic`` are pure python.
"""
