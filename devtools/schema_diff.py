"""Breaking changes between two OpenAPI schemas, by the rules of docs/compatibility.md.

    python -m devtools.schema_diff [OLD NEW]    # exit 1 on a breaking change
    python -m devtools.schema_diff --release    # keep docs/openapi.yaml as its version's release

Without arguments OLD is the newest schema in docs/openapi/releases/ and NEW is
docs/openapi.yaml. oasdiff does the same for Go; this is the part of it the promise needs, in
the language of the project, with no binary to fetch:

- an operation removed, or a success status it answered;
- in an answer: a field removed or no longer always there, a type changed, an enum value
  removed (an added value is allowed: clients treat unknown values as the policy says), a
  header that was always there removed;
- a webhook (a callback) removed; what it sends judged as an answer (body and headers), and
  a success status it took no longer taken;
- in a request: a new required field, parameter or header, an optional one made required,
  one removed, a type changed, an accepted enum value removed, a limit narrowed (a lower
  maximum or length, a higher minimum, a new or changed pattern).

Everything else (new operations, statuses, optional inputs, answer fields, error codes, texts
and examples) is allowed inside a major version. `$ref`s are followed, so renaming a component
is not a change.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CURRENT = ROOT / "docs" / "openapi.yaml"
RELEASES = ROOT / "docs" / "openapi" / "releases"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Limits a request may be held to: a bigger value here is narrower (max*) or wider (min*).
UPPER = ("maximum", "maxLength", "maxItems", "maxProperties")
LOWER = ("minimum", "minLength", "minItems", "minProperties")

Schema = dict[str, Any]


def load(path: Path) -> Schema:
    return yaml.safe_load(path.read_text())


def version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.stem.split("."))


def releases() -> list[Path]:
    """The released schemas, oldest first (named `<major>.<minor>.<patch>.yaml`)."""
    found = [p for p in RELEASES.glob("*.yaml") if re.fullmatch(r"\d+\.\d+\.\d+", p.stem)]
    return sorted(found, key=version_key)


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Each breaking change from `old` to `new`, as `<where>: <what>`; [] when none."""
    return list(_Diff(old, new).run())


class _Diff:
    def __init__(self, old: Schema, new: Schema) -> None:
        self.old, self.new = old, new

    def run(self) -> Iterator[str]:
        for path, old_item in (self.old.get("paths") or {}).items():
            new_item = (self.new.get("paths") or {}).get(path)
            for method in METHODS:
                if method not in old_item:
                    continue
                where = f"{method.upper()} {path}"
                if new_item is None or method not in new_item:
                    yield f"{where}: operation removed"
                    continue
                yield from self.operation(where, old_item, new_item, method)
        yield from self.webhooks()

    # --- operations ----------------------------------------------------------------------

    def operation(
        self, where: str, old_item: Schema, new_item: Schema, method: str
    ) -> Iterator[str]:
        old_op, new_op = old_item[method], new_item[method]
        yield from self.parameters(where, old_item, old_op, new_item, new_op)
        yield from self.request_body(where, old_op.get("requestBody"), new_op.get("requestBody"))
        old_responses, new_responses = old_op.get("responses", {}), new_op.get("responses", {})
        for status, old_response in old_responses.items():
            at = f"{where} {status}"
            new_response = new_responses.get(status)
            if new_response is None:
                if str(status).startswith("2"):
                    yield f"{at}: success status removed"
                continue
            yield from self.response(at, self._resolve(old_response, self.old), new_response)

    def webhooks(self) -> Iterator[str]:
        """A webhook (OpenAPI 3.1) is an operation the other way round: the client reads what
        we send (headers and body must stay what was promised, as in an answer) and writes
        the answer (a success status it may give must still be taken)."""
        new_hooks = self.new.get("webhooks") or {}
        for name, old_item in (self.old.get("webhooks") or {}).items():
            for method in METHODS:
                if method not in old_item:
                    continue
                where = f"webhook {name} {method.upper()}"
                if method not in new_hooks.get(name, {}):
                    yield f"{where}: removed"
                    continue
                old_op = self._resolve(old_item[method], self.old)
                new_op = self._resolve(new_hooks[name][method], self.new)
                yield from self.response(
                    f"{where} request", self._sent(old_op, self.old), self._sent(new_op, self.new)
                )
                for status in old_op.get("responses", {}):
                    if str(status).startswith("2") and status not in new_op.get("responses", {}):
                        yield f"{where} {status}: answer no longer taken"

    def _sent(self, op: Schema, doc: Schema) -> Schema:
        """A webhook's request in the shape of an answer: its header parameters as headers."""
        params = [self._resolve(raw, doc) for raw in op.get("parameters", [])]
        body = self._resolve(op.get("requestBody") or {}, doc)
        return {
            "headers": {p["name"]: p for p in params if p["in"] == "header"},
            "content": body.get("content") or {},
        }

    def parameters(
        self, where: str, old_item: Schema, old_op: Schema, new_item: Schema, new_op: Schema
    ) -> Iterator[str]:
        old_params = self._params(old_item, old_op, self.old)
        new_params = self._params(new_item, new_op, self.new)
        for key, new_param in new_params.items():
            at = f"{where} {key[0]} parameter {key[1]}"
            old_param = old_params.get(key)
            if old_param is None:
                if new_param.get("required"):
                    yield f"{at}: new required input"
                continue
            if new_param.get("required") and not old_param.get("required"):
                yield f"{at}: optional input made required"
            yield from self.schema(
                at,
                old_param.get("schema", {}),
                new_param.get("schema", {}),
                request=True,
            )
        for key in old_params.keys() - new_params.keys():
            yield f"{where} {key[0]} parameter {key[1]}: input removed"

    def _params(self, item: Schema, op: Schema, doc: Schema) -> dict[tuple[str, str], Schema]:
        params = {}
        for raw in [*item.get("parameters", []), *op.get("parameters", [])]:
            param = self._resolve(raw, doc)
            name = param["name"].lower() if param["in"] == "header" else param["name"]
            params[param["in"], name] = param
        return params

    def request_body(self, where: str, old: Schema | None, new: Schema | None) -> Iterator[str]:
        at = f"{where} request body"
        new = self._resolve(new, self.new) if new else None
        old = self._resolve(old, self.old) if old else None
        if new is None:
            if old is not None:
                yield f"{at}: input removed"
            return
        if old is None:
            if new.get("required"):
                yield f"{at}: new required input"
            return
        if new.get("required") and not old.get("required"):
            yield f"{at}: optional input made required"
        for media, old_media in old.get("content", {}).items():
            new_media = new.get("content", {}).get(media)
            if new_media is None:
                yield f"{at} {media}: media type no longer accepted"
                continue
            yield from self.schema(
                at, old_media.get("schema", {}), new_media.get("schema", {}), request=True
            )

    def response(self, at: str, old: Schema, new: Schema) -> Iterator[str]:
        new = self._resolve(new, self.new)
        new_headers = {k.lower(): v for k, v in (new.get("headers") or {}).items()}
        for name, raw in (old.get("headers") or {}).items():
            old_header = self._resolve(raw, self.old)
            new_header = new_headers.get(name.lower())
            if new_header is None:
                if old_header.get("required"):
                    yield f"{at} header {name}: removed"
                continue
            new_header = self._resolve(new_header, self.new)
            if old_header.get("required") and not new_header.get("required"):
                yield f"{at} header {name}: no longer always sent"
            yield from self.schema(
                f"{at} header {name}",
                old_header.get("schema", {}),
                new_header.get("schema", {}),
                request=False,
            )
        for media, old_media in (old.get("content") or {}).items():
            new_media = (new.get("content") or {}).get(media)
            if new_media is None:
                yield f"{at} {media}: no longer answered"
                continue
            yield from self.schema(
                at, old_media.get("schema", {}), new_media.get("schema", {}), request=False
            )

    # --- schemas -------------------------------------------------------------------------

    def schema(
        self, at: str, old: Schema, new: Schema, *, request: bool, seen: frozenset = frozenset()
    ) -> Iterator[str]:
        """What a client of `old` would trip over in `new`. `request`: the client writes it
        (it must stay accepted); else the client reads it (it must stay what was promised)."""
        old, new = self._resolve(old, self.old), self._resolve(new, self.new)
        mark = (id(old), id(new))
        if mark in seen:  # a recursive component, already being compared
            return
        seen = seen | {mark}
        old_type, new_type = _types(old), _types(new)
        # A request may come to accept more types; an answer's type stays what it was.
        if old_type and new_type and old_type != new_type and not (request and old_type < new_type):
            yield f"{at}: type changed from {_show(old_type)} to {_show(new_type)}"
            return
        yield from self.enum(at, old, new, request=request)
        if request:
            yield from self.limits(at, old, new)
        yield from self.properties(at, old, new, request=request, seen=seen)
        if "items" in old and "items" in new:
            yield from self.schema(
                f"{at}[]", old["items"], new["items"], request=request, seen=seen
            )
        for word in ("allOf", "oneOf", "anyOf"):
            for i, (o, n) in enumerate(zip(old.get(word, []), new.get(word, []), strict=False)):
                yield from self.schema(f"{at} {word}[{i}]", o, n, request=request, seen=seen)

    def enum(self, at: str, old: Schema, new: Schema, *, request: bool) -> Iterator[str]:
        old_values, new_values = _enum(old), _enum(new)
        if request:
            if new_values is None:
                return
            if old_values is None:
                yield f"{at}: values limited to {_show(new_values)}"
                return
        if old_values is None or new_values is None:
            return  # an answer that gains or loses an enum still sends values of its type
        removed = old_values - new_values
        if removed:
            yield f"{at}: enum values removed: {_show(removed)}"

    def limits(self, at: str, old: Schema, new: Schema) -> Iterator[str]:
        for word in UPPER:
            if word in new and (word not in old or new[word] < old[word]):
                yield f"{at}: {word} narrowed to {new[word]}"
        for word in LOWER:
            if word in new and new[word] > old.get(word, float("-inf")):
                yield f"{at}: {word} narrowed to {new[word]}"
        if new.get("pattern") and new.get("pattern") != old.get("pattern"):
            yield f"{at}: pattern narrowed to {new['pattern']}"
        if _nullable(old) and not _nullable(new):
            yield f"{at}: null no longer accepted"

    def properties(
        self, at: str, old: Schema, new: Schema, *, request: bool, seen: frozenset
    ) -> Iterator[str]:
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name, old_prop in old_props.items():
            field = f"{at}.{name}"
            if name not in new_props:
                yield f"{field}: {'input' if request else 'field'} removed"
                continue
            if request and name in new_required - old_required:
                yield f"{field}: optional input made required"
            if not request and name in old_required - new_required:
                yield f"{field}: no longer always in the answer"
            if not request and not _nullable(old_prop) and _nullable(new_props[name]):
                yield f"{field}: may now be null"
            yield from self.schema(field, old_prop, new_props[name], request=request, seen=seen)
        if request:
            for name in sorted((new_props.keys() - old_props.keys()) & new_required):
                yield f"{at}.{name}: new required input"

    def _resolve(self, node: Any, doc: Schema) -> Any:
        """`node` with its `$ref` (into `doc`) followed, as often as it takes."""
        hops = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local references are followed: {ref}")
            node = doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            hops += 1
            if hops > 50:  # noqa: PLR2004
                raise ValueError(f"reference loop at {ref}")
        return node


def _types(schema: Schema) -> frozenset[str]:
    kind = schema.get("type")
    if kind is None:
        return frozenset()
    return frozenset(kind if isinstance(kind, list) else [kind]) - {"null"}


def _nullable(schema: Schema) -> bool:
    """Null allowed: `nullable: true` in OpenAPI 3.0, a "null" type in 3.1 (JSON Schema), so
    that the move from 3.0 to 3.1 is not a change."""
    kind = schema.get("type")
    listed = isinstance(kind, list) and "null" in kind
    return bool(schema.get("nullable")) or kind == "null" or listed


def _enum(schema: Schema) -> frozenset | None:
    """The values an enum allows, or None; null is left out, as nullability is judged apart
    (drf-spectacular spells a nullable enum as oneOf [the enum, NullEnum]: compared in turn)."""
    if "enum" in schema:
        return frozenset(v for v in schema["enum"] if v is not None)
    return None


def _show(values: frozenset) -> str:
    return ", ".join(sorted(map(str, values)))


# --- command line ----------------------------------------------------------------------------


def release(current: Path = CURRENT) -> Path:
    """Keep `current` as the release of the version it carries; an existing release of that
    version must be the same file (a released schema is never rewritten: bump the version)."""
    version = load(current)["info"]["version"]
    target = RELEASES / f"{version}.yaml"
    if target.exists() and target.read_bytes() != current.read_bytes():
        raise SystemExit(f"{target} exists and differs: give the new schema a new version")
    RELEASES.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(current, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", nargs="?", type=Path, help="default: the newest release")
    parser.add_argument("new", nargs="?", type=Path, default=CURRENT)
    parser.add_argument("--release", action="store_true", help="keep NEW as its version's")
    args = parser.parse_args(argv)
    if args.release:
        print(f"kept {release(args.new).relative_to(ROOT)}")
        return 0
    old = args.old or (releases() or [None])[-1]
    if old is None:
        print("no release to compare with (docs/openapi/releases/)")
        return 0
    problems = breaking_changes(load(old), load(args.new))
    for problem in problems:
        print(f"breaking: {problem}")
    print(f"{old.name} -> {args.new.name}: {len(problems)} breaking change(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
