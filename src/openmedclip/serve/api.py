"""The REST service: :func:`create_app` builds the FastAPI application that ``openmedclip serve`` runs.

Endpoints: ``GET /health``, ``GET /models``, ``GET /presets``, ``POST /zeroshot``, ``POST /embed/image``,
``POST /embed/text``, ``POST /heatmap`` and ``POST /search`` (see ``docs/serving.md``). Models are loaded once each
and shared by every request (:class:`~openmedclip.serve.session.ModelPool`); model work runs on a bounded pool of
worker threads, never on the event loop (:class:`~openmedclip.serve.limits.WorkLimiter`). Client mistakes (bad
uploads, unknown labels, paths outside the root, ...) answer 4xx with a one-line ``detail``; anything unexpected
answers 500 with a generic message and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.util import find_spec
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints

from openmedclip.errors import InvalidInputError, ModelLoadError, OpenMedClipError
from openmedclip.serve import responses
from openmedclip.serve.access import token_check
from openmedclip.serve.limits import RequestLimits, ServiceBusy, WorkLimiter
from openmedclip.serve.service import NoIndex, SearchIndex, Service, ZeroShotQuestion, split_labels
from openmedclip.serve.session import PRESETS, ModelPool
from openmedclip.serve.settings import ServeSettings
from openmedclip.serve.uploads import ImageSource, optional_image, required_image

logger = logging.getLogger("openmedclip.serve")

Label = Annotated[str, StringConstraints(max_length=200)]
Template = Annotated[str, StringConstraints(max_length=300)]
ModelField = Annotated[
    str | None, Form(max_length=4096, description="A served model (GET /models; default: the service's default).")
]

_ERROR = {"model": responses.ErrorBody}
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "Unusable input: an unreadable or unsupported image, unknown labels, ..."},
    413: {**_ERROR, "description": "The request body is larger than the upload limit."},
    503: {**_ERROR, "description": "Every worker stayed busy for as long as a request may wait."},
    504: {**_ERROR, "description": "The request took longer than the time limit."},
}
PATH_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {**_ERROR, "description": "A path outside the served root, or paths are not accepted."},
    404: {**_ERROR, "description": "No such file under the served root."},
}


def _open_index(settings: ServeSettings) -> SearchIndex | None:
    if settings.index is None:
        return None
    from openmedclip.index import open_index

    return open_index(settings.index)


def _model_pool(settings: ServeSettings, index: SearchIndex | None) -> ModelPool:
    """The settings' models (first: the default), else the index's model, else the package's default model."""
    from openmedclip.models import DEFAULT_MODEL

    names = list(settings.models) or [index.model if index is not None else DEFAULT_MODEL]
    return ModelPool(names[0], names[1:], device=settings.device, precision=settings.precision)


def create_app(settings: ServeSettings, *, pool: ModelPool | None = None) -> FastAPI:
    """The REST application for ``settings``; the default model is loaded (and the index opened) now, so a model
    or index that cannot be used fails here rather than at the first request.

    ``pool`` shares models already loaded elsewhere (e.g. by the demo); its models are then the ones served and
    ``settings.models``, ``device`` and ``precision`` are not used.
    """
    index = _open_index(settings)
    pool = pool or _model_pool(settings, index)
    if index is not None and index.model not in pool.allowed:
        raise InvalidInputError(f"index {settings.index} was built with model {index.model!r}, which is not served "
                                f"here; served models: {', '.join(pool.allowed)}")
    pool.get()
    service = Service(settings, pool, index)
    limiter = WorkLimiter(settings.max_concurrency, settings.queue_wait_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        limiter.shutdown()

    app = FastAPI(
        title="openmedclip",
        summary="Zero-shot classification, embeddings, heat maps and search for medical images.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_upload_bytes, timeout_s=settings.timeout_s)
    _add_error_handlers(app)
    app.include_router(_health_routes(service, limiter))
    guarded = [Depends(token_check(settings.token))] if settings.token else []
    unauthorised: dict[int | str, dict[str, Any]] = (
        {401: {**_ERROR, "description": "Missing or wrong bearer token."}} if settings.token else {}
    )
    app.include_router(_model_routes(service, limiter), dependencies=guarded, responses=unauthorised)
    return app


def _version() -> str:
    from openmedclip import __version__

    return __version__


def _health_routes(service: Service, limiter: WorkLimiter) -> APIRouter:
    router = APIRouter()

    @router.get("/health", summary="Whether the service is up, and what it serves")
    def health() -> responses.Health:  # plain functions run on the server's thread pool: the pool's lock may wait
        from openmedclip.precision import precision_name

        default = service.pool.get()
        index = service.index
        return responses.Health(
            status="ok", version=_version(), default_model=service.pool.default, models=service.pool.allowed,
            loaded_models=service.pool.loaded(), device=str(default.device), precision=precision_name(default.dtype),
            max_concurrency=limiter.max_concurrency,
            index=None if index is None else responses.IndexInfo(
                path=str(service.settings.index), count=index.count, dim=index.dim, model=index.model
            ),
        )

    return router


def _model_routes(service: Service, limiter: WorkLimiter) -> APIRouter:
    router = APIRouter(responses=CLIENT_ERRORS)
    pool = service.pool

    @router.get("/models", summary="The models clients may ask for")
    def models() -> responses.Models:
        loaded = set(pool.loaded())
        infos = []
        for name in pool.allowed:
            spec = pool.get(name).spec if name in loaded else None
            infos.append(responses.ModelInfo(name=name, default=name == pool.default, loaded=spec is not None,
                                             family=spec.family if spec else None,
                                             architecture=spec.architecture if spec else None))
        return responses.Models(default=pool.default, models=infos)

    @router.get("/presets", summary="Ready-made zero-shot label sets")
    async def presets() -> responses.Presets:
        return responses.Presets(presets=[responses.PresetInfo(**item.to_dict()) for item in PRESETS.values()])

    @router.post("/zeroshot", summary="Classify an image zero-shot with text labels", responses=PATH_ERRORS)
    async def zeroshot(
        image: Annotated[ImageSource, Depends(required_image)],
        labels: Annotated[list[Label] | None, Form(max_length=64, description="Class or finding names: "
                                                   "comma-separated, repeated, or both.")] = None,
        preset: Annotated[str | None, Form(max_length=100, description="A label preset (GET /presets) instead "
                                           "of labels.")] = None,
        bank: Annotated[str | None, Form(max_length=100, description="A built-in sentence bank phrasing the "
                                         "labels.")] = None,
        templates: Annotated[list[Template] | None, Form(max_length=32, description="A template set name, or "
                                                         "prompt templates with one '{}' each (repeated).")] = None,
        multilabel: Annotated[bool | None, Form(description="Decide each label on its own (default: the "
                                                "preset's, else no).")] = None,
        threshold: Annotated[float, Form(ge=0, le=1, description="Multi-label decision threshold.")] = 0.5,
        model: ModelField = None,
    ) -> responses.ZeroShot:
        question = ZeroShotQuestion(split_labels(labels), preset, bank, templates, multilabel, threshold)
        return await limiter.run(lambda: service.zero_shot(image, question, model))

    @router.post("/embed/image", summary="The L2-normalised embedding of an image", responses=PATH_ERRORS)
    async def embed_image(
        image: Annotated[ImageSource, Depends(required_image)], model: ModelField = None
    ) -> responses.ImageEmbedding:
        return await limiter.run(lambda: service.embed_image(image, model))

    @router.post("/embed/text", summary="L2-normalised embeddings of texts")
    async def embed_text(request: responses.TextEmbeddingRequest) -> responses.TextEmbeddings:
        return await limiter.run(lambda: service.embed_texts(request.texts, request.model))

    @router.post(
        "/heatmap",
        summary="Where in an image a text matches",
        responses={**PATH_ERRORS, 200: {"content": {"image/png": {}},
                                        "description": "The map as JSON, or drawn over the image (format=png)."}},
    )
    async def heatmap(
        image: Annotated[ImageSource, Depends(required_image)],
        text: Annotated[str, Form(min_length=1, max_length=1000, description="The text to locate.")],
        smooth: Annotated[float, Form(ge=0, le=10, description="Gaussian smoothing in grid cells.")] = 0.5,
        alpha: Annotated[float, Form(ge=0, le=1, description="Opacity of the map over the image (PNG).")] = 0.45,
        model: ModelField = None,
        format: Annotated[Literal["json", "png"], Query(description="json: the values; png: a picture.")] = "json",
    ) -> Any:
        if format == "json":
            return await limiter.run(lambda: service.heatmap(image, text, smooth, model))
        if find_spec("matplotlib") is None:
            raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED,
                                "PNG heat maps need matplotlib: pip install 'openmedclip[plots]'")
        png, peak = await limiter.run(lambda: service.heatmap_png(image, text, smooth, alpha, model))
        return Response(png, media_type="image/png", headers={
            "X-Peak-Row": str(peak.row), "X-Peak-Column": str(peak.column), "X-Peak-Value": f"{peak.value:.6f}"
        })

    @router.post(
        "/search",
        summary="The indexed images nearest to a text or an image",
        responses={**PATH_ERRORS, 404: {**_ERROR, "description": "No index configured, or no such file under the "
                                        "served root."}},
    )
    async def search(
        image: Annotated[ImageSource | None, Depends(optional_image)],
        text: Annotated[str | None, Form(min_length=1, max_length=1000, description="A text query (or send an "
                                         "image).")] = None,
        k: Annotated[int, Form(ge=1, le=100, description="How many hits.")] = 10,
        where: Annotated[str | None, Form(max_length=4096, description="Metadata filters as a JSON object, e.g. "
                                          "{\"modality\": \"CT\"}.")] = None,
    ) -> responses.SearchResults:
        if service.index is None:
            raise NoIndex("no index configured (start the service with --index)")
        return await limiter.run(lambda: service.search(text, image, k, where))

    return router


def _detail(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def client_error(_: Request, error: Exception) -> JSONResponse:
        return _detail(status.HTTP_400_BAD_REQUEST, str(error))

    async def model_unavailable(_: Request, error: Exception) -> JSONResponse:
        logger.error("%s", error)
        return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, str(error))

    async def busy(_: Request, error: Exception) -> JSONResponse:
        return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, str(error), {"Retry-After": "1"})

    async def no_index(_: Request, error: Exception) -> JSONResponse:
        return _detail(status.HTTP_404_NOT_FOUND, str(error))

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected %s answering %s %s (traceback follows from the server)", type(error).__name__,
                     request.method, request.url.path)
        return _detail(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")

    app.add_exception_handler(OpenMedClipError, client_error)
    app.add_exception_handler(ModelLoadError, model_unavailable)
    app.add_exception_handler(ServiceBusy, busy)
    app.add_exception_handler(NoIndex, no_index)
    app.add_exception_handler(Exception, unexpected)
