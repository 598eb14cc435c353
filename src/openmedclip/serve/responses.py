"""The JSON bodies the REST service answers with (pydantic models, so its OpenAPI document describes them exactly)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Why a request failed, in one line."""

    detail: str


class IndexInfo(BaseModel):
    path: str
    count: int = Field(description="Images in the index.")
    dim: int = Field(description="Embedding width.")
    model: str = Field(description="The model the index was built with (and is searched with).")


class Health(BaseModel):
    status: Literal["ok"]
    version: str = Field(description="openmedclip's version.")
    default_model: str
    models: list[str] = Field(description="The models clients may ask for.")
    loaded_models: list[str] = Field(description="The models loaded so far (each once, shared by all requests).")
    device: str = Field(description="Where the default model runs, e.g. 'cpu' or 'cuda:0'.")
    precision: str = Field(description="The default model's weight precision: fp32, bf16 or fp16.")
    max_concurrency: int = Field(description="Requests doing model work at once; others wait their turn.")
    index: IndexInfo | None = Field(description="The index POST /search uses, if one was configured.")


class ModelInfo(BaseModel):
    name: str
    default: bool
    loaded: bool
    family: str | None = Field(description="The model family (known once loaded).")
    architecture: str | None = Field(description="The architecture within the family (known once loaded).")


class Models(BaseModel):
    default: str
    models: list[ModelInfo]


class PresetInfo(BaseModel):
    name: str
    title: str
    labels: list[str]
    bank: str = Field(description="The sentence bank that phrases the labels.")
    multilabel: bool


class Presets(BaseModel):
    presets: list[PresetInfo]


class ZeroShot(BaseModel):
    model: str
    image: str = Field(description="The upload's file name, or the path under the root.")
    mode: Literal["multiclass", "multilabel"]
    labels: list[str]
    probabilities: dict[str, float] = Field(
        description="Per label: the softmax over labels (multiclass) or P(label) on its own (multilabel)."
    )
    prediction: list[str] = Field(description="The most likely label, or every label at or above the threshold.")
    threshold: float | None = Field(description="The multi-label decision threshold (None for multiclass).")
    bank: str | None = Field(description="The sentence bank the prompts came from, if any.")


class ImageEmbedding(BaseModel):
    model: str
    image: str
    dim: int
    vector: list[float] = Field(description="L2-normalised image embedding.")


class TextEmbeddingRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256, description="Texts to embed (1 to 256).")
    model: str | None = Field(default=None, description="A served model (default: the service's default).")


class TextEmbeddings(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]] = Field(description="One L2-normalised embedding per text, in order.")


class Peak(BaseModel):
    row: int = Field(description="Row of the highest similarity, in source pixels.")
    column: int = Field(description="Column of the highest similarity, in source pixels.")
    value: float = Field(description="The cosine similarity there.")


class Heatmap(BaseModel):
    model: str
    image: str
    text: str
    source_size: tuple[int, int] = Field(description="Rows and columns of the source image.")
    size: tuple[int, int] = Field(description="Rows and columns of ``values`` (the source size, averaged down to "
                                              "at most the service's heat map size per side).")
    grid_size: tuple[int, int] = Field(description="Rows and columns of the model's patch or feature-map grid.")
    values: list[list[float | None]] = Field(
        description="Cosine similarity per cell; null where the model's input window does not reach."
    )
    peak: Peak


class SearchHit(BaseModel):
    rank: int
    score: float
    path: str
    metadata: dict[str, Any]


class SearchResults(BaseModel):
    model: str
    query: Literal["text", "image"]
    k: int
    hits: list[SearchHit]
