"""Request bodies of the public HTTP contract, validated strictly (unknown fields refused)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# Genesys ids are UUIDs; request ids are the caller's, kept short and printable.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
ConversationId = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]


def is_conversation_id(value: str) -> bool:
    """Whether ``value`` has the shape of a Genesys conversation id."""
    return re.fullmatch(UUID_PATTERN, value) is not None


def _no_personal_data(value: str) -> str:
    """The request id with anything card- or SSN-shaped masked: it is logged, echoed and
    sent upstream. Masked, not refused: a random hex id can hold a Luhn-valid run."""
    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match[0])
        card = 13 <= len(digits) <= 19 and _luhn(digits)
        return "#" * len(match[0]) if card else match[0]

    value = re.sub(r"\d(?:[-._:]?\d){12,18}", mask, value)
    return re.sub(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)", lambda m: "#" * len(m[0]), value)


def _luhn(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$"),
                      AfterValidator(_no_personal_data)]
# Text sizes are not validated here: the transcript cap (413) covers them, after parsing
# a body the body cap already bounds.


class UtteranceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    speaker: Literal["customer", "agent"]
    text: str


class StreamRequest(BaseModel):
    """``POST /api/assist/stream``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    conversation_id: ConversationId = Field(alias="conversationId")
    trigger: Literal["utterance", "manual"]
    query: str | None = None
    utterances: list[UtteranceIn] = Field(default_factory=list)
    request_id: RequestId | None = Field(default=None, alias="requestId")

    @model_validator(mode="after")
    def _has_something_to_answer(self) -> StreamRequest:
        if self.trigger == "manual" and not (self.query and self.query.strip()):
            raise ValueError("a manual request needs a non-empty query")
        if self.trigger == "utterance" and not any(
            u.speaker == "customer" and u.text.strip() for u in self.utterances
        ):
            raise ValueError("an utterance request needs a customer utterance")
        return self



class MachineStreamRequest(BaseModel):
    """``POST /v1/stream-assist``: a machine client's transcript and its last utterance."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    conversation_id: ConversationId = Field(alias="conversationId")
    transcript: list[UtteranceIn] = Field(default_factory=list)
    last_utterance: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        alias="lastUtterance")
    request_id: RequestId | None = Field(default=None, alias="requestId")


LANG_TAG_PATTERN = r"^[A-Za-z0-9-]{1,35}$"
LangTag = Annotated[str, StringConstraints(pattern=LANG_TAG_PATTERN)]


def is_lang_tag(value: str) -> bool:
    """Whether ``value`` may be a BCP 47 language tag as Genesys passes ``gcLangTag``."""
    return re.fullmatch(LANG_TAG_PATTERN, value) is not None
# What may reach a header or a URL on the way to Genesys: a bearer token (RFC 6750's
# b64token) and an authorization code or state (visible ASCII). Anything else is the
# client's garbage, refused here (400), never sent on to be reported as an outage.
_BEARER_TOKEN = r"^[A-Za-z0-9\-._~+/]+=*$"
_VISIBLE_ASCII = r"^[\x21-\x7e]+$"
_CONTRACT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StateRequest(BaseModel):
    """``POST /auth/state``: the panel's URL variables, to carry through sign-in."""

    model_config = _CONTRACT

    conversation_id: ConversationId = Field(alias="conversationId")
    host_origin: Annotated[str, StringConstraints(max_length=200)] = Field(
        "", alias="gcHostOrigin")
    target_env: Annotated[str, StringConstraints(max_length=64)] = Field("", alias="gcTargetEnv")
    lang_tag: LangTag = Field("en-US", alias="langTag")


class SessionRequest(BaseModel):
    """``POST /api/session``: a sign-in answer (a token, or a PKCE code) and its state."""

    model_config = _CONTRACT

    state: Annotated[str, StringConstraints(max_length=2000, pattern=_VISIBLE_ASCII)]
    access_token: Annotated[str, StringConstraints(max_length=4096, pattern=_BEARER_TOKEN)
                            ] | None = Field(None, alias="accessToken")
    expires_in: Annotated[int, Field(gt=0, le=172_800)] | None = Field(None, alias="expiresIn")
    code: Annotated[str, StringConstraints(max_length=2048, pattern=_VISIBLE_ASCII)] | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> SessionRequest:
        if (self.access_token is None) == (self.code is None):
            raise ValueError("send either accessToken (with expiresIn) or code")
        if self.access_token is not None and self.expires_in is None:
            raise ValueError("accessToken needs expiresIn (seconds left on the token)")
        return self


class RenewRequest(BaseModel):
    """``POST /api/session/renew``: the Genesys token the page holds, and the panel's URL
    variables saying which region it is from (the session names the conversation)."""

    model_config = _CONTRACT

    access_token: Annotated[str, StringConstraints(max_length=4096, pattern=_BEARER_TOKEN)
                            ] = Field(alias="accessToken")
    host_origin: Annotated[str, StringConstraints(max_length=200)] = Field(
        "", alias="gcHostOrigin")
    target_env: Annotated[str, StringConstraints(max_length=64)] = Field("", alias="gcTargetEnv")
    lang_tag: LangTag = Field("en-US", alias="langTag")
