"""The blind pairwise rating page of a study (Starlette, served by uvicorn): ``make_app(inputs, db_path)``.

What a rater gets: the page, the prompt, two videos by opaque id (``/video/<id>``, mapped to files once at startup:
nothing a request carries reaches the file system), the questions, and per question one vote A (left) / B (right)
/ tie. Model names, folders and file names never leave the server; left/right comes from the rater's stored
assignment, and the vote is stored with it.

Raters. Locally (``public=False``, 127.0.0.1) a rater types a name; the server makes the rater (or resumes one
with that name) and sets a cookie with the rater's token. Opened to others (``public=True``) the name form is
off: each rater opens a personal link ``/?t=<token>`` (tokens from ``humaneval token``); an unknown token is 401.
Every API call and every video needs a valid token (cookie, or ``Authorization: Bearer``).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from evalkit.core.errors import ChoiceError, EvalkitError
from evalkit.humaneval import db
from evalkit.humaneval.study import Inputs

COOKIE = "humaneval_token"
STATIC = {"/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/": ("index.html", "text/html; charset=utf-8")}
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's three files, read once from the package (never from a request path)."""
    base = resources.files("evalkit.humaneval") / "static"
    return {route: ((base / name).read_bytes(), mime) for route, (name, mime) in STATIC.items()}


def make_app(inputs: Inputs, db_path: Path, *, public: bool = False):
    """The ASGI app of one study. ``db_path`` must exist and match ``inputs`` (``db.check_inputs``)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    db_path = Path(db_path)
    conn0 = db.connect(db_path)
    try:
        db.check_inputs(conn0, inputs, db_path)
        videos = db.video_paths(conn0, inputs)          # opaque id -> Path, fixed for the server's lifetime
    finally:
        conn0.close()
    study = inputs.study
    questions = study.question_ids()
    static = _static_files()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)

    async def with_db(fn: Callable[..., Any], *args: Any) -> Any:
        def run() -> Any:
            conn = db.connect(db_path)
            try:
                return fn(conn, *args)
            finally:
                conn.close()
        return await run_in_threadpool(run)

    def token_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(COOKIE)

    async def current_rater(request: Request) -> db.Rater | None:
        return await with_db(db.rater_by_token, token_of(request))

    def set_cookie(resp: Response, token: str) -> Response:
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", max_age=60 * 60 * 24 * 90)
        return resp

    async def page(request: Request) -> Response:
        token = request.query_params.get("t")
        if token is not None:                            # a personal link: check, keep as cookie, drop from URL
            if await with_db(db.rater_by_token, token) is None:
                return error(401, "this link's token is not valid for this study (ask for a new link)")
            return set_cookie(RedirectResponse("/", status_code=303, headers=NO_STORE), token)
        body, mime = static["/"]
        return Response(body, media_type=mime, headers=NO_STORE)

    async def asset(request: Request) -> Response:
        body, mime = static[request.url.path]
        return Response(body, media_type=mime, headers={"Cache-Control": "no-cache"})

    def public_questions() -> list[dict[str, str]]:
        return [{"id": q.id, "label": q.label, "text": q.text} for q in study.questions]

    async def state(request: Request) -> Response:
        rater = await current_rater(request)
        out: dict[str, Any] = {"mode": "token" if public else "local", "rater": None,
                               "questions": public_questions()}
        if rater is not None:
            out["rater"] = rater.name
            out["progress"] = await with_db(db.progress, rater.rater_id, questions)
        return JSONResponse(out, headers=NO_STORE)

    async def body_json(request: Request) -> dict[str, Any] | None:
        try:
            data = await request.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def login(request: Request) -> Response:
        if public:
            return error(403, "this study is open to other machines: each rater needs a personal link "
                              "(python -m evalkit humaneval token STUDY NAME)")
        data = await body_json(request)
        name = str((data or {}).get("name", "")).strip()
        if not name:
            return error(422, "name: enter a rater name")

        def find_or_add(conn: sqlite3.Connection) -> str:
            if db.rater_by_name(conn, name) is not None:
                return db.new_token(conn, name, revoke_others=False)   # local: the name is the login
            return db.add_rater(conn, name)[1]
        try:
            token = await with_db(find_or_add)
        except EvalkitError as exc:
            return error(422, str(exc))
        return set_cookie(JSONResponse({"rater": name}, headers=NO_STORE), token)

    async def logout(request: Request) -> Response:
        resp = JSONResponse({"ok": True}, headers=NO_STORE)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def next_item(request: Request) -> Response:
        rater = await current_rater(request)
        if rater is None:
            return error(401, "not signed in (unknown or missing token)")
        item = await with_db(db.next_item, rater.rater_id, questions)
        prog = await with_db(db.progress, rater.rater_id, questions)
        if item is None:
            return JSONResponse({"done": True, "progress": prog}, headers=NO_STORE)
        item["videos"] = {side: f"/video/{vid}" for side, vid in item["videos"].items()}
        return JSONResponse({"done": False, "progress": prog, **item}, headers=NO_STORE)

    async def vote(request: Request) -> Response:
        rater = await current_rater(request)
        if rater is None:
            return error(401, "not signed in (unknown or missing token)")
        data = await body_json(request)
        if data is None:
            return error(400, "expected a JSON object {item, question, answer}")
        item, question, answer = data.get("item"), data.get("question"), data.get("answer")
        if question not in questions:
            return error(422, str(ChoiceError("question", question, questions)))
        if answer not in db.ANSWERS:
            return error(422, str(ChoiceError("answer", answer, db.ANSWERS)))
        client_ms = data.get("client_ms")
        client_ms = int(client_ms) if isinstance(client_ms, (int, float)) and client_ms >= 0 else None
        try:
            res = await with_db(db.cast, rater.rater_id, str(item), question, answer, client_ms)
        except db.UnknownItem as exc:
            return error(404, str(exc))
        res["progress"] = await with_db(db.progress, rater.rater_id, questions)
        return JSONResponse(res, headers=NO_STORE)

    async def video(request: Request) -> Response:
        if await current_rater(request) is None:
            return error(401, "not signed in (unknown or missing token)")
        path = videos.get(request.path_params["vid"])    # a dict lookup: the id never touches the file system
        if path is None:
            return error(404, "no such video")
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})

    routes = [Route("/", page), Route("/app.js", asset), Route("/style.css", asset),
              Route("/api/state", state), Route("/api/login", login, methods=["POST"]),
              Route("/api/logout", logout, methods=["POST"]), Route("/api/next", next_item),
              Route("/api/vote", vote, methods=["POST"]), Route("/video/{vid:str}", video)]
    return Starlette(routes=routes)


def require_extra() -> None:
    """The web stack is an optional extra; name it when it is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EvalkitError(f"humaneval serve needs the web extra ({exc.name} is missing): "
                           "pip install -e \".[humaneval]\"") from exc
