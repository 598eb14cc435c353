"""50 clients at once for a few seconds: every answer is the library's, none fails, the server stays responsive."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from openmedclip.embed import encode_images, encode_texts
from openmedclip.tasks.zeroshot import zero_shot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLIENTS = 50
SECONDS = 4.0
IMAGES = [EXAMPLES / name for name in ("chest_xray_normal.png", "chest_xray_pneumonia.png", "head_ct.jpg")]
LABELS = ["normal", "pneumonia"]
TEXTS = [["pleural effusion"], ["a CT of the head", "cardiomegaly"]]


def test_fifty_concurrent_clients_all_get_correct_answers(server, model):
    expected_probabilities = {path.name: zero_shot(model, [path], LABELS).probabilities[0] for path in IMAGES}
    expected_vectors = {path.name: encode_images(model, [path]).features[0].numpy() for path in IMAGES}
    expected_texts = [encode_texts(model, texts).numpy() for texts in TEXTS]
    uploads = {path.name: path.read_bytes() for path in IMAGES}
    counts: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)
    stop_at: list[float] = []

    def check(kind: str, answer: httpx.Response, ok: bool) -> None:
        with lock:
            counts[kind] += 1
            if answer.status_code != 200 or not ok:
                failures.append(f"{kind}: {answer.status_code} {answer.text[:200]}")

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            if start.wait() == 0:
                stop_at.append(time.monotonic() + SECONDS)
            while not stop_at:
                time.sleep(0.001)
            step = number
            while time.monotonic() < stop_at[0]:
                name = IMAGES[step % len(IMAGES)].name
                kind = ("zeroshot", "embed image", "embed text")[step % 3]
                step += 1
                if kind == "zeroshot":
                    answer = http.post("/zeroshot", files={"file": (name, uploads[name])},
                                       data={"labels": ",".join(LABELS)})
                    got = answer.json().get("probabilities", {}) if answer.status_code == 200 else {}
                    ok = bool(got) and np.allclose([got[label] for label in LABELS], expected_probabilities[name],
                                                   atol=1e-6, rtol=0)
                elif kind == "embed image":
                    answer = http.post("/embed/image", files={"file": (name, uploads[name])})
                    ok = answer.status_code == 200 and np.allclose(answer.json()["vector"], expected_vectors[name],
                                                                   atol=1e-6, rtol=0)
                else:
                    texts = TEXTS[step % 2]
                    answer = http.post("/embed/text", json={"texts": texts})
                    ok = answer.status_code == 200 and np.allclose(answer.json()["vectors"],
                                                                   expected_texts[step % 2], atol=1e-6, rtol=0)
                check(kind, answer, ok)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began
    total = sum(counts.values())
    print(f"\n{CLIENTS} clients, {elapsed:.1f} s: {total} requests ({total / elapsed:.0f}/s), "
          f"{dict(counts)}, {len(failures)} failures")
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert total >= CLIENTS and min(counts[kind] for kind in ("zeroshot", "embed image", "embed text")) >= 10
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/health").status_code == 200
