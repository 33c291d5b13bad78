"""Human preference studies (``python -m evalkit humaneval``): the paper's pairwise human evaluations (Figs. 8, 9,
10b, 12, 19) for any two or more folders of ``{prompt}-{index}.mp4`` videos.

study.py (study files, folder checks), db.py (SQLite, WAL), server.py + static/ (the rating page), stats.py and
summary.py (win rates, bootstrap intervals, agreement), export.py (votes -> a run folder for ``evalkit report``),
cli.py (the verbs). The web stack is the optional extra ``pip install -e ".[humaneval]"``.
"""
from __future__ import annotations
