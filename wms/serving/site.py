"""What the front door serves beside the API: the page at / to try a photo, the OpenAPI document of the API
(serving/openapi.yaml) as YAML and JSON, and its reference at /docs, rendered from it."""

from __future__ import annotations

import html
import json
from pathlib import Path

import yaml

from wms.core.project import SERVING_DIR

OPENAPI = SERVING_DIR / "openapi.yaml"
PAGE_DIR = SERVING_DIR / "web"
PAGE_FILES = ("index.html", "app.js", "style.css")
MODEL_PLACEHOLDER = "{{model}}"


def api_document() -> dict:
    """The OpenAPI document of WMS's API."""
    return yaml.safe_load(OPENAPI.read_text())


def write_site(folder: Path, model_name: str) -> Path:
    """Write the page (for this model), the OpenAPI document and its reference into `folder`, nginx's root."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        text = (PAGE_DIR / name).read_text()
        (folder / name).write_text(text.replace(MODEL_PLACEHOLDER, html.escape(model_name, quote=True)))
    document = api_document()
    (folder / "openapi.yaml").write_text(OPENAPI.read_text())
    (folder / "openapi.json").write_text(json.dumps(document, indent=2) + "\n")
    (folder / "docs.html").write_text(reference_html(document, model_name))
    return folder


def reference_html(document: dict, model_name: str) -> str:
    """The API's reference as one HTML page: each operation, the answer's fields, each error's status and causes."""
    info, components = document["info"], document["components"]
    parts = [
        f"<h1>{_text(info['title'])}</h1>",
        f"<p>{_text(info['summary'])}</p>",
        *(f"<p>{_text(paragraph)}</p>" for paragraph in info["description"].strip().split("\n\n")),
        "<h2>Operations</h2>",
    ]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            shown = path.replace("{model}", model_name)
            parts.append(f"<h3><code>{method.upper()} {_text(shown)}</code></h3><p>{_text(operation['summary'])}</p>")
            if "requestBody" in operation:
                body = components["requestBodies"]["photo"]
                types = ", ".join(f"<code>{_text(kind)}</code>" for kind in body["content"])
                parts.append(f"<p>Body: {_text(body['description'])} Content types: {types}.</p>")
            rows = [
                f"<tr><td>{status}</td><td>{_text(_response(components, response)['description'])}</td></tr>"
                for status, response in operation["responses"].items()
            ]
            parts.append(f"<table><tr><th>status</th><th>when</th></tr>{''.join(rows)}</table>")
    for name in ("Prediction", "Error"):
        schema = components["schemas"][name]
        rows = [
            f"<tr><td><code>{field}</code>{' (always)' if field in schema.get('required', []) else ''}</td>"
            f"<td>{_text(spec.get('description', ''))}</td></tr>"
            for field, spec in schema["properties"].items()
        ]
        parts.append(f"<h2>{name} fields</h2><table><tr><th>field</th><th>meaning</th></tr>{''.join(rows)}</table>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>WMS API reference</title>'
        '<link rel="stylesheet" href="/style.css"></head><body>\n'
        + "\n".join(parts)
        + '\n<p><a href="/">Try a photo</a> · <a href="/openapi.yaml">OpenAPI (YAML)</a> · '
        '<a href="/openapi.json">OpenAPI (JSON)</a></p>\n</body></html>\n'
    )


def _response(components: dict, response: dict) -> dict:
    if "$ref" in response:
        return components["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def _text(value: str) -> str:
    """Escaped, with `code` spans kept as code."""
    escaped = html.escape(value)
    pieces = escaped.split("`")
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))
