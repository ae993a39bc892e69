"""Plan-like files (plans, scenarios) read as data with the line of every field, within bounds.

Every file is bounded before it is believed: its size, its nesting, what its YAML aliases expand
to. A key written twice is refused (YAML and HCL both keep the last silently). Every way a file can
be wrong is a PlanError naming its line, never a crash and never a long wait.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from console.plan.problems import Path_, PlanError, Problem, field_name

HCL_SUFFIXES = {".hcl", ".tf"}
# HCL writes a repeated block once per item: `stage { }` twice is the list `stages`.
HCL_LIST_BLOCKS = {"stage": "stages", "flag": "flags", "preflight": "preflight", "notify": "notify"}

MAX_BYTES = 1 << 20
"""A plan or scenario is a few kilobytes; 1 MiB is far beyond any written by hand."""
MAX_HCL_BYTES = 64 << 10
"""HCL's parser (python-hcl2 on lark) reads some 30 KB/s: 64 KiB, forty times the sample HCL plan, in about 2 s;
1 MiB would take half a minute."""
MAX_DEPTH = 32
"""Levels of nesting; a plan needs 5. Bounded so neither the parsers nor the validation recurse without end."""
ALIAS_BUDGET = 10_000
"""Nodes YAML aliases may repeat. Reusing a criteria block in every stage repeats a few dozen; a
"billion laughs" of nested aliases would repeat billions."""
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 20x faster


class Document:
    """The parsed data of a plan-like file and where each of its fields stands in the text."""

    def __init__(self, source: str, data: Any, lines: dict[Path_, int]):
        self.source, self.data, self.lines = source, data, lines

    def line(self, path: Path_) -> int:
        for length in range(len(path), 0, -1):
            if path[:length] in self.lines:
                return self.lines[path[:length]]
        return 1

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(self.source, self.line(path), field_name(path), message)


def read_document(path: str | Path) -> Document:
    """A plan-like file (YAML, or HCL by its suffix) parsed, with its lines; PlanError when it cannot be."""
    source = str(path)
    hcl = Path(path).suffix.lower() in HCL_SUFFIXES
    try:
        with open(path, "rb") as file:
            raw = file.read(_size_limit(hcl) + 1)  # a bigger file (or /dev/zero) is refused, not read whole
    except IsADirectoryError:
        raise PlanError([Problem(source, 1, "", "is a directory, not a plan file")]) from None
    except OSError as error:
        raise PlanError([Problem(source, 1, "", f"cannot read: {error.strerror or error}")]) from None
    return parse_document(source, raw, hcl)


def parse_document(source: str, raw: bytes, hcl: bool) -> Document:
    limit = _size_limit(hcl)
    if len(raw) > limit:
        kind = "an HCL plan" if hcl else "a plan or scenario"
        raise PlanError([Problem(source, 1, "", f"larger than {limit >> 10} KiB, the most {kind} may be")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise PlanError([Problem(source, line, "", "not a text file: it is not UTF-8")]) from None
    if "\x00" in text:
        raise PlanError([Problem(source, text[: text.index("\x00")].count("\n") + 1, "", "not a text file: it holds NUL bytes")])
    if not text.strip():
        raise PlanError([Problem(source, 1, "", "the plan is empty: it needs at least app and image")])
    with collector_paused():
        document = _read_hcl(source, text) if hcl else _read_yaml(source, text)
    if not isinstance(document.data, dict):
        raise PlanError([Problem(source, 1, "", "a plan is a mapping of fields (app, image, stages, ...)")])
    return document


def _size_limit(hcl: bool) -> int:
    return MAX_HCL_BYTES if hcl else MAX_BYTES


@contextmanager
def collector_paused() -> Iterator[None]:
    """Reading a plan makes hundreds of thousands of small objects and no garbage: the cyclic collector's
    passes over them cost more than the work itself (a 1 MiB plan: 3 s with them, 0.6 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _nested_too_deeply(source: str, line: int, path: Path_) -> PlanError:
    return PlanError([Problem(source, line, field_name(path), f"nested more than {MAX_DEPTH} levels deep")])


# -- YAML ---------------------------------------------------------------------------------------


def _read_yaml(source: str, text: str) -> Document:
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        lines = _yaml_lines(source, node)  # bounds the document before anything expands it
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        raise PlanError([Problem(source, line, "", f"not valid YAML: {error.problem or error}")]) from None
    except yaml.YAMLError as error:
        raise PlanError([Problem(source, 1, "", f"not valid YAML: {error}")]) from None
    except RecursionError:  # the pure-Python parser, without libyaml's own limit on nesting
        raise _nested_too_deeply(source, 1, ()) from None
    finally:
        loader.dispose()
    return Document(source, data, lines)


def _yaml_lines(source: str, root: yaml.Node | None) -> dict[Path_, int]:
    """The line of every field, walking the node graph as the data will expand it; PlanError when that
    expansion is unbounded (an alias inside itself, aliases that repeat too much, nesting too deep) or a
    mapping has a key twice.

    Walked with a stack, not recursion, and each node's repetitions counted: an alias is the same node
    object met again.
    """
    lines: dict[Path_, int] = {}
    duplicates: list[Problem] = []
    visited: set[int] = set()
    holding: set[int] = set()
    """The nodes on the way down to the current one: meeting one of them again is a loop."""
    repeated = 0
    stack: list[tuple[yaml.Node, Path_, bool] | int] = [] if root is None else [(root, (), False)]
    while stack:
        item = stack.pop()
        if isinstance(item, int):  # every child of that node walked
            holding.discard(item)
            continue
        node, path, merged = item
        line = node.start_mark.line + 1
        if id(node) in holding:
            raise PlanError([Problem(source, line, field_name(path), "an alias refers to a node that holds it: the document would never end")])
        first = id(node) not in visited
        if first:
            visited.add(id(node))
        else:
            repeated += 1
            if repeated > ALIAS_BUDGET:
                raise PlanError([Problem(source, line, field_name(path), f"aliases repeat more than {ALIAS_BUDGET} nodes; write the plan out instead")])
        if len(path) > MAX_DEPTH:
            raise _nested_too_deeply(source, line, path)
        if isinstance(node, yaml.ScalarNode):
            continue
        children: list[tuple[yaml.Node, Path_, bool]] = []
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                _set_line(lines, (*path, index), child.start_mark.line + 1, merged)
                children.append((child, (*path, index), merged))
        else:
            keys: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:  # `<<: *defaults`: the keys merged in, where the anchor has them
                    merged_nodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    children += [(merged_node, path, True) for merged_node in merged_nodes]
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    raise PlanError([Problem(source, key_line, field_name(path), "a key is a name, not a list or a mapping")])
                key_path = (*path, key_node.value)
                if first and (key_node.tag, key_node.value) in keys:
                    earlier = keys[(key_node.tag, key_node.value)]
                    duplicates.append(Problem(source, key_line, field_name(key_path), f"written twice, on lines {earlier} and {key_line}: keep one"))
                keys.setdefault((key_node.tag, key_node.value), key_line)
                _set_line(lines, key_path, key_line, merged)
                children.append((value_node, key_path, merged))
        holding.add(id(node))
        stack.append(id(node))
        stack.extend(reversed(children))
    if duplicates:
        raise PlanError(sorted(duplicates, key=lambda problem: problem.line))
    return lines


def _set_line(lines: dict[Path_, int], path: Path_, line: int, merged: bool) -> None:
    """A key written in a mapping wins over the same key merged into it (`<<`), as it does in the data."""
    if merged:
        lines.setdefault(path, line)
    else:
        lines[path] = line


# -- HCL ----------------------------------------------------------------------------------------


def _read_hcl(source: str, text: str) -> Document:
    import hcl2
    from hcl2 import SerializationOptions

    try:
        tree = hcl2.parses_to_tree(text)
    except Exception as error:  # lark raises many kinds; each is a syntax error here
        match = re.search(r"line (\d+)", str(error))
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PlanError([Problem(source, int(match.group(1)) if match else 1, "", f"not valid HCL: {first}")]) from None
    lines = _hcl_lines(source, tree)
    options = SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=True)
    try:
        raw = hcl2.serialize(hcl2.transform(tree), serialization_options=options)
    except RecursionError:  # expressions in parentheses within parentheses, past what the transform recurses through
        raise _nested_too_deeply(source, 1, ()) from None
    except Exception as error:  # an expression the serializer does not take
        raise PlanError([Problem(source, 1, "", f"not valid HCL: {error}")]) from None
    data = {HCL_LIST_BLOCKS.get(key, key): value for key, value in _unblock(raw).items()}
    return Document(source, data, lines)


def _unblock(value: Any, key: str | None = None) -> Any:
    """HCL blocks as the same shapes YAML gives: repeated blocks a list, a single block a mapping."""
    if isinstance(value, dict):
        return {k: _unblock(v, k) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        items = [_unblock(item) for item in value]
        is_blocks = bool(value) and all(isinstance(item, dict) and item.get("__is_block__") for item in value)
        if is_blocks and key not in HCL_LIST_BLOCKS and len(items) == 1:
            return items[0]
        return items
    return value


def _hcl_lines(source: str, tree: Any) -> dict[Path_, int]:
    """The line of every field in HCL's parse tree, by the paths `_unblock` gives the data; PlanError for
    a name set twice in one body or object (HCL keeps the last) or nesting too deep."""
    from lark import Tree

    lines: dict[Path_, int] = {}
    duplicates: list[Problem] = []
    stack: list[tuple[Any, Path_]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise _nested_too_deeply(source, getattr(node.meta, "line", 1), path)
        children = [child for child in node.children if isinstance(child, Tree)]
        if node.data == "tuple":
            for index, child in enumerate(children):
                lines[(*path, index)] = child.meta.line
                stack.append((child, (*path, index)))
            continue
        if node.data not in ("body", "object"):
            stack += [(child, path) for child in children]
            continue
        first_lines: dict[str, int] = {}
        blocks: dict[str, int] = {}
        for child in children:
            if child.data not in ("attribute", "block", "object_elem"):
                continue
            name, *labels = [_hcl_key(part) for part in child.children if isinstance(part, Tree) and part.data not in ("body", "expr_term")]
            line = child.meta.line
            if child.data == "block" and name in HCL_LIST_BLOCKS:
                key = name if path else HCL_LIST_BLOCKS[name]
                index = blocks[key] = blocks.get(key, -1) + 1
                key_path: Path_ = (*path, key, index, *labels)
                if index == 0:  # the blocks are one list: only another field of that name is set twice
                    _claim(first_lines, key, line, (*path, key), source, duplicates)
            else:
                key_path = (*path, name, *labels)
                _claim(first_lines, name, line, key_path, source, duplicates)
            lines[key_path] = line
            stack += [(part, key_path) for part in child.children if isinstance(part, Tree) and part.data in ("body", "expr_term")]
    if duplicates:
        raise PlanError(sorted(duplicates, key=lambda problem: problem.line))
    return lines


def _claim(first_lines: dict[str, int], key: str, line: int, path: Path_, source: str, duplicates: list[Problem]) -> None:
    """Note that `key` is set on `line`; a second setting is a problem naming both lines."""
    if key in first_lines:
        duplicates.append(Problem(source, line, field_name(path), f"written twice, on lines {first_lines[key]} and {line}: keep one"))
    else:
        first_lines[key] = line


def _hcl_key(node: Any) -> str:
    """A name as HCL's serializer writes it: an identifier, or a quoted string without its quotes."""
    from lark import Token, Tree

    parts, stack = [], [node]
    while stack:  # in text order, without recursion (a key in a thousand parentheses is still a key)
        item = stack.pop()
        if isinstance(item, Tree):
            stack += reversed(item.children)
        elif isinstance(item, Token) and item.type not in ("DBLQUOTE", "LPAR", "RPAR"):
            parts.append(str(item))
    return "".join(parts)
