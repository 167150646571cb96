"""A schema module that fails while importing, as a user's module may."""

raise RuntimeError("boom while importing")
