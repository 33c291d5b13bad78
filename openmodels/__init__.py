"""The field's released text-to-video models, built from diffusers' own transformer classes, on the harness's cost
sweep next to LinGen-4B and DiT-4B (LinGen, arXiv 2412.09856, Fig. 1b / Fig. 6: cost vs video length).

One folder per family: ``wan`` (Wan2.1 / Wan2.2), ``cogvideox``, ``hunyuan`` (HunyuanVideo), ``ltx`` (LTX-Video),
``sana_video`` (SANA-Video), ``mochi`` (Mochi-1). Each has ``spec.py`` (pure python: the config class = the
diffusers constructor's keyword arguments plus the harness's members, the closed-form parameter and FLOP terms,
the checks and ``ENTRY``), ``model.py`` (torch + diffusers: builds diffusers' class from the config on the requested
device and makes the forward's inputs) and ``preset.yaml`` (the registry names; each one's flavor ``t2v`` is the
published checkpoint's transformer config, every value with its source). ``openmodels.base`` holds what the six
share; ``openmodels.building`` the torch side of it. diffusers is the optional extra ``open``
(``pip install -e ".[open]"``); listing and the analytic cost (``python -m evalkit ls``) need neither it nor torch.
"""
