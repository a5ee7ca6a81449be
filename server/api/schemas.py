"""Request and response bodies of the HTTP API; the OpenAPI document is built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints


def _iso_8601_text(value: object) -> object:
    # JSON carries timestamps as ISO-8601 text; a bare number is a mistake, not epoch seconds.
    if value is not None and not isinstance(value, str):
        raise ValueError("expected an ISO-8601 timestamp with a time zone")
    return value


IsoTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601_text)]

HostId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
MessageText = Annotated[
    str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)
]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# ---- users and threads (integration API) ----


class UserUpsert(StrictBody):
    role: Literal["seller", "buyer", "reviewer", "admin"]
    display_name: DisplayName
    business_program: Literal["none", "invited", "member", "suspended"] = "none"
    vid: bool = False
    restricted: bool = False


class UserOut(BaseModel):
    id: str
    role: str
    display_name: str
    business_program: str
    vid: bool
    restricted: bool


class ThreadUpsert(BaseModel):
    # Not strict: the ISO-8601 timestamp arrives as a JSON string.
    model_config = ConfigDict(extra="forbid")
    seller_id: HostId
    buyer_id: HostId
    subject: Annotated[str, StringConstraints(max_length=200)] = ""
    initiated_by: Literal["buyer", "seller"]
    state: Literal["open", "archived", "blocked", "closed"] = "open"
    order_placed: Annotated[bool, Field(strict=True)] = False
    last_buyer_activity_at: IsoTimestamp | None = None


class MessageIn(StrictBody):
    text: MessageText


class IntegrationMessageIn(StrictBody):
    sender_id: HostId
    text: MessageText


class MessageOut(BaseModel):
    id: str
    thread_id: str
    sender_id: str | None
    kind: str
    text: str
    flags: list[str]
    call_id: str | None
    created_at: datetime


class ThreadSummary(BaseModel):
    id: str
    subject: str
    seller: UserOut
    buyer: UserOut
    initiated_by: str
    state: str
    order_placed: bool
    last_buyer_activity_at: datetime | None
    blocked_by_buyer: bool


class ThreadDetail(ThreadSummary):
    messages: list[MessageOut]


class ThreadList(BaseModel):
    threads: list[ThreadSummary]


class ThreadOut(BaseModel):
    id: str
    seller_id: str
    buyer_id: str
    subject: str
    initiated_by: str
    state: str
    order_placed: bool
    last_buyer_activity_at: datetime | None


class ReasonOut(BaseModel):
    code: str
    message: str


class EligibilityOut(BaseModel):
    allowed: bool
    reasons: list[ReasonOut]


class BlockOut(BaseModel):
    buyer_id: str
    seller_id: str
    blocked: bool


class LoginTokenOut(BaseModel):
    token: str
    login_url: str


class Me(BaseModel):
    user: UserOut
    csrf_token: str


class ViolationOut(BaseModel):
    call_id: str
    verdict: str
    created_at: datetime
    released_at: datetime | None


class ViolationList(BaseModel):
    user_id: str
    violations: list[ViolationOut]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
