"""The generation runtime shared by ``generate`` and ``train``: checkpoint folders (``checkpoint``), the
flow-matching sampler (``sampling``), text encoders (``text``), latent-to-pixel decoders (``decoders``) and mp4
files through PyAV (``video_io``)."""
