"""PMC-CLIP's evaluation transform: short side to the input size (bicubic), centre crop, RGB, OpenAI mean/std.

It is open_clip's 'shortest' inference transform with those settings, step for step the same as PMC-CLIP's own
``image_transform(..., is_train=False)``; :class:`OpenClipPreprocess` gives its geometry.
"""

from __future__ import annotations

from dataclasses import asdict

from open_clip.transform import PreprocessCfg, image_transform_v2

from openmedclip.models.families.open_clip.entries import OPENAI_MEAN, OPENAI_STD
from openmedclip.models.families.open_clip.preprocess import OpenClipPreprocess


def build_preprocess(image_size: int) -> OpenClipPreprocess:
    """The inference preprocess for a ``image_size`` px model."""
    cfg = PreprocessCfg(size=image_size, mean=OPENAI_MEAN, std=OPENAI_STD, interpolation="bicubic",
                        resize_mode="shortest")
    settings = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(cfg).items()}
    return OpenClipPreprocess(image_transform_v2(cfg, is_train=False), settings)
