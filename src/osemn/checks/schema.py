"""Load the pandera schema a dataset names: a YAML file or ``package.module:Class``.

Users bring the schemas they already validate pandas frames with. Every way
loading can fail becomes a :class:`~osemn.errors.SchemaLoadError` that names
the file or reference, says why, and says what to do.

pandera silently drops a key it does not know (a misspelt check such as
``greater_thn: 0`` is simply not run), so YAML keys are checked here first.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pandera.errors
import pandera.pandas as pa
import yaml

from osemn.errors import SchemaLoadError

__all__ = ["load_schema"]

_MODEL_REF = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")

# Keys pandera's YAML reader understands besides the constructor arguments.
_SCHEMA_EXTRA_KEYS = frozenset({"schema_type", "version", "api", "dataframe_library", "multiindex"})
_COLUMN_EXTRA_KEYS = frozenset({"name", "schema_type", "version"})

# What pandera raises for a document it cannot turn into a schema.
_PANDERA_REJECTS = (
    pandera.errors.SchemaDefinitionError,
    pandera.errors.SchemaInitError,
    pandera.errors.BackendNotFoundError,
    AttributeError,  # an unregistered check name
    KeyError,
    TypeError,  # an unknown dtype, a wrong argument
    ValueError,  # an empty interval, a bad pattern
)


def load_schema(ref: str, *, base_dir: Path) -> pa.DataFrameSchema:
    """Load a pandera ``DataFrameSchema`` from a YAML file or a ``module:Class`` reference.

    :param ref: a path to a pandera YAML schema (``DataFrameSchema.to_yaml``
        format), relative to ``base_dir``; or ``package.module:ClassName`` of a
        pandera ``DataFrameModel`` (or of a ``DataFrameSchema`` object).
    :param base_dir: the folder of the config file; relative paths start there,
        and a module that is not importable from ``sys.path`` is looked up there.
    :raises SchemaLoadError: the file is missing or unreadable, the YAML does not
        parse, a key is unknown, pandera rejects the schema, the module does not
        import, the attribute is missing or is not a pandera schema.
    """
    match = _MODEL_REF.match(ref)
    if match and not ref.endswith((".yaml", ".yml")):
        return _load_model(ref, match["module"], match["attr"], base_dir)
    return _load_yaml(base_dir / ref)


def _load_yaml(path: Path) -> pa.DataFrameSchema:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaLoadError(
            "schema file not found. `schema:` is a path relative to the config "
            f"file's folder ({path.parent}), or `package.module:ClassName`.",
            path=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaLoadError(
            f"cannot read the schema file: {exc}. Point `schema:` at a readable "
            "UTF-8 pandera YAML file.",
            path=str(path),
        ) from exc
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SchemaLoadError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}. Fix the YAML syntax.",
            path=str(path),
            line=line,
        ) from exc
    if isinstance(root, yaml.MappingNode):
        _check_keys(root, path)
    try:
        return pa.DataFrameSchema.from_yaml(io.StringIO(text))
    except _PANDERA_REJECTS as exc:
        raise SchemaLoadError(
            f"pandera rejected the schema: {exc}. Write it as pandera's YAML "
            "(see DataFrameSchema.to_yaml), with registered check names.",
            path=str(path),
        ) from exc


def _check_keys(root: yaml.MappingNode, path: Path) -> None:
    """Refuse keys pandera would ignore, naming the line and what is valid."""
    schema_keys = _init_params(pa.DataFrameSchema) | _SCHEMA_EXTRA_KEYS
    column_keys = _init_params(pa.Column) | _COLUMN_EXTRA_KEYS
    for key, value in _items(root):
        if key.value not in schema_keys:
            _unknown_key(path, key, f"{key.value!r} is not a schema option", schema_keys, "")
        if key.value == "columns":
            for column, spec in _column_specs(value):
                for ckey, _ in _items(spec):
                    name = ckey.value
                    if name not in column_keys and not callable(getattr(pa.Check, name, None)):
                        _unknown_key(
                            path,
                            ckey,
                            f"{name!r} in column {column!r} is neither a column "
                            "option nor a pandera check",
                            column_keys,
                            "; checks are pandera check names such as greater_than, isin",
                        )


def _column_specs(node: yaml.Node) -> Iterator[tuple[str, yaml.MappingNode]]:
    """Each column's mapping: ``columns`` is a mapping by name or a list with ``name``."""
    if isinstance(node, yaml.MappingNode):
        for key, spec in _items(node):
            if isinstance(spec, yaml.MappingNode):
                yield str(key.value), spec
    elif isinstance(node, yaml.SequenceNode):
        for spec in node.value:
            if isinstance(spec, yaml.MappingNode):
                names = [v.value for k, v in _items(spec) if k.value == "name"]
                yield str(names[0] if names else "?"), spec


def _items(node: yaml.MappingNode) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode):
            yield key, value


def _unknown_key(
    path: Path, key: yaml.ScalarNode, what: str, valid: frozenset[str], more: str
) -> NoReturn:
    raise SchemaLoadError(
        f"{what}. Valid options: {', '.join(sorted(valid))}{more}. Fix the spelling.",
        path=str(path),
        line=key.start_mark.line + 1,
        key=str(key.value),
    )


def _init_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls).parameters)


def _load_model(ref: str, module_name: str, attr: str, base_dir: Path) -> pa.DataFrameSchema:
    module = _import(ref, module_name, base_dir)
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            raise SchemaLoadError(
                f"schema {ref!r}: module {module_name!r} has no attribute {attr!r}; "
                f"it has: {', '.join(public) or 'nothing public'}. Fix the name after the colon."
            ) from None
    if isinstance(obj, pa.DataFrameSchema):
        return obj
    if not (isinstance(obj, type) and issubclass(obj, pa.DataFrameModel)):
        raise SchemaLoadError(
            f"schema {ref!r}: {attr!r} is a {type(obj).__name__}, not a pandera "
            "DataFrameModel. Point it at a class deriving from "
            "pandera.pandas.DataFrameModel (or at a DataFrameSchema object)."
        )
    try:
        return obj.to_schema()
    except _PANDERA_REJECTS as exc:
        raise SchemaLoadError(
            f"schema {ref!r}: pandera rejected the model: {exc}. Fix the model's fields."
        ) from exc


def _import(ref: str, module_name: str, base_dir: Path) -> object:
    """Import ``module_name``, also from ``base_dir``, which stays off ``sys.path`` after."""
    folder = str(base_dir.resolve())
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SchemaLoadError(
            f"schema {ref!r}: module {module_name!r} is not importable ({exc}). "
            f"Install the package that holds it, or put it under {folder}."
        ) from exc
    except Exception as exc:  # the user's module raised while importing
        raise SchemaLoadError(
            f"schema {ref!r}: importing module {module_name!r} failed: {exc!r}. "
            "Fix the module so that it imports."
        ) from exc
    finally:
        if added:
            sys.path.remove(folder)
