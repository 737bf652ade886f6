#!/usr/bin/env python3
"""Generates bindings/python/pipemsg/_contract.py from schema/contract.toml: one record class
per named type, answer Data and event type, and one method per command (with its asyncio twin,
prefixed a) for pipemsg.Client, with type hints and the contract's docs as docstrings.

The output is checked in. `contract_python.py` writes it; `contract_python.py --check` writes
nothing and exits 1 when it differs from what the contract gives (the CTest test
contract_drift_python), so a command added to the contract shows in Python or a test fails.
It reads the contract with scripts/contract.py's loader, which checks it.
"""

import keyword
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contract  # noqa: E402

OUTPUT = "bindings/python/pipemsg/_contract.py"
# Names a generated attribute must not take (Record's own), and a generated method (Client's).
RECORD_OWN = {"as_dict", "from_data"}
CLIENT_OWN = {"call", "acall", "close", "events", "aevents"}


def ident(name, taken=RECORD_OWN):
    """A contract name as a Python attribute or parameter (snake_case, never a keyword)."""
    s = contract.snake(name)
    if s in taken or "a" + s in taken:
        raise contract.ContractError(f"{name}: its Python name {s} is taken by pipemsg")
    return s + "_" if keyword.iskeyword(s) else s


def hint(c, t):
    ty = t["type"]
    if ty in ("string", "time"):
        return "str"
    if ty == "boolean":
        return "bool"
    if ty == "integer":
        return "int"
    if ty == "enumeration":
        return "Literal[" + ", ".join(repr(v) for v in t["values"]) + "]"
    if ty == "scalar":
        return "Union[str, int, bool]"
    if ty == "tree":
        return "Dict[str, Any]"
    if ty == "list":
        return f"List[{hint(c, t['items'])}]"
    return ty


def spec(t):
    """How _record decodes a value of type t: a nested tuple of plain literals."""
    ty = t["type"]
    if ty == "enumeration":
        return ("enumeration", tuple(t["values"]))
    if ty == "list":
        return ("list", spec(t["items"]))
    if ty in contract.SCALARS:
        return (ty,)
    return ("record", ty)


def doc_lines(text, indent):
    return "\n".join(indent + line if line else "" for line in text.split("\n"))


def record_class(c, name, doc, fields):
    out = [f"class {name}(Record):"]
    body = doc
    if fields:
        body += "\n\nAttributes:\n" + "\n".join(
            f"    {ident(f['name'])}: {f['doc']}"
            + ("" if f["required"] else " None when absent.") for f in fields)
    out.append(f'    """{doc_lines(body, "    ").lstrip()}\n    """\n')
    out.append("    __slots__ = (" + "".join(f"\n        {ident(f['name'])!r}," for f in fields)
               + ("\n    )" if fields else ")"))
    out.append("    _FIELDS = (")
    for f in fields:
        row = (ident(f["name"]), f["name"], spec(f), f["required"])
        out.append(f"        {row!r},")
    out.append("    )")
    for f in fields:
        h = hint(c, f)
        out.append(f"    {ident(f['name'])}: {h if f['required'] else f'Optional[{h}]'}")
    return "\n".join(out) + "\n\n"


def answer_name(cmd):
    return cmd["name"] + "Answer"


def params_sig(c, cmd):
    parts = []
    for p in cmd["params"]:
        h = hint(c, p)
        if p["required"]:
            parts.append(f"{ident(p['name'])}: {h}")
    for p in cmd["params"]:
        h = hint(c, p)
        if not p["required"]:
            parts.append(f"{ident(p['name'])}: Optional[{h}] = None")
    return "".join(", *, " + ", ".join(parts) if parts else "")


def method_doc(cmd):
    text = cmd["doc"]
    if cmd["params"]:
        lines = []
        for p in cmd["params"]:
            extra = ""
            if "default" in p:
                extra = f" None: the service's default, {contract.default_text(p)}."
            elif not p["required"]:
                extra = " None: not sent."
            lines.append(f"    {ident(p['name'])}: {p['doc']}{extra}")
        text += "\n\nArgs:\n" + "\n".join(lines)
    text += "\n\nReturns:\n    " + (f"{answer_name(cmd)}, the answer's Data." if cmd["data"]
                                     else "None (the answer has no Data).")
    results = ["BadRequest"] + cmd["results"]
    text += ("\n\nRaises:\n    pipemsg.Error: a result other than Ok, as its subclass ("
             + ", ".join(f"pipemsg.{r}" for r in results if r != "Error")
             + ", or a client-side one such as pipemsg.ConnectionTimeout).")
    return text


def method(c, cmd, asynchronous):
    name = ident(cmd["name"], CLIENT_OWN)
    ret = answer_name(cmd) if cmd["data"] else "None"
    args = "{" + ", ".join(f"{p['name']!r}: {ident(p['name'])}" for p in cmd["params"]) + "}"
    answer = answer_name(cmd) if cmd["data"] else "None"
    if asynchronous:
        head = f"    async def a{name}(self{params_sig(c, cmd)}) -> {ret}:"
        call = f"await self._atyped_call({cmd['name']!r}, {args}, {answer})"
        doc = f"The asyncio form of {name}(): {cmd['doc']}"
    else:
        head = f"    def {name}(self{params_sig(c, cmd)}) -> {ret}:"
        call = f"self._typed_call({cmd['name']!r}, {args}, {answer})"
        doc = method_doc(cmd)
    body = f'        """{doc_lines(doc, "        ").lstrip()}\n        """\n'
    return f"{head}\n{body}        return {call}\n"


def gen(c):
    out = ['"""The contract of pipemsgd (schema/contract.toml) for Python. Generated by',
           "scripts/contract_python.py: do not edit; run it after changing the contract.",
           '"""', "", "from __future__ import annotations", "",
           "from typing import Any, Dict, List, Literal, Optional, Union", "",
           "from ._record import CommandMethods, Record", "", ""]
    for name, t in c["types"].items():
        out.append(record_class(c, name, t["doc"], t["fields"]))
    commands = contract.client_commands(c)
    for cmd in commands:
        if cmd["data"]:
            out.append(record_class(c, answer_name(cmd), f"The Data of {cmd['name']}'s Ok answer.",
                                    cmd["data"]))
    for ev in c["events"]:
        out.append(record_class(c, ev["type"], f"The Data of a {ev['type']} event: {ev['doc']}",
                                ev["fields"]))
    names = list(c["types"]) + [answer_name(cmd) for cmd in commands if cmd["data"]] \
        + [ev["type"] for ev in c["events"]]
    out.append("__all__ = [")
    out.extend(f"    {n!r}," for n in names + ["Commands", "COMMANDS", "EVENTS", "RECORDS"])
    out.append("]\n")
    out.append("# Every record class by its contract name, for nested fields.")
    out.append("RECORDS = {")
    for name in c["types"]:
        out.append(f"    {name!r}: {name},")
    out.append("}\n")
    out.append("# The event types: the record class of each one's Data.")
    out.append("EVENTS = {")
    for ev in c["events"]:
        out.append(f"    {ev['type']!r}: {ev['type']},")
    out.append("}\n")
    out.append("# Every command: (method name, its Params' names, results beyond Ok and")
    out.append("# BadRequest, test only). A test-only one has no method: Client.call")
    out.append("# reaches it.")
    out.append("COMMANDS = {")
    for cmd in c["commands"]:
        m = None if cmd["test_only"] else ident(cmd["name"])
        params = tuple(p["name"] for p in cmd["params"])
        out.append(f"    {cmd['name']!r}: ({m!r}, {params!r}, {tuple(cmd['results'])!r}, "
                   f"{cmd['test_only']!r}),")
    out.append("}\n\n")
    out.append("class Commands(CommandMethods):")
    out.append('    """A method per command of the contract, and its asyncio twin (a + name)."""\n')
    for cmd in commands:
        out.append(method(c, cmd, False))
        out.append(method(c, cmd, True))
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv):
    check_only = "--check" in argv[1:]
    try:
        c = contract.load()
        text = gen(c)
    except (contract.ContractError, KeyError) as e:
        print(f"contract_python.py: {contract.SOURCE.relative_to(contract.ROOT)}: {e}",
              file=sys.stderr)
        return 2
    path = contract.ROOT / OUTPUT
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return 0
    if check_only:
        print(f"contract_python.py: {OUTPUT} is out of date with schema/contract.toml "
              "(run scripts/contract_python.py)", file=sys.stderr)
        return 1
    path.write_text(text, encoding="utf-8")
    print(f"contract_python.py: wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
