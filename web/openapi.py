"""The OpenAPI document of the dashboard's JSON API."""

from __future__ import annotations

from typing import Any

from pulsaride.engine.layout import RUN_ID_MAX, RUN_ID_PATTERN

_OBJECT = {"type": "object"}
_ERROR = {"description": "Error", "content": {"text/plain": {"schema": {"type": "string"}}}}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.0 description of /api/*."""
    run_id = {"name": "run_id", "in": "path", "required": True,
              "description": "No part after a dot may be jsonl, lock or seals (any case).",
              "schema": {"type": "string", "pattern": RUN_ID_PATTERN,
                         "maxLength": RUN_ID_MAX}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "pt serve", "version": "1",
                 "description": "Runs, one run's status and timeline, and the cutover "
                                "verdict of a Pulsaride migration."},
        "paths": {
            "/api/runs": {"get": {"summary": "Every run, newest first", "responses": {
                "200": _json({"type": "object", "required": ["runs"], "properties": {
                    "schema": {"type": "string"},
                    "runs": {"type": "array", "items": _OBJECT}}})}}},
            "/api/runs/{run_id}": {"get": {
                "summary": "One run: status document and timeline", "parameters": [run_id],
                "responses": {"200": _json({"type": "object", "required": [
                    "pipeline_run_id", "state", "stages"]}),
                    "400": _ERROR, "404": _ERROR,
                    "409": _json({"type": "object", "required": ["damaged"]})}}},
            "/api/health": {"get": {"summary": "The cutover confidence verdict", "responses": {
                "200": _json(_verdict()), "503": _json(_verdict())}}},
            "/api/health/cutover": {"get": {
                "summary": "200 when the verdict is GO, 503 otherwise (for curl -f in CI)",
                "responses": {"200": _json(_verdict()), "503": _json(_verdict())}}},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _verdict() -> dict[str, Any]:
    return {"type": "object", "required": ["verdict", "reasons"], "properties": {
        "verdict": {"type": "string", "enum": ["GO", "CAUTION", "NO-GO", "UNKNOWN"]},
        "reasons": {"type": "array", "items": {"type": "string"}}}}
