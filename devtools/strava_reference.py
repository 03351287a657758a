"""Rebuild ``tests/fixtures/strava_reference/`` from a checkout of stravalib.

stravalib's ``src/stravalib/strava_model.py`` is generated (datamodel-codegen) from Strava's
swagger, whose model definitions live in files the vendored ``strava_swagger.json`` only
references; ``model.py`` adds the fields real answers carry that the swagger omits. This
reads both with :mod:`ast` (stravalib is not installed: no pydantic import, no network) and
writes ``strava_model.json``: every model with its fields (inherited ones included), each
field's annotation and docstring, and per model the undocumented fields ``model.py`` adds.
``tests/test_schema_coverage.py`` compares the tap's declared schemas with it.

    python -m devtools.strava_reference /path/to/stravalib [--commit SHA]
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = PROJECT_ROOT / "tests" / "fixtures" / "strava_reference"
#: Fields of stravalib's own plumbing, not of Strava's answers.
_NOT_STRAVA = {"bound_client"}

Fields = dict[str, dict[str, str]]


def _classes(source: str) -> dict[str, tuple[list[str], Fields]]:
    """Per class: its bases and its own annotated fields (annotation, docstring)."""
    classes: dict[str, tuple[list[str], Fields]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: Fields = {}
        body = node.body
        for index, statement in enumerate(body):
            if not (
                isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            ):
                continue
            annotation = ast.unparse(statement.annotation)
            name = statement.target.id
            if annotation.startswith("ClassVar") or name in _NOT_STRAVA:
                continue
            doc = ""
            following = body[index + 1] if index + 1 < len(body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                doc = " ".join(following.value.value.split())
            fields[name] = {"type": annotation, "description": doc}
        classes[node.name] = ([ast.unparse(base) for base in node.bases], fields)
    return classes


def _resolved(classes: dict[str, tuple[list[str], Fields]], name: str) -> Fields:
    """The fields of ``name`` with those of its bases (bases first, own fields win)."""
    bases, own = classes[name]
    fields: Fields = {}
    for base in bases:
        if base in classes:
            fields.update(_resolved(classes, base))
    fields.update(own)
    return fields


def build(strava_model: str, model: str) -> dict[str, object]:
    """The reference: swagger models (resolved) and the fields ``model.py`` adds to each."""
    generated = _classes(strava_model)
    extended = _classes(model)
    models = {name: _resolved(generated, name) for name in sorted(generated)}

    def spec_name(name: str) -> str | None:
        """The strava_model class a model.py class extends (itself or through a base)."""
        for base in extended[name][0]:
            if base.startswith("strava_model."):
                return base.removeprefix("strava_model.")
        for base in extended[name][0]:
            if base in extended:
                found = spec_name(base)
                if found:
                    return found
        return None

    def all_fields(name: str) -> Fields:
        fields: Fields = {}
        for base in extended[name][0]:
            if base.startswith("strava_model."):
                fields.update(models.get(base.removeprefix("strava_model."), {}))
            elif base in extended:
                fields.update(all_fields(base))
            elif base in generated:
                fields.update(models[base])
        fields.update(extended[name][1])
        return fields

    undocumented: dict[str, dict[str, str]] = {}
    for name in sorted(extended):
        spec = spec_name(name)
        if spec is None or spec not in models:
            continue
        extra = {
            field: value["type"]
            for field, value in all_fields(name).items()
            if field not in models[spec]
        }
        if extra:
            undocumented.setdefault(spec, {}).update(extra)
    return {"models": models, "undocumented": undocumented}


def main(argv: list[str] | None = None) -> int:
    """Write strava_model.json (and copy the swagger) from a stravalib checkout."""
    parser = argparse.ArgumentParser(prog="python -m devtools.strava_reference")
    parser.add_argument("stravalib", type=Path, help="a checkout of stravalib/stravalib")
    parser.add_argument("--commit", required=True, help="the checkout's commit (recorded)")
    args = parser.parse_args(argv)
    package = args.stravalib / "src" / "stravalib"
    reference = build(
        (package / "strava_model.py").read_text(encoding="utf-8"),
        (package / "model.py").read_text(encoding="utf-8"),
    )
    reference = {"stravalib_commit": args.commit, **reference}
    REFERENCE.mkdir(parents=True, exist_ok=True)
    (REFERENCE / "strava_model.json").write_text(
        json.dumps(reference, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    shutil.copyfile(
        package / "tests" / "resources" / "strava_swagger.json",
        REFERENCE / "strava_swagger.json",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
