"""Query and form parameters of the pages, validated the way the API validates its own (pydantic).

Every value a page reads from the URL or a form passes through one of these models first, so that a
hostile value (a NUL byte Postgres refuses, a date past the calendar's end, ``nan``) is answered with
400 and a sentence a person understands, never a 500 from deep inside a query.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated

from flask import request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.model.labels import LABELS
from web.errors import ApiError
from web.queries import MAX_PAGE

# Dates a history can hold: the service did not exist before 2000, and a day after 9998 would overflow.
FIRST_DATE, LAST_DATE = dt.date(2000, 1, 1), dt.date(9998, 12, 31)
MODEL_VERSION = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")


def _no_control_characters(text: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("it must not contain control characters")
    return text.strip()


def _blank_is_none(value):
    return None if isinstance(value, str) and not value.strip() else value


def _page_number(value) -> int:
    """Like the API: a page past the end is the last page's business, a page below 1 is page 1."""
    if value in (None, ""):
        return 1
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError("it must be a whole number like 2") from None
    return min(max(1, number), MAX_PAGE)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("it must be a finite number")
    return value


Text = Annotated[str, AfterValidator(_no_control_characters)]
Page = Annotated[int, BeforeValidator(_page_number)]
Days = Annotated[float, AfterValidator(_finite), Field(ge=1, le=3650)]
Date = Annotated[dt.date, Field(ge=FIRST_DATE, le=LAST_DATE)]
Day = Annotated[Date | None, BeforeValidator(_blank_is_none)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)


class HistoryParams(_Params):
    page: Page = 1
    q: Text = ""
    finding: Annotated[str, AfterValidator(lambda v: _one_of(v, ("", *LABELS)))] = ""
    date_from: Day = Field(default=None, alias="from")
    date_to: Day = Field(default=None, alias="to")


class BatchParams(_Params):
    """The batch page's rows: a page, a text in the file name, a status, a finding, the least top probability
    (percent) and the sort."""
    page: Page = 1
    q: Text = ""
    status: Annotated[str, AfterValidator(lambda v: _one_of(v, ("", "queued", "running", "succeeded", "failed")))] = ""
    finding: Annotated[str, AfterValidator(lambda v: _one_of(v, ("", *LABELS)))] = ""
    min: Annotated[float | None, BeforeValidator(_blank_is_none), AfterValidator(lambda v: v if v is None else _finite(v)),
                   Field(ge=0, le=100)] = None
    sort: Annotated[str, AfterValidator(lambda v: _one_of(v, ("", "position", "top", "status")))] = ""


class AuditParams(_Params):
    page: Page = 1
    since: Day = None
    action: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    actor: Annotated[Text | None, BeforeValidator(_blank_is_none)] = None
    format: Annotated[str, AfterValidator(lambda v: _one_of(v, ("", "html", "csv")))] = ""


class TokenForm(_Params):
    name: Annotated[Text, Field(max_length=100)] = ""
    days: Annotated[Days | None, BeforeValidator(_blank_is_none)] = None


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        shown = ", ".join(a for a in allowed if a)
        raise ValueError(f"it must be one of: {shown}" if len(allowed) < 10 else "it is not one of the choices offered")
    return value


def _sentence(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False):
        name = ".".join(str(p) for p in problem["loc"]) or "the input"
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"'{name}' {message[0].lower()}{message[1:]}" if message else f"'{name}' is not valid")
    return "; ".join(parts)


def parse(model: type[_Params], source=None) -> _Params:
    """The request's query string (or ``source``, e.g. request.form) as ``model``, or 400 saying what is wrong."""
    values = (request.args if source is None else source).to_dict()
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(400, f"the address or form has a value this page cannot use: {_sentence(exc)}") from None


def model_version(version: str) -> str:
    """A model version in a URL: letters, digits and . _ : - (a content hash or a name), else 404."""
    if not MODEL_VERSION.match(version or ""):
        raise ApiError(404, "there is no such model version")
    return version
