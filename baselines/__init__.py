"""The matched DiT baseline and LinGen's Table 2 ablation variants (same backbone as ``lingen``)."""
