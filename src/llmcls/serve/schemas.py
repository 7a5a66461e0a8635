"""The JSON of the HTTP API: what a request may hold (anything else is refused) and what comes back."""

from __future__ import annotations

import json
from email.message import Message
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError

from llmcls.serve.responses import RequestRefused, validation_message


class PredictRequest(BaseModel):
    """POST /v1/predict: texts to classify, and the options of `llmcls predict`."""

    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(..., min_length=1, description="the texts, answered in this order")
    top_k: int = Field(1, ge=1, description="how many of the most probable labels to list per text")
    threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description=("multi-label runs: one threshold for every class instead of the run's")
    )
    chunk_tokens: int | None = Field(None, ge=0, description="window length for long texts (0: no chunking)")
    chunk_stride: int | None = Field(None, ge=1, description="tokens between window starts")
    chunk_aggregate: Literal["mean", "max"] | None = Field(None, description="how windows' probabilities combine")

    def chunking(self) -> dict:
        """The chunking options given, as changes to the run's chunking section (as the CLI's)."""
        changes: dict = {}
        if self.chunk_tokens is not None:
            changes["max_tokens"] = self.chunk_tokens or None
        if self.chunk_stride is not None:
            changes["stride"] = self.chunk_stride
        if self.chunk_aggregate is not None:
            changes["aggregate"] = self.chunk_aggregate
        return changes


class LabelProbability(BaseModel):
    label: str
    probability: float


class TextPrediction(BaseModel):
    """What the model says about one text: as a line of `llmcls predict --format jsonl`, without the text."""

    label: str | None = Field(None, description="single-label: the most probable label")
    probability: float | None = Field(None, description="single-label: its probability")
    labels: list[str] | None = Field(None, description="multi-label: every label reaching its threshold")
    probabilities: list[float] | None = Field(None, description="multi-label: their probabilities")
    top_k: list[LabelProbability]


class PredictResponse(BaseModel):
    predictions: list[TextPrediction]
    backend: str


class ErrorBody(BaseModel):
    status: int
    message: str = Field(..., description="one line saying what was wrong")
    field: str | None = Field(None, description="the request field at fault, e.g. texts.3")
    limit: str | None = Field(
        None,
        description=(
            "the limit exceeded: max_texts, max_bytes, max_text_chars, max_request_tokens, max_windows_per_text, "
            "max_concurrent, max_queue_texts, request_timeout_s or read_timeout_s"
        ),
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


_PREDICT_REQUEST = TypeAdapter(PredictRequest)


def read_predict_request(body: bytes, content_type: str | None) -> PredictRequest:
    """The request of POST /v1/predict, parsed and checked as FastAPI would (the same refusals and messages),
    without its per-request machinery: a JSON body only when Content-Type says JSON, pydantic's checks.

    Raises:
        RequestRefused: 422 naming the field (or the body), 400 for a body that is not text.
    """
    value = None
    if body:
        value = body  # not declared as JSON: refused below as "expected a JSON object ..."
        if content_type and _is_json(content_type):
            value = _parse_json(body)
    if value is None and not body:
        raise RequestRefused(422, "body: required field is missing", field="body")
    try:
        return _PREDICT_REQUEST.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        field, message = validation_message(exc.errors())
        raise RequestRefused(422, message, field=field) from None


def _parse_json(body: bytes):
    """The JSON value of `body`; RequestRefused for anything that is not JSON Python can hold: malformed, not
    UTF-8, nested too deeply (RecursionError) or an integer of more digits than Python converts (ValueError)."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestRefused(422, f"body: malformed JSON ({exc.msg})", field="body") from None
    except UnicodeDecodeError:
        raise RequestRefused(400, "body: not UTF-8 text") from None
    except RecursionError:
        raise RequestRefused(422, "body: JSON nested too deeply", field="body") from None
    except ValueError:  # e.g. an integer of thousands of digits
        raise RequestRefused(422, "body: a JSON number too large to read", field="body") from None


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
