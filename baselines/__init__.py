"""The matched DiT baseline, LinGen's Table 2 ablation variants, and the field's efficient mixers on the same
backbone (linear attention as in SANA-Video, STA sliding tile attention, Radial attention), each mixer with a
torch-free ``*_terms.py`` holding its parameter / FLOP terms."""
