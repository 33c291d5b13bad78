"""Human preference studies (``python -m evalkit humaneval``): the paper's pairwise human evaluations (Figs. 8, 9,
10b, 12, 19) for any two or more folders of ``{prompt}-{index}.mp4`` videos.

study.py (study files, folder checks), db.py (SQLite in WAL mode, and the export of votes to a run folder for
``evalkit report``), server.py + static/ (the rating page), guard.py (what every request passes first: Host,
origin, content type, body size, security headers), stats.py (win rates, bootstrap intervals, agreement), cli.py
(the verbs). The web stack is the optional extra ``pip install -e ".[humaneval]"``.
"""
from __future__ import annotations
