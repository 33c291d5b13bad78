"""The short table a GPU run ends with (benchmarks/gpu/run.sh): every latency record of a paper_latency run
folder (forward p50, per video, iterations, peak memory, achieved TFLOP/s, the backends that ran, or why it was
skipped), the DiT/LinGen latency ratios, max frames and the statuses.

    python benchmarks/gpu/table.py runs/paper_latency/<run_id>
"""
from __future__ import annotations

import sys
from collections import Counter

from evalkit.core.records import read_records
from evalkit.sweep.summary import latency_table


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    records = [r for r in read_records([argv[0]]) if r.get("kind") == "cost"]
    print(latency_table(records))
    for r in records:
        if r.get("measurement") == "max_frames":
            found = f"{r['max_frames']} frames ({r['max_duration_s']:g} s)" if r["status"] == "ok" else "-"
            print(f"max frames, {r['model']}/{r['flavor']} {r['height']}x{r['width']}: {found} {r['status']} "
                  f"{r.get('message', '')}".rstrip())
    counts = Counter((r["status"], r.get("skip_reason") or "") for r in records)
    print("records: " + ", ".join(f"{n} {s}{' (' + why + ')' if why else ''}"
                                  for (s, why), n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
