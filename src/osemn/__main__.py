"""``python -m osemn``: the same as the ``osemn`` command."""

from __future__ import annotations

from osemn.cli import main

main()
