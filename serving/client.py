"""REST client for a served nltool model: the token from TorchServe's key_file.json, retries, clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from nltool.errors import NltoolError


class ClientError(NltoolError):
    """A request the server refused or could not answer, said in terms of what to do."""


def read_token(key_file: Path) -> str:
    """The inference token TorchServe wrote to ``key_file.json`` in the folder it was started from."""
    try:
        keys = json.loads(key_file.read_text())
        return str(keys["inference"]["key"])
    except FileNotFoundError as exc:
        raise ClientError(f"token file {key_file} not found: TorchServe writes key_file.json in the folder "
                          "it was started from; pass --token-file") from exc
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ClientError(f"{key_file} is not TorchServe's key_file.json (no inference key)") from exc


class RestClient:
    """``POST /predictions/<model>`` with the image bytes; options as X-Nltool-* headers."""

    def __init__(self, url: str = "http://127.0.0.1:8080", model: str = "nllinknet", token: str | None = None,
                 timeout: float = 600.0, retries: int = 3) -> None:
        self.url, self.model, self.token, self.timeout, self.retries = url.rstrip("/"), model, token, timeout, retries

    def predict(self, image: bytes, *, tta: str | None = None, threshold: float | None = None,
                fmt: str | None = None) -> bytes:
        """The mask (or probability/GeoTIFF) bytes for ``image``; retries 503 with back-off."""
        headers = {"Content-Type": "application/octet-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for name, value in (("Tta", tta), ("Threshold", threshold), ("Format", fmt)):
            if value is not None:
                headers[f"X-Nltool-{name}"] = str(value)
        endpoint = f"{self.url}/predictions/{self.model}"
        for attempt in range(self.retries + 1):
            try:
                response = requests.post(endpoint, data=image, headers=headers, timeout=self.timeout)
            except requests.ConnectionError as exc:
                raise ClientError(f"cannot reach TorchServe at {self.url}: is it running? ({exc})") from exc
            except requests.Timeout as exc:
                raise ClientError(f"no answer from {endpoint} within {self.timeout:.0f} s") from exc
            if response.status_code != 503 or attempt == self.retries:
                break
            time.sleep(min(2**attempt, 10))
        if response.ok:
            return response.content
        raise ClientError(self._explain(response))

    def _explain(self, response: requests.Response) -> str:
        text = response.text.strip()
        try:
            message = json.loads(text).get("message", text)
        except (json.JSONDecodeError, AttributeError):
            message = text
        if response.status_code == 400 and "Token Authorization failed" in text:
            return ("TorchServe refused the token: pass --token-file with the key_file.json TorchServe wrote where "
                    "it was started (the 'inference' key)")
        if response.status_code == 404:
            return f"TorchServe has no model {self.model!r} ({message}); check --model-name / the --models list"
        if response.status_code == 413:
            return f"the image is too large for this server: {message}"
        return f"TorchServe answered {response.status_code}: {message}"
