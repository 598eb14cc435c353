"""Optional LLM backend: draft bank sentences for a new class through any OpenAI-compatible chat endpoint.

Generated sentences are cached into a bank YAML file with `extend_bank_file`, to be reviewed and committed
like code; nothing here runs during training or evaluation.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from ..atomic import write_text
from ..errors import InvalidInputError
from .banks import SentenceBank, bank_to_dict, load_bank

_SYSTEM = (
    "You are a radiologist writing short image captions and report sentences for training medical "
    "image-text models. Write clinically accurate, varied sentences in the style of radiology reports and "
    "figure captions; do not mention patients by name."
)
_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s+(?P<text>.+)$")


def generate_sentences(
    class_name: str,
    modality: str,
    n: int = 10,
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    timeout: float = 60,
) -> list[str]:
    """Ask the chat model at `base_url` for `n` distinct sentences describing `class_name` on `modality`.

    `base_url` is the server root or its ``/v1`` prefix. Returns the deduplicated sentences of the reply's
    numbered or bulleted list; raises `InvalidInputError` naming the URL when the server cannot be reached,
    answers with an HTTP error, or replies with no usable list.
    """
    if n < 1:
        raise InvalidInputError(f"n must be at least 1, got {n}")
    url = _chat_url(base_url)
    prompt = (
        f"Write {n} different sentences describing a {modality} image that shows {class_name}. "
        "Vary the length and structure: some short findings, some full report sentences, some captions. "
        "Answer with a numbered list, one sentence per line, and nothing else."
    )
    body = {
        "model": model,
        "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}],
        "temperature": 0.7,
    }
    content = _post_chat(url, body, api_key, timeout)
    sentences = parse_list_reply(content)
    if not sentences:
        raise InvalidInputError(f"{url}: the reply holds no sentences: {content[:200]!r}")
    return sentences


def parse_list_reply(content: str) -> list[str]:
    """The items of a numbered or bulleted list (every non-empty line when there is no list), deduplicated."""
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    items = [m["text"] for m in map(_ITEM.match, lines) if m]
    unique: dict[str, str] = {}
    for text in items or lines:
        text = text.strip().strip("\"'").strip()
        key = " ".join(text.split()).casefold()
        if key and key not in unique:
            unique[key] = text
    return list(unique.values())


def extend_bank_file(
    path: str | Path,
    class_name: str,
    modality: str,
    n: int = 10,
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    timeout: float = 60,
) -> list[str]:
    """Add LLM-drafted sentences for a new class to the bank file at `path` (created when missing).

    A class the file already has is left untouched and nothing is requested (returns ``[]``); otherwise the
    new sentences, minus any the file already holds, are written atomically and returned. The file is
    rewritten from its parsed content, so YAML comments are not kept. Review the sentences (`validate_bank`)
    before committing the file.
    """
    path = Path(path)
    if path.exists():
        bank = load_bank(path)
    else:
        description = f"Sentences drafted by {model}; review them before use."
        bank = SentenceBank(modality=modality, classes={}, description=description)
    try:
        bank.resolve(class_name)
        return []
    except InvalidInputError:
        pass
    existing = {" ".join(s.split()).casefold() for sentences in bank.classes.values() for s in sentences}
    generated = generate_sentences(
        class_name, modality, n, base_url=base_url, model=model, api_key=api_key, timeout=timeout
    )
    new = [s for s in generated if " ".join(s.split()).casefold() not in existing]
    if not new:
        raise InvalidInputError(f"{path}: every sentence drafted for {class_name!r} is already in the bank")
    bank.classes[class_name] = new
    write_text(path, yaml.safe_dump(bank_to_dict(bank), sort_keys=False, allow_unicode=True, width=120))
    return new


def _chat_url(base_url: str) -> str:
    root = base_url.rstrip("/")
    return f"{root}/chat/completions" if root.endswith("/v1") else f"{root}/v1/chat/completions"


def _post_chat(url: str, body: dict, api_key: str | None, timeout: float) -> str:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace")
        raise InvalidInputError(f"{url}: HTTP {exc.code} {exc.reason}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidInputError(f"{url}: cannot reach the LLM server ({reason})") from exc
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InvalidInputError(f"{url}: malformed chat completion reply: {raw[:200]!r}") from exc
    if not isinstance(content, str):
        raise InvalidInputError(f"{url}: malformed chat completion reply: message content is not text")
    return content
