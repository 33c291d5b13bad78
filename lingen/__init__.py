"""LinGen (arXiv 2412.09856): MATE, the linear-cost token mixer that replaces self-attention in the shared video
diffusion-transformer backbone (``backbone/``).

``lingen.spec`` (MATE's options, cost terms and entry) is pure python; ``lingen.mate``, ``lingen.scan``,
``lingen.tesa`` and ``lingen.kernels`` import torch. The flavors and the Table 2 variants are ``lingen/preset.yaml``.
"""
