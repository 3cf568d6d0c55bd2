"""Reading a settings file (a run's ``--config``, a sweep spec): YAML or JSON that may come from anyone.

The file is read only up to MAX_BYTES, must be UTF-8, and is parsed by PyYAML's safe loader (the C one,
libyaml, when PyYAML was built with it). What YAML allows but a settings file never needs, and what could
make a small file cost minutes or gigabytes, is refused with the line it is on: aliases (``*name``, which
can expand a few hundred bytes into billions of values), nesting deeper than MAX_DEPTH, and a key given
twice in one mapping (YAML would silently keep the last).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rethinkgen.errors import RethinkgenError, shown

MAX_BYTES = 1 << 20  # 1 MiB: a settings file holds a few dozen lines
MAX_DEPTH = 32       # a spec nests three levels (axes: {key: [values]}); a config two

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    """Something the file holds that a settings file may not, with its line number."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")


class _StrictLoader(_BASE_LOADER):
    """The safe loader, refusing aliases, deep nesting and duplicate keys."""

    def construct_document(self, node):
        _check_tree(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # the constructor refuses unhashable keys itself
            key = self.construct_object(key_node)
            if key in seen:
                raise _Refused(key_node.start_mark.line + 1,
                               f"key {shown(key)} is given twice (first on line {seen[key]}); give it once")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _check_tree(root) -> None:
    """Refuse aliases (a node reached twice) and nesting deeper than MAX_DEPTH, without recursion."""
    seen, stack = set(), [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise _Refused(node.start_mark.line + 1, "this value is used again through an alias (*name); "
                                                     "aliases are not allowed, write the value out")
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _Refused(node.start_mark.line + 1, f"values nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)


def read_mapping(path: str | Path, what: str) -> dict:
    """The mapping held by the YAML or JSON file ``path`` (JSON is YAML); ``what`` names the file in errors
    ("config file", "sweep spec"). An empty file is an empty mapping. Raises RethinkgenError naming the file
    and what is wrong with it."""
    path = Path(path)
    try:
        if path.is_dir():
            raise RethinkgenError(f"{what} {path} is a folder, not a file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise RethinkgenError(f"cannot read {what} {path}: {error.strerror}") from None
    if len(raw) > MAX_BYTES:
        size = path.stat().st_size
        raise RethinkgenError(f"{what} {path} is {size:,} bytes; the limit is {MAX_BYTES:,} bytes (1 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise RethinkgenError(f"{what} {path} is not UTF-8 text: byte 0x{raw[error.start]:02x} on line {line}; "
                              "save it as UTF-8") from None
    try:
        values = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    except _Refused as refused:
        raise RethinkgenError(f"{what} {path}, {refused}") from None
    except yaml.YAMLError as error:
        raise RethinkgenError(f"{what} {path} is not valid YAML/JSON: {_yaml_problem(error)}") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts (4,300)
        raise RethinkgenError(f"{what} {path} is not valid YAML/JSON: {str(error).split(';')[0]}") from None
    except RecursionError:  # the pure-Python parser, on nesting deeper than the interpreter's stack
        raise RethinkgenError(f"{what} {path} nests values more than {MAX_DEPTH} levels deep") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RethinkgenError(f"{what} {path} must hold a mapping, got {type(values).__name__}")
    return values


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's reason on one line, with the line it is on."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem
