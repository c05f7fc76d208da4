"""Settings errors in the words of the command line: the option that set the bad value."""

from __future__ import annotations

import contextlib
from typing import Iterator

from coseg.errors import InputError
from coseg.settings import SettingError


@contextlib.contextmanager
def named_options(options: dict[str, str]) -> Iterator[None]:
    """Re-raise a `SettingError` raised inside as one line naming the command-line option.

    Args:
        options: setting name -> the option that set it ("iterations" -> "--seg-iterations");
            a setting not listed keeps the settings message.
    """
    try:
        yield
    except SettingError as e:
        option = options.get(e.setting)
        if option is None:
            raise
        value = e.value if not isinstance(e.value, str) else repr(e.value)
        raise InputError(f"{option} {value}: {e.problem}") from None
