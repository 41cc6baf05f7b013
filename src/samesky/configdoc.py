"""config/README.md, written from the config schema's own descriptions, so the documentation of every key
cannot drift from what the workflow accepts (a test compares the two):

    python -m samesky.configdoc > config/README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

HEADER = """# Configuration

Generated from `workflow/schemas/config.schema.yaml` by `python -m samesky.configdoc > config/README.md`;
edit the schema's descriptions, not this file (a test checks that the two agree).

- `config.yaml` is the embedded default; `config/paper.yaml` the paper preset, merged over it by
  `snakemake --configfile config/paper.yaml` (mappings merge key by key, lists replace the default's).
- Before any job runs, the config is validated against the schema, which fills in every default below,
  and then checked for names that refer to other entries (`samesky.config.check_config`). Unknown keys
  are errors, and every error names the key.
- `a.b` is key `b` inside mapping `a`; `a[]` an item of list `a`; `a.<name>` an entry of a mapping whose
  keys you choose. "required" means required whenever its parent is given.
"""


def _resolve(schema: dict, node: dict) -> dict:
    if "$ref" in node:
        return schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _kind(schema: dict, node: dict) -> str:
    node_r = _resolve(schema, node)
    if "enum" in node_r:
        return " \\| ".join("null" if v is None else f"`{v}`" for v in node_r["enum"])
    if "oneOf" in node_r:
        return " or ".join(_kind(schema, option) for option in node_r["oneOf"])
    kind = node_r.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    out = []
    for k in kinds:
        if k == "array" and "items" in node_r:
            out.append(f"list of {_kind(schema, node_r['items']) or 'values'}")
        elif k:
            out.append(k)
    return " or ".join(out)


def _description(schema: dict, node: dict) -> str:
    text = node.get("description") or _resolve(schema, node).get("description", "")
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(schema: dict, node: dict, path: str, note: str = ""):
    node = _resolve(schema, node)
    required = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        default = json.dumps(sub["default"]) if "default" in sub else ("required" if name in required else "")
        yield key, _kind(schema, sub), default, (note + " " if note else "") + _description(schema, sub)
        yield from _children(schema, sub, key)
    for clause in node.get("allOf", []):  # e.g. the keys of image surveys and of spectrum surveys
        condition = clause["if"]["properties"]
        (field, value), = ((f, v["const"]) for f, v in condition.items())
        yield from _rows(schema, clause["then"], path, note=f"({field} {value} only)")


def _children(schema: dict, sub: dict, key: str):
    sub = _resolve(schema, sub)
    options = sub.get("oneOf", [sub])
    for option in map(lambda o: _resolve(schema, o), options):
        if "properties" in option:
            yield from _rows(schema, option, key)
        items = option.get("items")
        if isinstance(items, dict):
            items = _resolve(schema, items)
            if items.get("type") == "array" and isinstance(items.get("items"), dict):  # a list of lists
                yield from _rows(schema, items["items"], f"{key}[][]")
            elif "properties" in items:
                yield from _rows(schema, items, f"{key}[]")
        extra = option.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in _resolve(schema, extra):
            yield from _rows(schema, extra, f"{key}.<name>")


def render(schema: dict) -> str:
    lines = [HEADER]
    for name, sub in schema["properties"].items():
        required = " (required)" if name in schema.get("required", []) else ""
        lines += [f"## `{name}`{required}", "", _description(schema, sub), ""]
        rows = list(_children(schema, sub, name))
        if rows:
            lines += ["| key | type | default | what it is |", "|---|---|---|---|"]
            lines += [f"| `{k}` | {t} | {d} | {text} |" for k, t, d, text in rows]
        else:
            default = f" Default: `{json.dumps(sub['default'])}`." if "default" in sub else ""
            lines.append(f"Type: {_kind(schema, sub)}.{default}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(render(yaml.safe_load(SCHEMA.read_text())))


if __name__ == "__main__":
    main()
