"""The blind pairwise rating page of a study (Starlette, served by uvicorn): ``make_app(inputs, db_path, hosts=...)``.

What a rater gets: the page, the prompt, two videos by opaque id (``/video/<id>``, mapped to files once at startup:
nothing a request carries reaches the file system), the questions, and per question one vote A (left) / B (right)
/ tie. Model names, folders and file names never leave the server; left/right comes from the rater's stored
assignment, and the vote is stored with it.

Raters. Locally (``public=False``, 127.0.0.1) a rater types a name; the server makes the rater (or resumes one
with that name) and sets a cookie with the rater's token. Opened to others (``public=True``) the name form is
off: each rater opens a personal link ``/?t=<token>`` (tokens from ``humaneval token``); an unknown token is 401.
Every API call and every video needs a valid token (cookie, or ``Authorization: Bearer``); signing out revokes
the token in the database.

Every request first passes ``guard.Guard`` (Host, Origin / Referer / Sec-Fetch-Site, ``application/json``, a 4 KiB
body limit, security headers: see ``evalkit/humaneval/guard.py``). A vote is checked field by field (``item``,
``question``, ``answer``, ``client_ms``: each refusal names the field), then by ``db.cast`` (only the rater's
current item, one that was shown to them). Static files and videos carry a strong ``ETag`` and answer
``If-None-Match`` with 304; a video whose file changed on disk since startup is refused (409), never served.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from evalkit.core.errors import ChoiceError, EvalkitError, FieldError
from evalkit.humaneval import db
from evalkit.humaneval.guard import BadRequest, Guard, read_json
from evalkit.humaneval.study import Inputs

COOKIE = "humaneval_token"
STATIC = {"/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/": ("index.html", "text/html; charset=utf-8")}
NO_STORE = {"Cache-Control": "no-store"}
ITEM_ID_MAX = 64


def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """The page's three files, read once from the package (never from a request path), with their ETags."""
    base = resources.files("evalkit.humaneval") / "static"
    out = {}
    for route, (name, mime) in STATIC.items():
        body = (base / name).read_bytes()
        out[route] = (body, mime, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def vote_fields(data: dict[str, Any], questions: list[str]) -> tuple[str, str, str, int | None]:
    """(item, question, answer, client_ms) of a vote body; BadRequest (422) naming the first bad field."""
    item, question, answer = data.get("item"), data.get("question"), data.get("answer")
    if not isinstance(item, str) or not 0 < len(item) <= ITEM_ID_MAX:
        raise BadRequest(422, f"item: the id of the item on screen (a string from /api/next), got {_short(item)}")
    if not isinstance(question, str) or question not in questions:
        raise BadRequest(422, str(ChoiceError("question", _short(question) if not isinstance(question, str)
                                              else question[:64], questions)))
    if not isinstance(answer, str) or answer not in db.ANSWERS:
        raise BadRequest(422, str(ChoiceError("answer", answer if isinstance(answer, str) else _short(answer),
                                              db.ANSWERS)))
    ms = data.get("client_ms")
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= db.CLIENT_MS_MAX):
        raise BadRequest(422, f"client_ms: the time on the item in whole milliseconds, 0..{db.CLIENT_MS_MAX} (or "
                              f"null), got {_short(ms)}")
    return item, question, answer, ms


def make_app(inputs: Inputs, db_path: Path, *, hosts: Iterable[str], public: bool = False):
    """The ASGI app of one study, answering only the ``Host`` names in ``hosts`` (``guard.host_names``).
    ``db_path`` must exist and match ``inputs`` (``db.check_inputs``)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    db_path = Path(db_path)
    conn0 = db.connect(db_path)
    try:
        db.check_inputs(conn0, inputs, db_path)
        paths = db.video_paths(conn0, inputs)          # opaque id -> Path, fixed for the server's lifetime
    finally:
        conn0.close()
    sha = {v.path: v.sha256 for v in inputs.videos}
    videos: dict[str, tuple[Path, tuple[int, int], str]] = {}
    for vid, path in paths.items():                  # the real file, its (size, mtime) and a strong ETag
        real = path.resolve(strict=True)
        st = os.stat(real)
        videos[vid] = (real, (st.st_size, st.st_mtime_ns), f'"{sha[path][:32]}"')
    study = inputs.study
    questions = study.question_ids()
    static = _static_files()

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers={**NO_STORE, **(headers or {})})

    async def with_db(fn: Callable[..., Any], *args: Any) -> Any:
        def run() -> Any:
            conn = db.connect(db_path)
            try:
                return fn(conn, *args)
            finally:
                conn.close()
        try:
            return await run_in_threadpool(run)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise BadRequest(503, "the study database is busy (another writer held it for 30 s); nothing was "
                                      "saved, try again") from exc
            raise

    def token_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(COOKIE)

    async def signed_in(request: Request) -> db.Rater:
        rater = await with_db(db.rater_by_token, token_of(request))
        if rater is None:
            raise BadRequest(401, "not signed in (unknown, revoked or missing token)")
        return rater

    def set_cookie(resp: Response, token: str) -> Response:
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", max_age=60 * 60 * 24 * 90)
        return resp

    def not_modified(request: Request, etag: str, headers: dict[str, str]) -> Response | None:
        tags = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers={"ETag": etag, **headers})
        return None

    async def page(request: Request) -> Response:
        token = request.query_params.get("t")
        if token is not None:                            # a personal link: check, keep as cookie, drop from URL
            if await with_db(db.rater_by_token, token) is None:
                return error(401, "this link's token is not valid for this study (ask for a new link)")
            return set_cookie(RedirectResponse("/", status_code=303, headers=NO_STORE), token)
        body, mime, _ = static["/"]
        return Response(body, media_type=mime, headers=NO_STORE)

    async def asset(request: Request) -> Response:
        body, mime, etag = static[request.url.path]
        headers = {"Cache-Control": "no-cache"}
        return not_modified(request, etag, headers) or Response(body, media_type=mime,
                                                                headers={"ETag": etag, **headers})

    async def state(request: Request) -> Response:
        rater = await with_db(db.rater_by_token, token_of(request))
        out: dict[str, Any] = {"mode": "token" if public else "local", "rater": None,
                               "questions": [{"id": q.id, "label": q.label, "text": q.text} for q in study.questions],
                               "client_ms_max": db.CLIENT_MS_MAX}
        if rater is not None:
            out["rater"] = rater.name
            out["progress"] = await with_db(db.progress, rater.rater_id, questions)
        return JSONResponse(out, headers=NO_STORE)

    async def login(request: Request) -> Response:
        if public:
            return error(403, "this study is open to other machines: each rater needs a personal link "
                              "(python -m evalkit humaneval token STUDY NAME)")
        data = read_json(await request.body())
        try:
            rater, token = await with_db(db.sign_in, data.get("name"))
        except FieldError as exc:
            return error(422, str(exc))
        return set_cookie(JSONResponse({"rater": rater.name}, headers=NO_STORE), token)

    async def logout(request: Request) -> Response:
        await with_db(db.revoke_token, token_of(request))
        resp = JSONResponse({"ok": True}, headers=NO_STORE)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def next_item(request: Request) -> Response:
        rater = await signed_in(request)
        item = await with_db(db.next_item, rater.rater_id, questions)
        prog = await with_db(db.progress, rater.rater_id, questions)
        if item is None:
            return JSONResponse({"done": True, "progress": prog}, headers=NO_STORE)
        item["videos"] = {side: f"/video/{vid}" for side, vid in item["videos"].items()}
        return JSONResponse({"done": False, "progress": prog, **item}, headers=NO_STORE)

    async def vote(request: Request) -> Response:
        rater = await signed_in(request)
        item, question, answer, client_ms = vote_fields(read_json(await request.body()), questions)
        try:
            res = await with_db(db.cast, rater.rater_id, item, question, answer, client_ms)
        except db.UnknownItem as exc:
            return error(404, str(exc))
        except db.ClosedItem as exc:
            return error(409, str(exc))
        except FieldError as exc:
            return error(422, str(exc))
        res["progress"] = await with_db(db.progress, rater.rater_id, questions)
        return JSONResponse(res, headers=NO_STORE)

    async def video(request: Request) -> Response:
        await signed_in(request)
        entry = videos.get(request.path_params["vid"])   # a dict lookup: the id never touches the file system
        if entry is None:
            return error(404, "no such video")
        path, size_mtime, etag = entry
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != size_mtime:
            return error(409, "this video's file changed on disk since the server started (votes must be on the "
                              "files the study was started with): restore it and restart the server")
        headers = {"Cache-Control": "private, max-age=3600"}
        return not_modified(request, etag, headers) or FileResponse(path, media_type="video/mp4",
                                                                    headers={"ETag": etag, **headers})

    async def refused(request: Request, exc: Exception) -> Response:
        headers = {"Retry-After": "1"} if getattr(exc, "status", 0) == 503 else None
        return error(exc.status, str(exc), headers)

    routes = [Route("/", page), Route("/app.js", asset), Route("/style.css", asset),
              Route("/api/state", state), Route("/api/login", login, methods=["POST"]),
              Route("/api/logout", logout, methods=["POST"]), Route("/api/next", next_item),
              Route("/api/vote", vote, methods=["POST"]), Route("/video/{vid:str}", video)]
    return Guard(Starlette(routes=routes, exception_handlers={BadRequest: refused}), hosts=hosts)


def require_extra() -> None:
    """The web stack is an optional extra; name it when it is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EvalkitError(f"humaneval serve needs the web extra ({exc.name} is missing): "
                           "pip install -e \".[humaneval]\"") from exc
