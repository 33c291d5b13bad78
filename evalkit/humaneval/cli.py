"""``python -m evalkit humaneval``: blind pairwise human preference studies of two or more video folders (the
paper's Figs. 8, 9, 10b, 12 and 19 are such studies).

  validate  check the study file and that every arm folder holds exactly the prompt list's videos
  init      create the study database (serve does it too when there is none)
  serve     the rating page, on 127.0.0.1 unless --public (it answers only the names it was started for)
  token     add a rater (or --reissue a token) and print the rater's personal link (the address serve used)
  status    progress of every rater
  report    export the votes to a run folder and print win rates, intervals and agreement
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.core.runs import REPO_ROOT

EPILOG = """examples:
  python -m evalkit humaneval validate experiments/humaneval/example.yaml
  python -m evalkit humaneval serve experiments/humaneval/example.yaml            # http://127.0.0.1:8765/
  python -m evalkit humaneval serve STUDY.yaml --public --host 0.0.0.0 --url http://10.0.0.5:8765 --rater alice
  python -m evalkit humaneval serve STUDY.yaml --public --host 10.0.0.5 --allowed-host study.lab.example
  python -m evalkit humaneval token STUDY.yaml carol          # the address the last serve printed
  python -m evalkit humaneval token STUDY.yaml dave --url http://10.0.0.5:8765
  python -m evalkit humaneval status STUDY.yaml
  python -m evalkit humaneval report STUDY.yaml       # then: python -m evalkit report --publish RUN_DIR
"""
VERBS = ("validate", "init", "serve", "token", "status", "report")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit humaneval", description=__doc__,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", help=", ".join(VERBS))
    p.add_argument("study", type=Path, help="study YAML (see experiments/humaneval/example.yaml)")
    p.add_argument("name", nargs="?", help="token: the rater's name")
    p.add_argument("--db", type=Path, default=None,
                   help="study database (default: runs/humaneval/<study name>/study.sqlite)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study key, e.g. --set report.ties=exclude (repeatable)")
    p.add_argument("--host", default=None, help=f"serve: address to bind (default {DEFAULT_HOST}); token: the "
                   "host of the printed link")
    p.add_argument("--port", type=int, default=None, help=f"serve: port (default {DEFAULT_PORT}); token: the port "
                   "of the printed link (default: the one the study was last served on)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="serve: another Host name raters may open the page by (repeatable); every other name is "
                        "refused (DNS rebinding)")
    p.add_argument("--public", action=argparse.BooleanOptionalAction, default=False,
                   help="serve: allow a non-loopback --host; raters then need personal token links")
    p.add_argument("--rater", action="append", default=[], metavar="NAME",
                   help="serve --public: issue a link for this new rater at startup (repeatable)")
    p.add_argument("--reissue", action=argparse.BooleanOptionalAction, default=False,
                   help="token: replace an existing rater's token (the old link stops working)")
    p.add_argument("--url", default=None, help="serve, token: the base URL raters open (printed in links; serve "
                   "also answers its host name); default http://HOST:PORT")
    p.add_argument("--out", type=Path, default=None,
                   help="report: folder for the run folder (default: runs/humaneval/<study name>/exports)")
    p.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True,
                   help="open every video with PyAV before starting (unreadable files are errors)")
    return p


@contextmanager
def sqlite_conn(db_path: Path):
    from evalkit.humaneval import db

    conn = db.connect(db_path)
    try:
        yield conn
    finally:
        conn.close()


def _default_db(name: str) -> Path:
    return REPO_ROOT / "runs" / "humaneval" / name / "study.sqlite"


def _inputs(args: argparse.Namespace):
    from evalkit.humaneval.study import load_study, scan_videos

    study, path = load_study(args.study, args.sets)
    inputs = scan_videos(study, path, probe=args.probe)
    for w in inputs.warnings:
        print(f"warning: {w}")
    return inputs, (args.db or _default_db(study.name)).resolve()


def _ensure_db(inputs, db_path: Path) -> bool:
    """Create the database if missing (True), else check it matches the inputs (False)."""
    from evalkit.humaneval import db

    if not db_path.exists():
        db.create(db_path, inputs)
        return True
    conn = db.connect(db_path)
    try:
        db.check_inputs(conn, inputs, db_path)
    finally:
        conn.close()
    return False


def _describe(inputs) -> str:
    s = inputs.study
    n_items = len(s.pairs_list()) * len(inputs.prompts) * s.samples
    return (f"study {s.name!r}: arms {', '.join(s.arms)} (reference {s.reference_arm}); {len(inputs.prompts)} "
            f"prompts x {s.samples} samples; comparisons {', '.join(f'{x} vs {y}' for x, y in s.pairs_list())}; "
            f"{n_items} items x {len(s.questions)} questions per rater")


def _link(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/?t={token}"


def _printable(text: str) -> str:
    """``text`` with every non-printable character escaped (names reach a terminal)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def serve(args: argparse.Namespace) -> int:
    from evalkit.humaneval import db
    from evalkit.humaneval.server import make_app, require_extra

    from evalkit.humaneval.guard import WILDCARDS, host_names, is_loopback

    require_extra()
    host, port = args.host or DEFAULT_HOST, args.port or DEFAULT_PORT
    if not is_loopback(host) and not args.public:
        raise FieldError("--host", f"{host} opens the study to other machines; pass --public as well (each "
                                   "rater then needs a personal link: --rater NAME, or `humaneval token`)")
    if args.rater and not args.public:
        raise FieldError("--rater", "personal links are for --public studies; locally a rater just types a name")
    if host in WILDCARDS and not (args.url or args.allowed_host):
        raise FieldError("--url", f"--host {host} listens on every address, but the server answers only the names "
                                  "it was started for (a DNS-rebinding guard): give the address raters open, e.g. "
                                  f"--url http://10.0.0.5:{port}, or --allowed-host NAME")
    inputs, db_path = _inputs(args)
    created = _ensure_db(inputs, db_path)
    print(_describe(inputs))
    print(f"database: {db_path} ({'created' if created else 'resumed'})")
    base = args.url or f"http://{host}:{port}"
    hosts = host_names(host, port, url=args.url, extra=args.allowed_host)
    conn = db.connect(db_path)
    try:
        db.set_meta(conn, "served_url", base)          # `token` prints links to this address
        for name in args.rater:
            print(f"link for {name}: {_link(base, db.add_rater(conn, name)[1])}")
    finally:
        conn.close()
    import uvicorn

    print(f"serving on {base}/ ({'raters need their personal links' if args.public else 'local only'}); "
          f"answers Host {', '.join(sorted(hosts))}; every vote is saved as it is cast; Ctrl-C stops", flush=True)
    uvicorn.run(make_app(inputs, db_path, hosts=hosts, public=args.public), host=host, port=port,
                log_level="warning", access_log=False)
    return 0


def report(args: argparse.Namespace) -> int:
    from evalkit.humaneval import db, stats
    from evalkit.humaneval.db import export
    from evalkit.core.typed import to_dict

    inputs, db_path = _inputs(args)
    if not db_path.exists():
        raise FieldError("--db", f"{db_path} does not exist (serve the study first)")
    out = args.out or db_path.parent / "exports"
    run_dir = export(inputs, db_path, out)
    recs = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    study = to_dict(inputs.study)
    rule, unit = study["report"]["ties"], study["report"]["bootstrap"]["unit"]
    pct = lambda v: "  -  " if v != v else f"{100 * v:5.1f}"   # noqa: E731  (NaN -> dash)
    with sqlite_conn(db_path) as conn:
        n_invalid = db.invalid_votes(conn)
    if n_invalid:
        print(f"warning: {n_invalid} stored vote(s) are not counted: cast for items never shown to the rater")
    print(f"win rate of the first arm, ties: {rule}; {100 * study['report']['bootstrap']['confidence']:.0f}% "
          f"bootstrap interval over {unit}s")
    print(f"{'comparison':<24} {'question':<20} {'votes':>5} {'win':>5} {'tie':>5} {'loss':>5} {'rate':>5}  "
          f"{'interval':<13} {'net':>6}")
    rows = stats.winrates(recs, study)
    for r in rows:
        print(f"{r['comparison']:<24} {r['label']:<20} {r['n_votes']:>5} {pct(r['win_share'])} "
              f"{pct(r['tie_share'])} {pct(r['loss_share'])} {pct(r['win_rate'])}  "
              f"[{pct(r['ci_low'])},{pct(r['ci_high'])}] {pct(r['net_win'])}")
    for w in stats.few_clusters(rows):
        print(f"warning: {w}")
    for r in stats.agreement_rows(recs, study):
        kappa = f"{r['fleiss_kappa']:.3f}" if r["fleiss_kappa"] == r["fleiss_kappa"] else \
            f"n/a ({r['kappa_undefined']})"
        agree = f"{pct(r['pairwise_agreement'])}%" if r["units_multi"] else "  n/a "
        print(f"agreement {r['label']:<20} items rated by >=2: {r['units_multi']:>4}  pairwise {agree}  "
              f"Fleiss kappa {kappa}")
    print(f"run folder: {run_dir}\npublish it: python -m evalkit report --publish {run_dir}")
    print(json.dumps({"run_dir": str(run_dir), "n_votes": len(recs), "study": inputs.study.name}))
    return 0


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    if args.verb not in VERBS:
        raise ChoiceError("humaneval verb", args.verb, VERBS, what="verb")
    if args.verb == "token" and not args.name:
        raise FieldError("name", "token needs the rater's name: humaneval token STUDY NAME")
    from evalkit.humaneval.db import check_name

    for name in ([args.name] if args.verb == "token" else []) + list(args.rater or []):
        check_name(name)        # a hostile name is refused before any database is made or opened
    if args.verb == "serve":
        return serve(args)
    if args.verb == "report":
        return report(args)
    inputs, db_path = _inputs(args)
    print(_describe(inputs))
    if args.verb == "validate":
        print("ok: every arm folder matches the prompt list")
        return 0
    if args.verb == "init":
        created = _ensure_db(inputs, db_path)
        print(f"database: {db_path} ({'created' if created else 'exists and matches the study'})")
        return 0
    from evalkit.humaneval import db

    if not db_path.exists():
        if args.verb == "status":
            raise FieldError("--db", f"{db_path} does not exist (serve or init the study first)")
        _ensure_db(inputs, db_path)
    conn = db.connect(db_path)
    try:
        db.check_inputs(conn, inputs, db_path)
        if args.verb == "token":
            served = db.meta(conn).get("served_url")
            base = args.url or (f"http://{args.host or DEFAULT_HOST}:{args.port or DEFAULT_PORT}"
                                if args.host or args.port or not served else served)
            token = (db.new_token(conn, args.name, revoke_others=True) if args.reissue
                     else db.add_rater(conn, args.name)[1])
            print(f"link for {args.name}: {_link(base, token)}")
            return 0
        rows = db.rater_status(conn, inputs.study.question_ids())
    finally:
        conn.close()
    if not rows:
        print("no raters yet")
    for r in rows:
        print(f"{r['rater']:<5} {_printable(r['name']):<24} items {r['items_done']:>4}/{r['items_total']:<4} "
              f"answers {r['answers']:>5}/{r['answers_total']:<5} last vote {r['last_vote'] or '-'}")
    return 0
