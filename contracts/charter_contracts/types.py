"""Constrained field types shared by every contract model.

Strict where networks could otherwise slip something past us: ids are non-empty strings
(no numbers coerced to strings), timestamps are RFC 3339 with an offset and are
normalised to UTC so that every consumer compares like with like.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints

#: Event, case and counter ids: printable, no surrounding blanks, bounded.
Identifier = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=128, pattern=r"^\S(.*\S)?$"),
]
#: A site id is unique across networks; it is also the Kafka key of every event.
SiteId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"),
]
#: A network code such as ``caf``, ``cpam`` or ``france-services``; it names raw topics.
NetworkCode = Annotated[str, StringConstraints(strict=True, min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9-]+$")]
#: Procedure slug such as ``rsa`` or ``carte-grise``.
ProcedureCode = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$"),
]
#: French department code: 01-95 (no 20), 2A, 2B, overseas departments and collectivities.
DEPARTMENT_PATTERN = r"^(0[1-9]|1[0-9]|2[1-9]|[3-8][0-9]|9[0-5]|2A|2B|97[1-8]|98[4-8])$"
DepartmentCode = Annotated[str, StringConstraints(strict=True, pattern=DEPARTMENT_PATTERN)]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_only(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2024-03-01T09:00:00+01:00")
        return value
    raise ValueError("must be an RFC 3339 timestamp string")


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: An instant: RFC 3339 with offset in, UTC inside.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_to_utc)]
