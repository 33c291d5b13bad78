"""The shared video diffusion-transformer backbone (Movie Gen lineage) that LinGen, the matched DiT and every mixer
of ``baselines/`` plug their token mixer into, and the contract a mixer fulfils (``backbone.config``).

Importing this package does not import torch; ``backbone.model`` does. ``backbone.config`` (the
contract, the geometry and the closed-form cost) is pure python.
"""
