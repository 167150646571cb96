"""The public API: ``osemn.__all__`` is sorted and complete, like httpx keeps its own."""

from __future__ import annotations

import osemn
import osemn.errors


def test_all_is_sorted_and_exists() -> None:
    assert list(osemn.__all__) == sorted(osemn.__all__)
    for name in osemn.__all__:
        assert hasattr(osemn, name), name


def test_every_public_error_is_exported() -> None:
    public_errors = {
        name
        for name, value in vars(osemn.errors).items()
        if isinstance(value, type) and issubclass(value, osemn.OsemnError)
    }
    assert public_errors <= set(osemn.__all__)


def test_errors_form_one_tree() -> None:
    for name in osemn.errors.__all__:
        assert issubclass(getattr(osemn.errors, name), osemn.OsemnError)
