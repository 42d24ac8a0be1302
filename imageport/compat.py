"""What the agent needs from Python 3.10+/3.11+, for the interpreters a stock CE image has (3.9 to 3.13).

The agent runs under the CE's own python3 (docs/architecture.md, "The agent
bundle"), so every module it imports keeps to what 3.9 offers; the few newer
names it uses come from here. On 3.11+ they are the standard library's own.
"""

from __future__ import annotations

import sys
from datetime import timezone
from enum import Enum
from typing import Any

if sys.version_info >= (3, 11):  # noqa: UP036 (the agent runs on 3.9 and 3.10 too)
    from datetime import UTC
    from enum import StrEnum
else:
    UTC = timezone.utc  # noqa: UP017 (datetime.UTC is 3.11+)

    class StrEnum(str, Enum):  # noqa: UP042 (enum.StrEnum is 3.11+)
        """``enum.StrEnum`` of 3.11: members are strings and print as their value."""

        def __str__(self) -> str:
            return str(self.value)


# ``@dataclass(**SLOTS)``: ``slots=`` is 3.10+; without it the class only lacks __slots__.
SLOTS: dict[str, Any] = {"slots": True} if sys.version_info >= (3, 10) else {}

__all__ = ["SLOTS", "UTC", "StrEnum"]
