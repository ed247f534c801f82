"""The small web server behind `vrecv --web` and `vsend --web`: one page, its script, and a WebRTC offer endpoint.

Both ends serve a page from the package (no CDN) and exchange one offer and
one answer with the browser over HTTP POST, as aiortc's own examples do.
aiohttp is the server for the same reason: it is what aiortc's examples use,
it runs on the asyncio loop the peer connections already use, and it bounds
request bodies for us (``client_max_size``).

The token rule is signaling's: beyond loopback a token is required. The page
reads it from the URL's fragment (``#token=...``), which browsers never send
to a server or put in a Referer, and presents it in a header on every call.
Failed attempts are counted per address, as signaling counts them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from importlib import resources
from typing import Awaitable, Callable

from vsa.common import webrtc

log = logging.getLogger("vsa.web")

TOKEN_HEADER = "X-Vsa-Token"
MAX_REQUEST_BYTES = 64 * 1024
"""An offer's SDP is a few KiB; nothing a page sends needs more."""
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class WebError(Exception):
    """The page cannot be served (missing aiohttp, a taken port, no token beyond loopback)."""


def _aiohttp():
    try:
        from aiohttp import web
    except ImportError:
        raise WebError("--web needs aiohttp: pip install 'vsa[web]'") from None
    return web


def page_assets(package: str) -> dict[str, bytes]:
    """The files of a page: every file in ``package``'s ``page`` folder, plus the shared style sheet."""
    files = {}
    for pkg in ("vsa.common", package):
        folder = resources.files(pkg) / "page"
        for entry in folder.iterdir():
            if entry.is_file() and "." + entry.name.rpartition(".")[2] in CONTENT_TYPES:
                files[entry.name] = entry.read_bytes()
    return files


class WebServer:
    """Serves a page's files and routes JSON calls; refuses callers without the token where one is needed.

    ``handlers`` maps a path (``/offer``) to an async function of the parsed
    JSON body (POST) or None (GET) and the caller's address; it returns the
    JSON reply. A handler raising ``ValueError`` answers 400 with its message.
    """

    def __init__(self, host: str, port: int, token: str | None, package: str,
                 handlers: dict[str, Callable[[dict | None, str], Awaitable[dict]]]) -> None:
        if not webrtc.is_loopback(host) and not token:
            raise WebError(f"--web on {host} needs a shared token: pass --token or set {webrtc.TOKEN_ENV}")
        self.host, self.port, self.token = host, port, token
        self.refused = 0
        self._files = page_assets(package)
        self._handlers = handlers
        self._failures: dict[str, list[float]] = {}
        self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"#token={self.token}" if self.token else "")

    async def start(self) -> None:
        web = _aiohttp()
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/", self._static)
        app.router.add_get("/{name}", self._static)
        for path in self._handlers:
            app.router.add_route("*", path, self._call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise WebError(f"cannot serve the page on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = site._server.sockets[0].getsockname()[1]  # the port asked for may be 0

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _static(self, request):
        web = _aiohttp()
        name = request.match_info.get("name", "index.html")
        body = self._files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        content_type = CONTENT_TYPES["." + name.rpartition(".")[2]]
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-store"})

    def _allowed(self, request) -> bool:
        """The token check (only when there is a token), with a cap on failures per address."""
        if not self.token:
            return True
        peer = request.remote or "?"
        now = time.monotonic()
        recent = [t for t in self._failures.get(peer, []) if now - t < FAILURE_WINDOW_S]
        self._failures[peer] = recent
        if len(recent) >= MAX_FAILURES:
            return False
        given = request.headers.get(TOKEN_HEADER, "")
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return True
        recent.append(now)
        if len(self._failures) > 4096:  # a flood of addresses cannot grow this without bound
            self._failures.clear()
        return False

    async def _call(self, request):
        web = _aiohttp()
        if not self._allowed(request):
            self.refused += 1
            log.warning("refused a web request from %s: no valid token", request.remote)
            return web.json_response({"error": "a valid token is needed (open the URL vrecv/vsend printed)"},
                                     status=403)
        body = None
        if request.method == "POST":
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
                return web.json_response({"error": f"bad JSON: {exc}"[:200]}, status=400)
            if not isinstance(body, dict):
                return web.json_response({"error": "expected a JSON object"}, status=400)
        try:
            reply = await self._handlers[request.path](body, request.remote or "?")
        except ValueError as exc:
            return web.json_response({"error": str(exc)[:200]}, status=400)
        return web.json_response(reply)


def parse_offer(body: dict | None) -> tuple[str, str]:
    """(sdp, type) of a page's offer, checked for shape; ValueError otherwise."""
    if body is None or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        raise ValueError("expected {sdp, type: 'offer'}")
    return body["sdp"], "offer"


async def answer_page(pc, sdp: str, prepare: Callable[[], None] | None = None,
                      timeout: float = 10.0) -> dict:
    """Apply a page's offer to ``pc``, call ``prepare`` (add tracks, bind candidates), and return the answer.

    aiortc gathers every candidate before `setLocalDescription` returns, so
    the answer is complete: the page needs no trickle ICE.
    """
    from aiortc import RTCSessionDescription

    await asyncio.wait_for(pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer")), timeout)
    if prepare is not None:
        prepare()
    await asyncio.wait_for(pc.setLocalDescription(await pc.createAnswer()), timeout)
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
