"""The LLM sentence backend against a real loopback HTTP server speaking the chat-completions API."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from openmedclip.errors import InvalidInputError
from openmedclip.prompts.banks import load_bank, validate_bank
from openmedclip.prompts.llm import extend_bank_file, generate_sentences, parse_list_reply

CANNED = "\n".join(
    ["Here are the sentences:", ""]
    + [f"{i}. Axial CT image showing a hepatic lesion, variant {i}." for i in range(1, 11)]
    + ["11. Axial CT image showing a hepatic lesion, variant 3.", "- Hypodense liver lesion on venous CT."]
)


class _Server:
    """A chat-completions stub on 127.0.0.1 that records each request and answers with `reply`."""

    def __init__(self):
        self.requests: list[dict] = []
        message = {"role": "assistant", "content": CANNED}
        self.reply: bytes = json.dumps({"choices": [{"message": message}]}).encode()
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "json": json.loads(body)}
                )
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.reply)))
                self.end_headers()
                self.wfile.write(owner.reply)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    stub = _Server()
    yield stub
    stub.close()


def test_generate_sentences_posts_chat_completion(server):
    sentences = generate_sentences(
        "hepatic lesion", "CT", n=10, base_url=server.url, model="tiny-med-llm", api_key="secret", timeout=5
    )
    assert len(sentences) == 11  # ten numbered + one bullet; the repeated item is dropped
    assert sentences[0] == "Axial CT image showing a hepatic lesion, variant 1."
    assert "Here are the sentences:" not in sentences
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer secret"
    assert request["json"]["model"] == "tiny-med-llm"
    prompt = request["json"]["messages"][-1]["content"]
    assert "hepatic lesion" in prompt and "CT" in prompt and "10" in prompt


def test_base_url_with_v1_prefix(server):
    generate_sentences("x", "CT", base_url=server.url + "/v1/", model="m", timeout=5)
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert server.requests[0]["auth"] is None


def test_extend_bank_file_adds_new_class_only(server, tmp_path):
    path = tmp_path / "liver_ct.yaml"
    options = {"base_url": server.url, "model": "tiny-med-llm", "timeout": 5}
    added = extend_bank_file(path, "hepatic lesion", "CT", **options)
    bank = load_bank(path)
    assert bank.modality == "CT"
    assert bank.classes["hepatic lesion"] == added and len(added) == 11
    assert validate_bank(bank, tokenizer=lambda s: len(s.split()) + 2) == []
    assert "hepatic lesion" in server.requests[0]["json"]["messages"][-1]["content"]

    again = extend_bank_file(path, "Hepatic Lesion", "CT", **options)
    assert again == [] and len(server.requests) == 1  # existing class: no request, file unchanged

    reply = "1. Axial CT image showing a hepatic lesion, variant 1.\n2. Cyst."
    server.reply = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
    assert extend_bank_file(path, "liver cyst", "CT", **options) == ["Cyst."]  # the repeat is dropped
    reloaded = yaml.safe_load(path.read_text())
    assert list(reloaded["classes"]) == ["hepatic lesion", "liver cyst"]
    assert reloaded["classes"]["hepatic lesion"]["sentences"] == added
    assert [p.name for p in tmp_path.iterdir()] == ["liver_ct.yaml"]  # no temporary files left behind


@pytest.mark.parametrize(
    "reply",
    [b"not json", b'{"choices": []}', b'{"choices": [{"message": {"content": null}}]}',
     json.dumps({"choices": [{"message": {"content": "   \n  "}}]}).encode()],
)
def test_malformed_reply_names_the_url(server, reply):
    server.reply = reply
    with pytest.raises(InvalidInputError, match=f"{server.url}/v1/chat/completions"):
        generate_sentences("x", "CT", base_url=server.url, model="m", timeout=5)


def test_http_error_names_the_url_and_status(server):
    server.status, server.reply = 401, b'{"error": "bad key"}'
    with pytest.raises(InvalidInputError, match=r"/v1/chat/completions: HTTP 401.*bad key"):
        generate_sentences("x", "CT", base_url=server.url, model="m", timeout=5)


def test_connection_failure_names_the_url(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(InvalidInputError, match=f"{url}/v1/chat/completions: cannot reach"):
        generate_sentences("x", "CT", base_url=url, model="m", timeout=5)
    with pytest.raises(InvalidInputError):
        extend_bank_file(tmp_path / "b.yaml", "x", "CT", base_url=url, model="m", timeout=5)
    assert not (tmp_path / "b.yaml").exists()


def test_parse_list_reply_formats():
    assert parse_list_reply("1) First.\n2: Second.\n\u2022 Third.\n* \"Fourth.\"") == [
        "First.", "Second.", "Third.", "Fourth."
    ]
    assert parse_list_reply("Plain one.\nPlain two.\nplain ONE.") == ["Plain one.", "Plain two."]
