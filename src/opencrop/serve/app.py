"""The HTTP service (Starlette ASGI app; ``opencrop serve`` runs it on uvicorn).

Endpoints (``/openapi.json`` describes them in full; ``/docs`` renders that offline):

* ``POST /crop?ratio=16:9&ratio=1:1[&size=WxH][&model=M][&subject=x1,y1,x2,y2][&focus=x,y][&format=jpeg]`` with
  the image as the raw body or as the file of a multipart upload → JSON
  ``{"width", "height", "model", "crops": [{"ratio", "box": [x1, y1, x2, y2], "score"}], "notes"}`` (boxes in
  xyxy pixels of the upright original), or with ``format=jpeg|png|webp`` the cropped image itself
  (``/crop.jpg``, ``/crop.png``, ``/crop.webp`` are the same with the format in the path).
* ``GET /`` the web page; ``GET /healthz`` liveness and pool counts; ``GET /readyz`` 200 once a worker is ready.

Errors are JSON ``{"error": "..."}``: 400 bad parameter, 404/405 no such endpoint or method, 408 body too slow,
413 body or image too large, 422 unreadable image, 500 internal, 503 saturated (``Retry-After``), 504 the
crop timed out. The cropping runs in a :class:`~opencrop.serve.pool.WorkerPool` of processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from importlib import resources

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from opencrop.serve.middleware import AccessLog, BodyLimit, BodyTimeout, BodyTooLarge
from opencrop.serve.openapi import docs_html, openapi
from opencrop.serve.params import FORMATS, RequestError, parse_params
from opencrop.serve.pool import JobTimeout, PoolClosed, Saturated, WorkerCrashed, WorkerPool
from opencrop.serve.settings import ServeSettings

__all__ = ["create_app"]

log = logging.getLogger("opencrop.serve")

_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self' blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _static(name: str) -> str:
    return resources.files("opencrop.serve").joinpath("static", name).read_text("utf-8")


def create_app(settings: ServeSettings, pool: WorkerPool | None = None) -> Starlette:
    """The ASGI app. Its lifespan starts ``pool`` unless it has been started already (a new pool when none is
    given), serves it from the app's event loop and closes it at shutdown."""
    from opencrop import __version__

    pool = pool if pool is not None else WorkerPool(settings)
    spec = openapi(settings, __version__)
    page = _static("index.html")
    assets = {name: _static(name) for name in _STATIC}
    docs = docs_html(spec)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not pool.started:
            await asyncio.to_thread(pool.start)
        pool.bind(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(pool.close)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return _error(404, f"no such file /static/{name}")
        return Response(assets[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__, "models": list(settings.models),
                             "degraded": pool.degraded, "max_body": settings.max_body, "pool": pool.stats()})

    async def readyz(request: Request) -> Response:
        ready = pool.ready
        return JSONResponse({"ready": ready, "pool": pool.stats()}, status_code=200 if ready else 503)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(docs, headers=_PAGE_HEADERS)

    async def crop(request: Request) -> Response:
        ext = request.path_params.get("ext")
        fmt = None
        if ext is not None:
            fmt = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}.get(ext)
            if fmt is None:
                return _error(404, f"no such endpoint /crop.{ext}; use /crop.jpg, /crop.png or /crop.webp")
        items = list(request.query_params.multi_items())
        try:
            data = await _read_image(request, items)
        except BodyTooLarge as e:
            return _error(413, str(e), {"Connection": "close"})
        except BodyTimeout as e:
            return _error(408, str(e), {"Connection": "close"})
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        except RequestError as e:
            return _error(e.status, e.message)
        try:
            job = parse_params(items, settings.models, settings.max_output_pixels, settings.max_ratios, fmt)
        except RequestError as e:
            return _error(e.status, e.message)
        try:
            result = await pool.run(replace(job, data=data))
        except Saturated as e:
            return _error(503, f"server busy: {e}; retry in {e.retry_after} s", {"Retry-After": str(e.retry_after)})
        except PoolClosed as e:
            return _error(503, str(e), {"Retry-After": "5"})
        except JobTimeout as e:
            return _error(504, str(e))
        except WorkerCrashed as e:
            return _error(500, str(e))
        if result.image is None:
            return JSONResponse(result.body, status_code=result.status)
        tag = job.ratios[0].replace(":", "x").replace("/", "x")
        headers = {**result.headers,
                   "Content-Disposition": f'inline; filename="crop_{tag}{FORMATS[job.format]}"'}
        return Response(result.image, status_code=result.status, media_type=result.media_type, headers=headers)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if exc.status_code == 404:
            detail = f"no such endpoint {request.url.path}; see /docs"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _error(exc.status_code, str(detail), dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; see the server log")

    middleware = [Middleware(AccessLog)] if settings.access_log else []
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["*"], expose_headers=["X-Crop-Box", "X-Crop-Score", "X-Image-Size", "X-Crop-Notes",
                                                 "Retry-After", "Content-Disposition"], max_age=600))
    middleware.append(Middleware(BodyLimit, max_body=settings.max_body, body_timeout=settings.body_timeout))
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/crop", crop, methods=["POST"]),
        Route("/crop.{ext}", crop, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: internal_error})
    app.state.pool = pool
    app.state.settings = settings
    return app


async def _read_image(request: Request, items: list[tuple[str, str]]) -> bytes:
    """The image bytes of a raw body or of the file part of a multipart upload (whose other fields are added to
    ``items``). Raises :class:`RequestError` (400) for a missing or empty image."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        data = None
        async with request.form(max_files=1, max_fields=64) as form:
            for k, v in form.multi_items():
                if isinstance(v, UploadFile):
                    data = await v.read()
                else:
                    items.append((k, v))
        if data is None:
            raise RequestError(400, "the multipart upload has no file part: send the image as a file field "
                                    "(e.g. curl -F image=@photo.jpg)")
    else:
        data = await request.body()
    if not data:
        raise RequestError(400, "empty image: send the image as the request body or as a multipart file field")
    return data
