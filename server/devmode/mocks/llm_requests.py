"""Request half of the mock model server: OpenAI's error bodies and the checks a
request's JSON must pass before `llm.py` plans an answer (`llm_faults` puts the
answer on the wire)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response

from server.devmode.mocks.llm_faults import dumps


class OpenAIError(Exception):
    """An error to return in OpenAI's `{"error": {...}}` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_
        self.param, self.code, self.headers = param, code, headers or {}

    def response(self) -> Response:
        """The JSON error response."""
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return Response(
            dumps(body),
            status_code=self.status,
            headers={**common_headers(), **self.headers},
            media_type="application/json",
        )


def common_headers() -> dict[str, str]:
    """Headers OpenAI puts on every response (clients surface `x-request-id`)."""
    return {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-version": "2020-10-01"}


def _type_name(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names.update({list: "an array", dict: "an object", type(None): "null"})
    return names.get(type(value), "an unsupported value")


def invalid_type(param: str, expected: str, value: Any) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` decoded as a JSON object, or None for anything else."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def json_body(raw: bytes) -> dict[str, Any]:
    """A request body's JSON object, or the 400 OpenAI answers for one that is not."""
    body = json_object(raw)
    if body is None:
        raise OpenAIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        )
    return body


#: The request fields OpenAI's public chat-completions API accepts; it refuses any
#: other (400 "Unrecognized request argument supplied"). The mock acts on `model`,
#: `messages`, `stream`, `stream_options` and the token limits, and takes the rest
#: without acting on them. Not the reasoning models' own fields (`reasoning_effort`,
#: `verbosity`), which OpenAI's other models refuse as unrecognized.
CHAT_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
    "logit_bias", "user", "seed", "response_format", "tools", "tool_choice",
    "parallel_tool_calls", "logprobs", "top_logprobs", "metadata", "store", "service_tier",
    "functions", "function_call", "modalities", "audio", "prediction", "web_search_options",
    "prompt_cache_key", "safety_identifier",
})


def _unrecognized(body: dict[str, Any]) -> OpenAIError | None:
    """OpenAI's 400 for fields it does not know, named in the order sent."""
    unknown = [name for name in body if name not in CHAT_FIELDS]
    if not unknown:
        return None
    plural = "s" if len(unknown) > 1 else ""
    return OpenAIError(400, f"Unrecognized request argument{plural} supplied: "
                            f"{', '.join(unknown)}")


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode and validate a chat-completions body the way OpenAI reports problems."""
    body = json_body(raw)
    if (unrecognized := _unrecognized(body)) is not None:
        raise unrecognized
    if "messages" not in body:
        raise OpenAIError(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array of objects", messages)
    if not messages:
        raise OpenAIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{i}]", "an object", message)
        if not isinstance(message.get("role"), str):
            raise OpenAIError(
                400,
                f"Missing required parameter: 'messages[{i}].role'.",
                param=f"messages[{i}].role",
                code="missing_required_parameter",
            )
    if "model" in body and not isinstance(body["model"], str):
        raise invalid_type("model", "a string", body["model"])
    if not isinstance(body.get("stream", False), bool):
        raise invalid_type("stream", "a boolean", body["stream"])
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid_type(name, "an integer", value)
        if value < 1:
            raise OpenAIError(
                400,
                f"Invalid '{name}': integer below minimum value. "
                f"Expected a value >= 1, but got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )
    options = body.get("stream_options")
    if options is not None:
        if not body.get("stream"):
            raise OpenAIError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise invalid_type("stream_options", "an object", options)
    return body


def check_token_limits(
    body: dict[str, Any], prompt_tokens: int, *, context_tokens: int, max_output_tokens: int
) -> None:
    """OpenAI's 400s for a request the model cannot serve: a token limit over the
    model's output limit, or the prompt and the limit together over its context window
    (the prompt alone, without a limit)."""
    name = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
    limit = body.get(name)
    if isinstance(limit, int) and limit > max_output_tokens:
        raise OpenAIError(
            400,
            f"{name} is too large: {limit}. This model supports at most "
            f"{max_output_tokens} completion tokens, whereas you provided {limit}.",
            param=name,
            code="invalid_value",
        )
    if isinstance(limit, int) and prompt_tokens + limit > context_tokens:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {context_tokens} tokens. However, you "
            f"requested {prompt_tokens + limit} tokens ({prompt_tokens} in the messages, "
            f"{limit} in the completion). Please reduce the length of the messages or "
            "completion.",
            param="messages",
            code="context_length_exceeded",
        )
    if prompt_tokens > context_tokens:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {context_tokens} tokens. However, your "
            f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the "
            "messages.",
            param="messages",
            code="context_length_exceeded",
        )
