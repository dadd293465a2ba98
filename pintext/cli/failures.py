"""How a serving command fails: the Python API's `PinTextError`s (and any engine failure it did not see) as one
`error:` line and the exit code that says whose fault it was; never a traceback, never a credential."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pintext.cli.errors import USAGE, fail, fail_with

# How a command's arguments are named in messages (an option's own name otherwise: --filter-json).
ARGUMENT_NAMES = {"text": "the query text", "pin_id": "the pin id", "filters": "--filter"}


def not_utf8_argument(kwargs: dict) -> str | None:
    """The one line for a text argument or option that is not valid UTF-8, else None. A shell hands Python the
    bytes it cannot decode as lone surrogates (`pintext search $'\\xff'` gives '\\udcff'): no engine, tokenizer or
    JSON encoder takes them (the tokenizer raised a TypeError)."""
    for name, value in kwargs.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                char = ord(item[error.start])
                what = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"lone surrogate U+{char:04X}"
                shown_name = ARGUMENT_NAMES.get(name, "--" + name.replace("_", "-"))
                return (f"{shown_name} is not valid UTF-8 ({what} at character {error.start + 1}): give it as UTF-8 "
                        "text")
    return None


def reports_serving_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Wrap a serving command: a bad argument, a `PinTextError` or an engine failure is one clear line."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from pintext.api.failures import Reach, translate
        from pintext.errors import PinTextError

        undecodable = not_utf8_argument(kwargs)
        if undecodable:
            fail(undecodable, USAGE)
        try:
            command(*args, **kwargs)
        except PinTextError as error:
            fail_with(error)
        except Exception as error:
            ours = translate(error, Reach(kwargs.get("url"), kwargs.get("user"), kwargs.get("password"),
                                          kwargs.get("timeout"), bool(kwargs.get("filter_json"))))
            if ours is None:
                raise
            fail_with(ours)

    return wrapper
