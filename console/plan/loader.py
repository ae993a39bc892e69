"""Reading plans from YAML or HCL, with every problem reported as PATH:LINE: field: message."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from console.plan import defaults
from console.plan.checks import Check, parse_check
from console.plan.model import (
    FlagStep,
    PlanSpec,
    RolloutPlan,
    Stage,
    StageSpec,
    Trigger,
    TriggerSpec,
)
from console.units import UnitError, parse_duration

HCL_SUFFIXES = {".hcl", ".tf"}
# HCL writes a repeated block once per item: `stage { }` twice is the list `stages`.
HCL_LIST_BLOCKS = {"stage": "stages", "flag": "flags", "preflight": "preflight", "notify": "notify"}
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan, where it is and what to do about it."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.source}:{self.line}: {where}{self.message}"


class PlanError(Exception):
    """A plan that cannot be run; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def field_name(path: Path_) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


class _Document:
    """The parsed data of a plan and where each of its fields stands in the text."""

    def __init__(self, source: str, text: str, data: Any, lines: dict[Path_, int], hcl: bool):
        self.source, self.text, self.data, self._lines, self._hcl = source, text, data, lines, hcl

    def line(self, path: Path_) -> int:
        for length in range(len(path), 0, -1):
            if path[:length] in self._lines:
                return self._lines[path[:length]]
        if self._hcl:
            return _hcl_line(self.text, path)
        return 1

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(self.source, self.line(path), field_name(path), message)


def _yaml_lines(node: yaml.Node | None, path: Path_ = (), lines: dict[Path_, int] | None = None) -> dict[Path_, int]:
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            lines[key_path] = key_node.start_mark.line + 1
            _yaml_lines(value_node, key_path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _yaml_lines(item, (*path, index), lines)
    return lines


def _hcl_line(text: str, path: Path_) -> int:
    """Where a field stands in HCL text, found by walking its blocks and keys in order."""
    plural_to_block = {plural: block for block, plural in HCL_LIST_BLOCKS.items()}
    text_lines = text.splitlines()
    position, found = 0, 1
    for index, part in enumerate(path):
        if isinstance(part, int):
            block = plural_to_block.get(str(path[index - 1]), "") if index else ""
            pattern = re.compile(rf"^\s*{re.escape(block)}\s*\{{")
            hits = [n for n in range(position, len(text_lines)) if pattern.match(text_lines[n])]
            if part < len(hits):
                position = hits[part]
                found = position + 1
            continue
        if str(part) in plural_to_block:
            continue
        pattern = re.compile(rf"^\s*\"?{re.escape(str(part))}\"?\s*[={{:]")
        for number in range(position, len(text_lines)):
            if pattern.match(text_lines[number]):
                position, found = number, number + 1
                break
    return found


def _read_yaml(source: str, text: str) -> _Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        raise PlanError([Problem(source, line, "", f"not valid YAML: {error.problem or error}")]) from None
    except yaml.YAMLError as error:
        raise PlanError([Problem(source, 1, "", f"not valid YAML: {error}")]) from None
    return _Document(source, text, data, _yaml_lines(node), hcl=False)


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


def _read_hcl(source: str, text: str) -> _Document:
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=True)
    try:
        raw = hcl2.loads(text, serialization_options=options)
    except Exception as error:  # lark raises many kinds; each is a syntax error here
        match = re.search(r"line (\d+)", str(error))
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PlanError([Problem(source, int(match.group(1)) if match else 1, "", f"not valid HCL: {first}")]) from None
    data = {HCL_LIST_BLOCKS.get(key, key): value for key, value in _unblock(raw).items()}
    return _Document(source, text, data, {}, hcl=True)


def read_document(path: str | Path) -> _Document:
    """A plan-like file (YAML, or HCL by its suffix) parsed, with its lines; PlanError when it cannot be."""
    source = str(path)
    file = Path(path)
    try:
        raw = file.read_bytes()
    except IsADirectoryError:
        raise PlanError([Problem(source, 1, "", "is a directory, not a plan file")]) from None
    except OSError as error:
        raise PlanError([Problem(source, 1, "", f"cannot read: {error.strerror or error}")]) from None
    return parse_document(source, raw, hcl=file.suffix.lower() in HCL_SUFFIXES)


def parse_document(source: str, raw: bytes, hcl: bool) -> _Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise PlanError([Problem(source, line, "", "not a text file: it is not UTF-8")]) from None
    if "\x00" in text:
        raise PlanError([Problem(source, text[: text.index("\x00")].count("\n") + 1, "", "not a text file: it holds NUL bytes")])
    if not text.strip():
        raise PlanError([Problem(source, 1, "", "the plan is empty: it needs at least app and image")])
    document = _read_hcl(source, text) if hcl else _read_yaml(source, text)
    if not isinstance(document.data, dict):
        raise PlanError([Problem(source, 1, "", "a plan is a mapping of fields (app, image, stages, ...)")])
    return document


def _model_at(root: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The model whose fields are allowed at a path of the document, for "did you mean"."""
    model: Any = root
    for part in path:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _nested_model(info.annotation)
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _data_path(data: Any, loc: tuple[str | int, ...]) -> Path_:
    """The part of pydantic's location that names places in the data (union member tags left out)."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif index < len(loc) - 1 or not isinstance(current, dict):
            continue  # a union member's tag, like "str" or "TargetSpec"
        path.append(part)
    return tuple(path)


def structure_problems(document: _Document, error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Pydantic's errors as problems at their lines, unknown fields with a "did you mean"."""
    problems = []
    for item in error.errors():
        path = _data_path(document.data, item["loc"])
        if item["type"] == "extra_forbidden":
            model = _model_at(root, path[:-1])
            choices = list(model.model_fields) if model else []
            message = f"unknown field{_suggest(str(path[-1]), choices)}"
        elif item["type"] == "missing":
            message = "is required"
        else:
            message = re.sub(r" or instance of \w+$", "", item["msg"].removeprefix("Value error, "))
        problems.append(document.problem(path, message))
    return problems


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Short forms people write, turned into the long form the model checks."""
    data = dict(data)
    if isinstance(data.get("target"), str):
        data["target"] = {"kind": data["target"]}
    stages = data.get("stages")
    if isinstance(stages, list):
        data["stages"] = [_normalise_stage(stage) for stage in stages]
    triggers = data.get("triggers")
    if isinstance(triggers, dict):
        data["triggers"] = {
            severity: {m: ({"when": t} if isinstance(t, str) else t) for m, t in entries.items()}
            if isinstance(entries, dict)
            else entries
            for severity, entries in triggers.items()
        }
    return data


def _normalise_stage(stage: Any) -> Any:
    """A criterion written as one check is a list of one."""
    if not isinstance(stage, dict) or not isinstance(stage.get("criteria"), dict):
        return stage
    criteria = {metric: checks if isinstance(checks, list) else [checks] for metric, checks in stage["criteria"].items()}
    return {**stage, "criteria": criteria}


class _Compiler:
    """The semantic checks the structure cannot express, then the plan with defaults applied."""

    def __init__(self, document: _Document, spec: PlanSpec):
        self.document, self.spec = document, spec
        self.problems: list[Problem] = []
        self.known_metrics = sorted(defaults.BUILTIN_METRICS | set(spec.metrics.queries))
        self.provider = spec.metrics.provider or ("sim" if spec.target.kind == "sim" else "prometheus")
        builtin = defaults.BUILTIN_METRICS if self.provider == "sim" else defaults.PROMETHEUS_METRICS
        if spec.target.kind == "kubernetes":
            builtin = builtin | defaults.POD_HEALTH_METRICS  # read from the pods by the target
        self.provided = builtin | set(spec.metrics.queries)

    def fail(self, path: Path_, message: str) -> None:
        self.problems.append(self.document.problem(path, message))

    def metric_known(self, path: Path_, metric: str, written: bool) -> bool:
        """Whether the provider gives this metric; a default on a metric it lacks is left out quietly."""
        if metric in self.provided:
            return True
        if not written:
            return False
        if metric in self.known_metrics:
            self.fail(path, f"metric {metric!r} has no built-in {self.provider} query: add metrics.queries.{metric}")
            return False
        hint = _suggest(metric, self.known_metrics) or " (define it under metrics.queries)"
        self.fail(path, f"metric {metric!r} is not defined by any provider{hint}")
        return False

    def checks(self, path: Path_, criteria: dict[str, Any], written: bool = True) -> tuple[Check, ...]:
        compiled = []
        for metric, texts in criteria.items():
            if not self.metric_known((*path, metric), metric, written):
                continue
            for text in texts if isinstance(texts, list) else [texts]:
                try:
                    compiled.append(parse_check(metric, text))
                except UnitError as error:
                    self.fail((*path, metric), str(error))
        return tuple(compiled)

    def stages(self) -> tuple[Stage, ...]:
        written = self.spec.stages is not None
        specs = self.spec.stages if written else [StageSpec(**_normalise_stage(stage)) for stage in defaults.STAGES_BY_STRATEGY[self.spec.strategy]]
        if written and not specs:
            self.fail(("stages",), "a plan needs at least one stage (leave stages out for the defaults)")
        previous = -1
        stages = []
        for index, spec in enumerate(specs):
            path: Path_ = ("stages", index)
            if not 0 <= spec.weight <= 100:
                self.fail((*path, "weight"), f"a weight is a percentage from 0 to 100, got {spec.weight}")
            elif spec.weight <= previous:
                self.fail((*path, "weight"), f"weights must increase from stage to stage: {spec.weight} follows {previous}")
            elif previous == 100:
                self.fail((*path, "weight"), "no stage can follow the 100% stage")
            elif self.spec.target.kind == "kubernetes" and (problem := defaults.kubernetes_weight_problem(self.spec.strategy, spec.weight)):
                self.fail((*path, "weight"), problem)
            previous = max(previous, spec.weight)
            written_criteria = written and spec.criteria is not None
            criteria = spec.criteria if spec.criteria is not None else defaults.criteria_for_weight(spec.weight)
            checks = self.checks((*path, "criteria"), criteria, written_criteria)
            stages.append(Stage(index, spec.name or f"stage {index + 1}", spec.weight, spec.observe, checks, manual=spec.manual))
        if stages and stages[-1].weight < 100:
            observe = parse_duration(defaults.MONITORING_OBSERVE)
            stages.append(Stage(len(stages), "monitoring", 100, observe, self.checks((), defaults.POST_DEPLOY, written=False)))
        return tuple(stages)

    def flag_steps(self, first_index: int) -> tuple[Stage, ...]:
        """Each flag's enablement schedule as stages after promotion, judged by the post-deploy targets."""
        steps: list[Stage] = []
        for flag_index, flag in enumerate(self.spec.flags):
            users: tuple[str, ...] = ()
            previous = 0
            for step_index, step in enumerate(flag.schedule or ()):
                path: Path_ = ("flags", flag_index, "schedule", step_index)
                if step == "internal":
                    if not flag.internal_users:
                        self.fail(path, "an internal step needs internal_users")
                    users, label, percentage = tuple(flag.internal_users), "internal users", previous
                elif not previous < step <= 100:
                    self.fail(path, f"enablement steps must rise to at most 100%: {step} follows {previous}")
                    continue
                else:
                    percentage, label = step, f"{step}%"
                previous = percentage
                checks = self.checks((), defaults.POST_DEPLOY, written=False)
                step_spec = FlagStep(flag.name, percentage, users)
                steps.append(Stage(first_index + len(steps), f"{flag.name}: {label}", 100, flag.step_observe, checks, step_spec))
        return tuple(steps)

    def triggers(self) -> tuple[Trigger, ...]:
        triggers = []
        for severity, base in (("critical", defaults.CRITICAL), ("warning", defaults.WARNING)):
            merged: dict[str, TriggerSpec | None] = {m: TriggerSpec(when=t, consecutive=defaults.CONSECUTIVE[severity]) for m, t in base.items()}
            written = getattr(self.spec.triggers, severity)
            merged.update(written)
            for metric, trigger in merged.items():
                path: Path_ = ("triggers", severity, metric)
                if trigger is None or not self.metric_known(path, metric, metric in written):
                    continue
                try:
                    consecutive = trigger.consecutive or defaults.CONSECUTIVE[severity]
                    triggers.append(Trigger(severity, parse_check(metric, trigger.when, consecutive)))
                except UnitError as error:
                    self.fail((*path, "when") if path in self.document._lines or self.document._hcl else path, str(error))
        return tuple(triggers)

    def preflight(self) -> None:
        needs = {"command": "argv", "http": "url", "file": "path", "prometheus": "query", "terraform": "dir"}
        seen: set[str] = set()
        for index, item in enumerate(self.spec.preflight):
            required_field = needs.get(item.kind)
            if required_field and not getattr(item, required_field):
                self.fail(("preflight", index, required_field), f"a {item.kind} check needs {required_field}")
            if item.name in seen:
                self.fail(("preflight", index, "name"), f"another pre-flight item is already named {item.name!r}")
            seen.add(item.name)

    def compile(self) -> RolloutPlan:
        spec = self.spec
        if not 1 <= spec.interval <= 600:
            self.fail(("interval",), "the sample interval must be between 1s and 10m")
        stages, triggers = self.stages(), self.triggers()
        stages += self.flag_steps(len(stages))
        self.preflight()
        flag_names = [flag.name for flag in spec.flags]
        for index, name in enumerate(flag_names):
            if flag_names.index(name) != index:
                self.fail(("flags", index, "name"), f"flag {name!r} is listed twice")
        if self.problems:
            raise PlanError(sorted(self.problems, key=lambda p: p.line))
        judged = [check.metric for stage in stages for check in stage.criteria] + [t.check.metric for t in triggers]
        tag = spec.image.rsplit(":", 1)[1] if ":" in spec.image.rsplit("/", 1)[-1] else "latest"
        return RolloutPlan(
            name=spec.name or f"{spec.app}-{tag}",
            app=spec.app,
            image=spec.image,
            strategy=spec.strategy,
            stages=stages,
            triggers=triggers,
            interval=spec.interval,
            pause_timeout=spec.pause_timeout,
            manual=spec.manual,
            min_requests=spec.analysis.min_requests,
            inconclusive_limit=spec.analysis.inconclusive_limit,
            min_coverage=spec.analysis.min_coverage,
            target=spec.target,
            metrics=spec.metrics,
            flags=tuple(spec.flags),
            flags_file=spec.flags_file,
            preflight=tuple(spec.preflight),
            rollback_window=spec.rollback_window,
            rollback_plan=spec.rollback_plan,
            notify=tuple(spec.notify),
            source=self.document.source,
            metric_names=tuple(dict.fromkeys(judged)),
        )


def plan_from_document(document: _Document) -> RolloutPlan:
    try:
        spec = PlanSpec.model_validate(_normalise(document.data))
    except ValidationError as error:
        raise PlanError(sorted(structure_problems(document, error, PlanSpec), key=lambda p: p.line)) from None
    return _Compiler(document, spec).compile()


def load_plan(path: str | Path) -> RolloutPlan:
    """The plan in a YAML or HCL file, or PlanError with every problem found."""
    return plan_from_document(read_document(path))


def load_plan_text(text: str | bytes, source: str = "<plan>", hcl: bool = False) -> RolloutPlan:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return plan_from_document(parse_document(source, raw, hcl))


__all__ = ["PlanError", "Problem", "load_plan", "load_plan_text", "parse_duration"]
