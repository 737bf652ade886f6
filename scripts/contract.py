#!/usr/bin/env python3
"""Generates from schema/contract.toml (pipemsgd's commands and events) the files that must
agree with it:

  schema/RPSchema.xsd             the XML schema: the envelope, plus <Command>Params,
                                  <Command>Data and <EventType>Data
  schema/rpschema.json            the JSON Schema (2020-12): the same names under $defs
  docs/reference.md               every command and event type
  src/contract/contract_tables.c  the tables pipemsgd and pipemsg use at run time

The outputs are checked in. `contract.py` writes them; `contract.py --check` writes nothing
and exits 1, naming the files, when one differs from what the contract gives (the CTest test
contract_drift). docs/architecture.md, "The contract".
"""

import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "schema" / "contract.toml"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
SCALARS = ("string", "boolean", "integer", "enumeration", "time", "scalar", "list", "tree")
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
# What each type's keys may be, beside name, type, doc, required, default.
TYPE_KEYS = {
    "string": {"min_length", "max_length", "charset", "first", "format"},
    "boolean": set(),
    "integer": {"min", "max"},
    "enumeration": {"values"},
    "time": set(),
    "scalar": set(),
    "list": {"items", "max_items"},
    "tree": set(),
}


class ContractError(Exception):
    pass


# ---- reading and checking the contract ----------------------------------------------------


def load():
    with open(SOURCE, "rb") as f:
        c = tomllib.load(f)
    c.setdefault("formats", {})
    c.setdefault("types", {})
    for name, t in c["types"].items():
        t["name"] = name
        for f in t["fields"]:
            f.setdefault("required", True)
    for cmd in c["commands"]:
        cmd.setdefault("params", [])
        cmd.setdefault("data", [])
        cmd.setdefault("results", [])
        cmd.setdefault("test_only", False)
        cmd.setdefault("any_params", False)
        cmd.setdefault("any_data", False)
        for p in cmd["params"]:
            p.setdefault("required", False)
        for f in cmd["data"]:
            f.setdefault("required", True)
    for ev in c["events"]:
        ev.setdefault("fields", [])
        for f in ev["fields"]:
            f.setdefault("required", True)
    check(c)
    return c


def check_type(c, where, t):
    kind = t["type"]
    if kind not in SCALARS and kind not in c["types"]:
        raise ContractError(f"{where}: unknown type {kind}")
    allowed = TYPE_KEYS.get(kind, set()) | {"name", "type", "doc", "required", "default",
                                             "example"}
    extra = set(t) - allowed
    if extra:
        raise ContractError(f"{where}: {', '.join(sorted(extra))} not allowed for {kind}")
    if kind == "string" and "format" in t and t["format"] not in c["formats"]:
        raise ContractError(f"{where}: unknown format {t['format']}")
    if kind == "enumeration" and not t.get("values"):
        raise ContractError(f"{where}: an enumeration needs values")
    if kind == "list":
        if "items" not in t:
            raise ContractError(f"{where}: a list needs items")
        check_type(c, where + "[]", t["items"])


def check_fields(c, where, fields):
    seen = set()
    for f in fields:
        w = f"{where}.{f.get('name')}"
        if not NAME.match(f.get("name", "")) or f["name"] == "Item":
            raise ContractError(f"{w}: not a name")
        if f["name"] in seen:
            raise ContractError(f"{w}: declared twice")
        seen.add(f["name"])
        if not f.get("doc"):
            raise ContractError(f"{w}: no doc")
        check_type(c, w, f)
        if "default" in f and f["required"]:
            raise ContractError(f"{w}: required with a default")


def check(c):
    for name, t in c["types"].items():
        check_fields(c, name, t["fields"])
    names = [cmd["name"] for cmd in c["commands"]]
    if len(set(names)) != len(names):
        raise ContractError("a command is declared twice")
    for cmd in c["commands"]:
        if not cmd.get("doc"):
            raise ContractError(f"{cmd['name']}: no doc")
        check_fields(c, cmd["name"], cmd["params"])
        check_fields(c, cmd["name"], cmd["data"])
        for p in cmd["params"]:
            if "default" in p:
                default_text(p)
    for ev in c["events"]:
        if not ev.get("doc"):
            raise ContractError(f"{ev['type']}: no doc")
        check_fields(c, ev["type"], ev["fields"])


def default_text(p):
    v = p["default"]
    if p["type"] == "boolean" and isinstance(v, bool):
        return "true" if v else "false"
    if p["type"] == "integer" and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if p["type"] in ("string", "enumeration") and isinstance(v, str):
        return v
    raise ContractError(f"{p['name']}: default {v!r} is not a {p['type']}")


def expand_charset(spec):
    """'A-Za-z0-9._-' -> every character it allows, in order."""
    out, i = [], 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(x) for x in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(dict.fromkeys(out))


def charset_class(spec):
    """The regular expression class for a charset, valid in XSD and ECMA-262 alike: ranges
    stay ranges, other characters are escaped when a class would read them otherwise."""
    out, i = [], 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.append(spec[i] + "-" + spec[i + 2])
            i += 3
        else:
            out.append("\\" + spec[i] if spec[i] in "\\]^-[" else spec[i])
            i += 1
    return "[" + "".join(out) + "]"


def charset_regex(t):
    cls = charset_class(t["charset"])
    return f"{charset_class(t['first'])}{cls}*" if "first" in t else f"{cls}*"


def describe(c, t):
    """One phrase for a type, as reference.md shows it."""
    kind = t["type"]
    if kind == "string":
        parts = []
        if "format" in t:
            parts.append(f"format `{t['format']}`")
        if "min_length" in t or "max_length" in t:
            parts.append(f"{t.get('min_length', 0)} to {t.get('max_length', 'any')} bytes")
        if "charset" in t:
            parts.append(f"characters `{t['charset']}`")
        if "first" in t:
            parts.append(f"first `{t['first']}`")
        return "string" + (f" ({', '.join(parts)})" if parts else "")
    if kind == "integer":
        if "min" in t or "max" in t:
            return f"integer ({t.get('min', LONG_MIN)} to {t.get('max', LONG_MAX)})"
        return "integer"
    if kind == "enumeration":
        return "enumeration (" + ", ".join(f"`{v}`" for v in t["values"]) + ")"
    if kind == "list":
        s = f"list of {describe(c, t['items'])}"
        return s + (f", at most {t['max_items']}" if "max_items" in t else "")
    if kind == "tree":
        return "object (free-form)"
    if kind in c["types"]:
        return f"[{kind}](#{kind.lower()})"
    return kind


def expect(t, formats):
    """What a BadRequest says a value must be: short, it goes into a Message."""
    kind = t["type"]
    if kind == "string":
        if "format" in t:
            return formats[t["format"]]["expect"]
        s = "a string"
        if "min_length" in t or "max_length" in t:
            lo, hi = t.get("min_length", 0), t.get("max_length")
            s += f" of {lo} to {hi} bytes" if hi is not None else f" of at least {lo} bytes"
        if "charset" in t:
            s += f" of the characters {t['charset']}"
        if "first" in t:
            s += f", the first one of {t['first']}"
        return s
    if kind == "integer":
        if "min" in t or "max" in t:
            return f"an integer from {t.get('min', LONG_MIN)} to {t.get('max', LONG_MAX)}"
        return "an integer"
    if kind == "enumeration":
        return "one of " + ", ".join(t["values"])
    if kind == "list":
        most = f"at most {t['max_items']} " if "max_items" in t else ""
        return f"a list of {most}items"
    return {
        "boolean": "a boolean (true or false)",
        "time": "an RFC 3339 time",
        "scalar": "a string, an integer or a boolean",
        "tree": "an object",
    }.get(kind, f"an object of type {kind}")


# ---- schema/RPSchema.xsd ------------------------------------------------------------------

XSD_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!--
  Generated by scripts/contract.py from schema/contract.toml; do not edit.

  RPSchema: the six message kinds of the pipe messaging protocol (docs/protocol.md section 3),
  as the XML encoding carries them, and the typed Params and Data of pipemsgd's commands and
  events. Built into libpipemsg, which validates every decoded XML document against it.

  The envelope: a receiver ignores unknown fields and accepts fields in any order, so each
  kind's content is a lax wildcard. The known fields are declared as global elements below;
  lax processing validates a field by its global declaration when there is one and lets
  anything else through. The root element must be one of the six kinds: any other root has no
  global declaration and fails validation. Which fields are required (Command in a Request,
  Result in a Response, ...) is checked by the command and event layers, so the same rule
  applies to JSON. Attributes carry nothing in this protocol and are ignored. Known fields are
  global elements, so XSD alone would also take <Id> as a root; the decoder checks that the
  root is one of the six kinds. Lax processing also checks a known field name nested in an
  unknown field (<Other><Id>abc</Id></Other> fails).

  Params and Data are free-form trees in the envelope (type Tree): XSD 1.0 cannot make a
  Params depend on its sibling Command. Their types are the named complex types below:
  <Command>Params for a Request's Params, <Command>Data for the Data of an Ok Response,
  <EventType>Data for an Event's Data. Fields come in any order (xs:all), unknown elements are
  not allowed, and scalars are typed. To check a Params or Data, validate it as an element of
  its named type, for example with a schema that includes this one and declares
  <xs:element name="StartVpnParams" type="StartVpnParams"/> (tests/contract/conformance.py
  does so). pipemsgd checks the same declarations in code, for both encodings, before any
  handler runs (docs/protocol.md section 4, "Validation").
-->
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">

  <xs:complexType name="Fields">
    <xs:sequence>
      <xs:any processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
    </xs:sequence>
    <xs:anyAttribute processContents="skip"/>
  </xs:complexType>

  <!-- A free-form tree: skips its content, where xs:anyType's lax wildcard would validate a
       nested <Id>abc</Id> against the global Id. -->
  <xs:complexType name="Tree" mixed="true">
    <xs:sequence>
      <xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>
    </xs:sequence>
    <xs:anyAttribute processContents="skip"/>
  </xs:complexType>

  <!-- Scalar field types: a built-in type plus any attributes. -->
  <xs:complexType name="String">
    <xs:simpleContent>
      <xs:extension base="xs:string"><xs:anyAttribute processContents="skip"/></xs:extension>
    </xs:simpleContent>
  </xs:complexType>
  <xs:complexType name="Long">
    <xs:simpleContent>
      <xs:extension base="xs:long"><xs:anyAttribute processContents="skip"/></xs:extension>
    </xs:simpleContent>
  </xs:complexType>
  <xs:complexType name="PositiveInteger">
    <xs:simpleContent>
      <xs:extension base="xs:positiveInteger">
        <xs:anyAttribute processContents="skip"/>
      </xs:extension>
    </xs:simpleContent>
  </xs:complexType>
  <xs:complexType name="DateTime">
    <xs:simpleContent>
      <xs:extension base="xs:dateTime"><xs:anyAttribute processContents="skip"/></xs:extension>
    </xs:simpleContent>
  </xs:complexType>

  <!-- Message kinds (root elements). -->
  <xs:element name="Request" type="Fields"/>
  <xs:element name="Response" type="Fields"/>
  <xs:element name="Handshake" type="Fields"/>
  <xs:element name="Event" type="Fields"/>
  <xs:element name="EventConfirmation" type="Fields"/>
  <xs:element name="Disconnect" type="Fields"/>

  <!-- Known fields. Integers are signed 64-bit. libxml2 (2.9) does not strip white space around
       an xs:long, so " 7 " fails here as it fails pm_tree_get_int(). -->
  <xs:element name="Command" type="String"/>
  <xs:element name="Id" type="Long"/>
  <xs:element name="Params" type="Tree"/>
  <xs:element name="Result" type="String"/>
  <xs:element name="Message" type="String"/>
  <xs:element name="Data" type="Tree"/>
  <xs:element name="Seq" type="PositiveInteger"/>
  <xs:element name="Type" type="String"/>
  <xs:element name="Time" type="DateTime"/>
  <xs:element name="Reason" type="String"/>
  <xs:element name="Version" type="Long"/>
  <xs:element name="Client" type="String"/>
  <xs:element name="Mode" type="String"/>
  <xs:element name="Pid" type="Long"/>
  <xs:element name="Epoch" type="Long"/>
  <xs:element name="LastEventId" type="Long"/>
  <xs:element name="Service" type="String"/>
  <xs:element name="HeartbeatMs" type="Long"/>
  <xs:element name="MaxMessage" type="Long"/>

  <!-- ==== The contract: typed scalars, formats, named types, Params and Data ==== -->

  <!-- Booleans are written true or false; xs:boolean alone would also take 1 and 0. -->
  <xs:simpleType name="boolean">
    <xs:restriction base="xs:boolean"><xs:pattern value="true|false"/></xs:restriction>
  </xs:simpleType>
"""


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def xsd_simple(c, t, indent):
    """The anonymous simple type for a scalar field, or None when a type= attribute names it."""
    kind, pad = t["type"], " " * indent
    facets = []
    if kind == "string":
        if "format" in t:
            return None
        if "min_length" in t:
            facets.append(f'<xs:minLength value="{t["min_length"]}"/>')
        if "max_length" in t:
            facets.append(f'<xs:maxLength value="{t["max_length"]}"/>')
        if "charset" in t:
            facets.append(f'<xs:pattern value="{xml_escape(charset_regex(t))}"/>')
        if not facets:
            return None
        base = "xs:string"
    elif kind == "integer":
        if "min" in t:
            facets.append(f'<xs:minInclusive value="{t["min"]}"/>')
        if "max" in t:
            facets.append(f'<xs:maxInclusive value="{t["max"]}"/>')
        if not facets:
            return None
        base = "xs:long"
    elif kind == "enumeration":
        facets = [f'<xs:enumeration value="{xml_escape(v)}"/>' for v in t["values"]]
        base = "xs:string"
    else:
        return None
    lines = [f"{pad}<xs:simpleType>", f'{pad}  <xs:restriction base="{base}">']
    lines += [f"{pad}    {f}" for f in facets]
    lines += [f"{pad}  </xs:restriction>", f"{pad}</xs:simpleType>"]
    return "\n".join(lines)


def xsd_type_name(c, t):
    kind = t["type"]
    return {
        "string": f"format.{t['format']}" if "format" in t else "xs:string",
        "boolean": "boolean",
        "integer": "xs:long",
        "enumeration": None,
        "time": "xs:dateTime",
        "scalar": "xs:string",
        "tree": "Tree",
        "list": None,
    }.get(kind, kind)


def xsd_element(c, name, t, min_occurs, indent, max_occurs=None):
    pad = " " * indent
    occurs = f' minOccurs="{min_occurs}"'
    if max_occurs is not None:
        occurs += f' maxOccurs="{max_occurs}"'
    if t["type"] == "list":
        items = t["items"]
        most = t.get("max_items", "unbounded")
        inner = xsd_element(c, "Item", items, 0, indent + 6, most)
        return (f'{pad}<xs:element name="{name}"{occurs}>\n'
                f"{pad}  <xs:complexType>\n{pad}    <xs:sequence>\n{inner}\n"
                f"{pad}    </xs:sequence>\n{pad}  </xs:complexType>\n{pad}</xs:element>")
    simple = xsd_simple(c, t, indent + 2)
    if simple is not None:
        return f'{pad}<xs:element name="{name}"{occurs}>\n{simple}\n{pad}</xs:element>'
    return f'{pad}<xs:element name="{name}" type="{xsd_type_name(c, t)}"{occurs}/>'


def xsd_complex(c, name, doc, fields):
    out = [f"  <!-- {xml_escape(doc)} -->", f'  <xs:complexType name="{name}">', "    <xs:all>"]
    for f in fields:
        out.append(xsd_element(c, f["name"], f, 1 if f["required"] else 0, 6))
    out += ["    </xs:all>", '    <xs:anyAttribute processContents="skip"/>',
            "  </xs:complexType>"]
    return "\n".join(out)


def xsd_free(name, doc):
    return (f"  <!-- {xml_escape(doc)} -->\n"
            f'  <xs:complexType name="{name}" mixed="true">\n'
            "    <xs:sequence>\n"
            '      <xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>\n'
            "    </xs:sequence>\n"
            '    <xs:anyAttribute processContents="skip"/>\n'
            "  </xs:complexType>")


def gen_xsd(c):
    out = [XSD_HEAD]
    for name, fmt in c["formats"].items():
        out.append(f"  <!-- {xml_escape(fmt['doc'])} -->")
        out.append(f'  <xs:simpleType name="format.{name}">')
        body = fmt["pattern"]
        prefix = fmt.get("optional_prefix")
        if prefix is None:
            out.append('    <xs:restriction base="xs:string">')
            out.append(f'      <xs:maxLength value="{fmt["max_length"]}"/>')
            out.append(f'      <xs:pattern value="{xml_escape(body)}"/>')
            out.append("    </xs:restriction>")
        else:
            # The prefix does not count towards the length: one type with it, one without.
            out.append("    <xs:union>")
            for pre in (re.escape(prefix), ""):
                extra = len(prefix) if pre else 0
                out.append('      <xs:simpleType><xs:restriction base="xs:string">')
                out.append(f'        <xs:maxLength value="{fmt["max_length"] + extra}"/>')
                out.append(f'        <xs:pattern value="{xml_escape(pre + body)}"/>')
                out.append("      </xs:restriction></xs:simpleType>")
            out.append("    </xs:union>")
        out.append("  </xs:simpleType>")
    out.append("")
    for name, t in c["types"].items():
        out.append(xsd_complex(c, name, t["doc"], t["fields"]))
    for cmd in c["commands"]:
        if cmd["any_params"]:
            out.append(xsd_free(f"{cmd['name']}Params", f"{cmd['name']}: any parameters."))
        elif cmd["params"]:
            out.append(xsd_complex(c, f"{cmd['name']}Params", f"{cmd['name']}'s parameters.",
                                   cmd["params"]))
        if cmd["any_data"]:
            out.append(xsd_free(f"{cmd['name']}Data", f"{cmd['name']}: any answer data."))
        elif cmd["data"]:
            out.append(xsd_complex(c, f"{cmd['name']}Data", f"{cmd['name']}'s answer data.",
                                   cmd["data"]))
    for ev in c["events"]:
        out.append(xsd_complex(c, f"{ev['type']}Data", f"{ev['type']} event data.",
                               ev["fields"]))
    out.append("</xs:schema>\n")
    return "\n".join(out)


# ---- schema/rpschema.json -----------------------------------------------------------------

JSON_ENVELOPE = {
    "long": {"type": "integer", "minimum": LONG_MIN, "maximum": LONG_MAX},
    "positiveLong": {"type": "integer", "minimum": 1, "maximum": LONG_MAX},
    "tree": {
        "description": "Free-form Params/Data tree.",
        "type": "object",
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$"},
    },
    "fields": {
        "type": "object",
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$"},
        "additionalProperties": True,
    },
    "noParams": {"description": "A command without parameters.", "type": "object",
                 "maxProperties": 0},
}


def json_type(c, t):
    kind = t["type"]
    if kind == "string":
        s = {"type": "string"}
        if "format" in t:
            return {"$ref": f"#/$defs/format.{t['format']}"}
        if "min_length" in t:
            s["minLength"] = t["min_length"]
        if "max_length" in t:
            s["maxLength"] = t["max_length"]
        if "charset" in t:
            s["pattern"] = f"^{charset_regex(t)}$"
        return s
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "integer":
        return {"type": "integer", "minimum": t.get("min", LONG_MIN),
                "maximum": t.get("max", LONG_MAX)}
    if kind == "enumeration":
        return {"enum": list(t["values"])}
    if kind == "time":
        return {"type": "string", "format": "date-time"}
    if kind == "scalar":
        return {"type": ["string", "integer", "boolean"]}
    if kind == "list":
        s = {"type": "array", "items": json_type(c, t["items"])}
        if "max_items" in t:
            s["maxItems"] = t["max_items"]
        return s
    if kind == "tree":
        return {"$ref": "#/$defs/tree"}
    return {"$ref": f"#/$defs/{kind}"}


def json_object(c, doc, fields):
    props = {}
    for f in fields:
        s = json_type(c, f)
        props[f["name"]] = {"description": f["doc"], **s} if "$ref" not in s else s
    return {
        "description": doc,
        "type": "object",
        "properties": props,
        "required": [f["name"] for f in fields if f["required"]],
        "additionalProperties": False,
    }


def gen_json(c):
    defs = dict(JSON_ENVELOPE)
    for name, fmt in c["formats"].items():
        prefix = fmt.get("optional_prefix")
        if prefix is None:
            defs[f"format.{name}"] = {"description": fmt["doc"], "type": "string",
                                      "maxLength": fmt["max_length"],
                                      "pattern": f"^{fmt['pattern']}$"}
        else:
            defs[f"format.{name}"] = {"description": fmt["doc"], "type": "string", "anyOf": [
                {"maxLength": fmt["max_length"] + len(prefix),
                 "pattern": f"^{re.escape(prefix)}{fmt['pattern']}$"},
                {"maxLength": fmt["max_length"], "pattern": f"^{fmt['pattern']}$"},
            ]}
    for name, t in c["types"].items():
        defs[name] = json_object(c, t["doc"], t["fields"])
    request_rules, response_rules = [], []
    for cmd in c["commands"]:
        n = cmd["name"]
        if cmd["any_params"]:
            defs[f"{n}Params"] = {"description": f"{n}: any parameters.", "$ref": "#/$defs/tree"}
        elif cmd["params"]:
            defs[f"{n}Params"] = json_object(c, f"{n}'s parameters.", cmd["params"])
        if cmd["any_data"]:
            defs[f"{n}Data"] = {"description": f"{n}: any answer data.", "$ref": "#/$defs/tree"}
        elif cmd["data"]:
            defs[f"{n}Data"] = json_object(c, f"{n}'s answer data.", cmd["data"])
        params = f"{n}Params" if cmd["params"] or cmd["any_params"] else "noParams"
        request_rules.append({
            "if": {"properties": {"Command": {"const": n}}, "required": ["Command"]},
            "then": {"properties": {"Params": {"$ref": f"#/$defs/{params}"}}},
        })
        # A command that declares no answer Data answers Ok without one.
        data = {"$ref": f"#/$defs/{n}Data"} if cmd["data"] or cmd["any_data"] else False
        response_rules.append({
            "if": {"properties": {"Command": {"const": n}, "Result": {"const": "Ok"}},
                   "required": ["Command", "Result"]},
            "then": {"properties": {"Data": data}},
        })
    event_rules = []
    for ev in c["events"]:
        defs[f"{ev['type']}Data"] = json_object(c, f"{ev['type']} event data.", ev["fields"])
        event_rules.append({
            "if": {"properties": {"Type": {"const": ev["type"]}}, "required": ["Type"]},
            "then": {"properties": {"Data": {"$ref": f"#/$defs/{ev['type']}Data"}}},
        })
    defs["Request"] = {
        "$ref": "#/$defs/fields",
        "required": ["Command"],
        "properties": {
            "Command": {"type": "string"},
            "Id": {"$ref": "#/$defs/long"},
            "Params": {"$ref": "#/$defs/tree"},
        },
        "allOf": request_rules,
    }
    defs["Response"] = {
        "$ref": "#/$defs/fields",
        "required": ["Result"],
        "properties": {
            "Command": {"type": "string"},
            "Id": {"$ref": "#/$defs/long"},
            "Result": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$"},
            "Message": {"type": "string"},
            "Data": {"$ref": "#/$defs/tree"},
        },
        "allOf": response_rules,
    }
    defs["Handshake"] = {
        "$ref": "#/$defs/fields",
        "required": ["Seq"],
        "properties": {
            "Seq": {"$ref": "#/$defs/positiveLong"},
            "Version": {"$ref": "#/$defs/long"},
            "Client": {"type": "string"},
            "Mode": {"type": "string"},
            "Pid": {"$ref": "#/$defs/long"},
            "Epoch": {"$ref": "#/$defs/long"},
            "LastEventId": {"$ref": "#/$defs/long"},
            "Service": {"type": "string"},
            "HeartbeatMs": {"$ref": "#/$defs/long"},
            "MaxMessage": {"$ref": "#/$defs/long"},
        },
    }
    defs["Event"] = {
        "$ref": "#/$defs/fields",
        "required": ["Id", "Type"],
        "properties": {
            "Id": {"$ref": "#/$defs/positiveLong"},
            "Type": {"type": "string"},
            "Time": {"type": "string", "format": "date-time"},
            "Data": {"$ref": "#/$defs/tree"},
        },
        "allOf": event_rules,
    }
    defs["EventConfirmation"] = {
        "$ref": "#/$defs/fields",
        "required": ["Id"],
        "properties": {"Id": {"$ref": "#/$defs/long"}},
    }
    defs["Disconnect"] = {
        "$ref": "#/$defs/fields",
        "required": ["Reason"],
        "properties": {"Reason": {"type": "string"}, "Message": {"type": "string"}},
    }
    kinds = ["Request", "Response", "Handshake", "Event", "EventConfirmation", "Disconnect"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pipemsg.invalid/schema/rpschema.json",
        "title": "pipemsg message (JSON encoding)",
        "description": (
            "Generated by scripts/contract.py from schema/contract.toml; do not edit. One message "
            "of the pipe messaging protocol (docs/protocol.md section 3): an object with exactly "
            "one member, named by the message kind, whose value holds the fields. Unknown "
            "envelope fields are allowed and ignored. A Request's Params is checked against "
            "<Command>Params (if/then on Command; noParams for a command without parameters), "
            "an Ok Response's Data against <Command>Data (none for a command that declares no "
            "answer Data), an Event's Data against "
            "<Type>Data; commands and event types not declared keep free-form trees. Integers "
            "are signed 64-bit. Member names anywhere must match ^[A-Za-z_][A-Za-z0-9_.-]*$. "
            "Nesting deeper than 64 is rejected by the decoder (not expressible here)."),
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "oneOf": [{"required": [k], "properties": {k: {"$ref": f"#/$defs/{k}"}}} for k in kinds],
        "$defs": defs,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# ---- docs/reference.md --------------------------------------------------------------------


def example_value(c, t):
    kind = t["type"]
    if "example" in t:
        return t["example"]
    if "default" in t:
        return t["default"]
    if kind == "string":
        if t.get("format") == "domain":
            return "example.com"
        if "charset" in t:
            return "de" if t["name"] == "Location" else "Demo"
        return {"Location": "de", "Since": "2026-11-25T16:00:00.123Z"}.get(t["name"], "text")
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(t.get("min", 0), 1)
    if kind == "enumeration":
        return t["values"][0]
    if kind == "time":
        return "2026-11-25T16:00:00.123Z"
    if kind == "scalar":
        return "auto"
    if kind == "list":
        return [example_value(c, {**t["items"], "name": t["name"]})]
    if kind == "tree":
        return {"Note": "demo"}
    return {f["name"]: example_value(c, f) for f in c["types"][kind]["fields"] if f["required"]}


def to_xml(name, v):
    if isinstance(v, dict):
        if not v:
            return f"<{name}/>"
        return f"<{name}>" + "".join(to_xml(k, x) for k, x in v.items()) + f"</{name}>"
    if isinstance(v, list):
        if not v:
            return f"<{name}/>"
        return f"<{name}>" + "".join(to_xml("Item", x) for x in v) + f"</{name}>"
    if isinstance(v, bool):
        return f"<{name}>{'true' if v else 'false'}</{name}>"
    if v == "":
        return f"<{name}/>"
    return f"<{name}>{xml_escape(str(v))}</{name}>"


def md_fields(c, fields, with_default):
    head = "| name | type | required | doc |\n| --- | --- | --- | --- |"
    rows = []
    for f in fields:
        req = "yes" if f["required"] else "no"
        if with_default and "default" in f:
            req = f"no (default `{json.dumps(f['default'])}`)"
        rows.append(f"| `{f['name']}` | {describe(c, f)} | {req} | {f['doc']} |")
    return "\n".join([head] + rows)


def gen_reference(c):
    out = ["# pipemsgd reference", "",
           "Generated by `scripts/contract.py` from `schema/contract.toml`; do not edit. Every "
           "command pipemsgd serves and every event type it publishes. The message envelope, the "
           "encodings and the validation rules are in [protocol.md](protocol.md).", "",
           "Every command may also answer `BadRequest` (its `Message` says why: an unknown "
           "command or parameter, with the closest known name; a parameter of the wrong type, "
           "out of range, too long or with a character it may not hold). Commands marked *test* "
           "are served only with `pipemsgd --test-commands`.", "",
           "## Commands", ""]
    for cmd in c["commands"]:
        n = cmd["name"]
        out += [f"### {n}", "", cmd["doc"] + (" *test*" if cmd["test_only"] else ""), ""]
        if cmd["any_params"]:
            out += ["Params: any (free-form).", ""]
        elif cmd["params"]:
            out += [f"Params (`{n}Params`):", "", md_fields(c, cmd["params"], True), ""]
        else:
            out += ["Params: none.", ""]
        if cmd["any_data"]:
            out += ["Answer `Data`: the `Params` as they came.", ""]
        elif cmd["data"]:
            out += [f"Answer `Data` (`{n}Data`):", "", md_fields(c, cmd["data"], False), ""]
        else:
            out += ["Answer `Data`: none.", ""]
        results = ", ".join(f"`{r}`" for r in cmd["results"]) or "none"
        out += [f"Results beyond `Ok` and `BadRequest`: {results}.", ""]
        params = {}
        for p in cmd["params"]:
            if p["required"] or "default" in p:
                params[p["name"]] = example_value(c, p)
        if cmd["any_params"]:
            params = {"Text": "hello"}
        req = {"Id": 1, "Command": n}
        if params:
            req["Params"] = params
        resp = {"Id": 1, "Command": n, "Result": "Ok"}
        if cmd["any_data"]:
            resp["Data"] = params
        elif cmd["data"]:
            resp["Data"] = {f["name"]: example_value(c, f) for f in cmd["data"] if f["required"]}
        out += ["```json",
                json.dumps({"Request": req}, separators=(",", ":")),
                json.dumps({"Response": resp}, separators=(",", ":")),
                "```", "", "```xml", to_xml("Request", req), to_xml("Response", resp), "```", ""]
    out += ["## Events", "",
            "Transient events are dropped, never queued, when no client is attached "
            "(protocol.md section 5); `pipemsgd --transient TYPE` makes more types transient.", ""]
    for ev in c["events"]:
        t = ev["type"]
        out += [f"### {t}", "", ev["doc"] + (" Transient." if ev["transient"] else " Durable."),
                "", f"`Data` (`{t}Data`):", "", md_fields(c, ev["fields"], False), ""]
        event = {"Id": 42, "Type": t, "Time": "2026-11-25T16:00:00.123Z",
                 "Data": {f["name"]: example_value(c, f) for f in ev["fields"] if f["required"]}}
        out += ["```json", json.dumps({"Event": event}, separators=(",", ":")), "```", "",
                "```xml", to_xml("Event", event), "```", ""]
    out += ["## Types", ""]
    for name, t in c["types"].items():
        out += [f"### {name}", "", t["doc"], "", md_fields(c, t["fields"], False), ""]
    out += ["## Formats", ""]
    for name, fmt in c["formats"].items():
        out += [f"### {name}", "", fmt["doc"].rstrip(".") + ".", "",
                f"Pattern (a whole value): `{fmt['pattern']}`"
                + (f", after an optional `{fmt['optional_prefix']}`" if fmt.get("optional_prefix")
                   else "") + f"; at most {fmt['max_length']} bytes"
                + (" without it." if fmt.get("optional_prefix") else "."), ""]
    return "\n".join(out).rstrip("\n") + "\n"


# ---- src/contract/contract_tables.c -------------------------------------------------------


def c_str(s):
    if s is None:
        return "NULL"
    out = []
    for ch in s:
        if ch in '\\"':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return '"' + "".join(out) + '"'


class CGen:
    def __init__(self, c):
        self.c = c
        self.decls = []
        self.count = 0

    def ident(self, hint):
        self.count += 1
        return f"{re.sub(r'[^A-Za-z0-9_]', '_', hint)}_{self.count}"

    def type_ref(self, t, hint):
        """A pointer expression to the pm__ct_type of field or item t."""
        kind = t["type"]
        if kind in self.c["types"]:
            return f"&type_{kind}"
        ident = "t_" + self.ident(hint)
        init = [f".kind = PM__CT_{kind.upper()}", f".name = {c_str(kind)}",
                f".expect = {c_str(expect(t, self.c['formats']))}"]
        if kind == "string":
            if "min_length" in t:
                init.append(f".min_length = {t['min_length']}")
            if "max_length" in t:
                init.append(f".max_length = {t['max_length']}")
            if "charset" in t:
                init.append(f".charset = {c_str(expand_charset(t['charset']))}")
                init.append(f".charset_spec = {c_str(t['charset'])}")
            if "first" in t:
                init.append(f".first = {c_str(expand_charset(t['first']))}")
            if "format" in t:
                init.append(f".format = &format_{t['format']}")
        elif kind == "integer":
            lo, hi = t.get("min", LONG_MIN), t.get("max", LONG_MAX)
            init.append(f".min = {'INT64_MIN' if lo == LONG_MIN else lo}")
            init.append(f".max = {'INT64_MAX' if hi == LONG_MAX else hi}")
        elif kind == "enumeration":
            vals = "v_" + self.ident(hint)
            self.decls.append(f"static const char *const {vals}[] = {{"
                              + ", ".join(c_str(v) for v in t["values"]) + "};")
            init += [f".values = {vals}", f".n_values = {len(t['values'])}"]
        elif kind == "list":
            init.append(f".items = {self.type_ref(t['items'], hint + '_item')}")
            if "max_items" in t:
                init.append(f".max_items = {t['max_items']}")
        self.decls.append(f"static const pm__ct_type {ident} = {{" + ", ".join(init) + "};")
        return f"&{ident}"

    def fields(self, fields, hint):
        if not fields:
            return "NULL", 0
        rows = []
        for f in fields:
            tref = self.type_ref(f, f"{hint}_{f['name']}")
            default = c_str(default_text(f)) if "default" in f else "NULL"
            rows.append(f"    {{{c_str(f['name'])}, {c_str(f['doc'])}, {tref}, "
                        f"{'true' if f['required'] else 'false'}, {default}, "
                        f"{'true' if 'min' in f else 'false'}, "
                        f"{'true' if 'max' in f else 'false'}}},")
        ident = "f_" + self.ident(hint)
        self.decls.append(f"static const pm__ct_field {ident}[] = {{\n" + "\n".join(rows) + "\n};")
        return ident, len(fields)


def full_pattern(fmt):
    """A format's pattern with its optional prefix, as GetCommands shows it."""
    prefix = fmt.get("optional_prefix")
    return f"({re.escape(prefix)})?{fmt['pattern']}" if prefix else fmt["pattern"]


def gen_c(c):
    g = CGen(c)
    out = ["/* Generated by scripts/contract.py from schema/contract.toml; do not edit. */",
           "#include <stdint.h>", "", '#include "contract.h"', ""]
    for name, fmt in c["formats"].items():
        g.decls.append(f"static const pm__ct_format format_{name} = {{{c_str(name)}, "
                       f"{c_str(fmt['doc'])}, {c_str(full_pattern(fmt))}, "
                       f"pm__contract_format_{name}}};")
    # Named types may refer to each other: declared first, defined after their fields.
    for name in c["types"]:
        g.decls.append(f"static const pm__ct_type type_{name};")
    for name, t in c["types"].items():
        ident, n = g.fields(t["fields"], name)
        what = c_str(expect({"type": name}, c["formats"]))
        g.decls.append(f"static const pm__ct_type type_{name} = {{.kind = PM__CT_OBJECT, "
                       f".name = {c_str(name)}, .expect = {what}, "
                       f".doc = {c_str(t['doc'])}, "
                       f".fields = {ident}, .n_fields = {n}}};")
    commands = []
    for cmd in c["commands"]:
        p, np_ = g.fields(cmd["params"], cmd["name"] + "_params")
        d, nd = g.fields(cmd["data"], cmd["name"] + "_data")
        r = "NULL"
        if cmd["results"]:
            r = "r_" + g.ident(cmd["name"])
            g.decls.append(f"static const char *const {r}[] = {{"
                           + ", ".join(c_str(x) for x in cmd["results"]) + "};")
        commands.append(
            f"    {{{c_str(cmd['name'])}, {c_str(cmd['doc'])}, {p}, {np_}, {d}, {nd}, {r}, "
            f"{len(cmd['results'])}, {str(cmd['test_only']).lower()}, "
            f"{str(cmd['any_params']).lower()}, {str(cmd['any_data']).lower()}}},")
    events = []
    for ev in c["events"]:
        f, nf = g.fields(ev["fields"], ev["type"])
        events.append(f"    {{{c_str(ev['type'])}, {c_str(ev['doc'])}, "
                      f"{str(ev['transient']).lower()}, {f}, {nf}}},")
    out += g.decls
    out += ["", "const pm__ct_command pm__contract_commands[] = {"] + commands + ["};"]
    out += ["const size_t pm__contract_n_commands = "
            "sizeof(pm__contract_commands) / sizeof(pm__contract_commands[0]);", ""]
    out += ["const pm__ct_event pm__contract_events[] = {"] + events + ["};"]
    out += ["const size_t pm__contract_n_events = "
            "sizeof(pm__contract_events) / sizeof(pm__contract_events[0]);", ""]
    out += ["const pm__ct_type *const pm__contract_types[] = {"
            + ", ".join(f"&type_{n}" for n in c["types"]) + "};"]
    out += [f"const size_t pm__contract_n_types = {len(c['types'])};", ""]
    out += ["const pm__ct_format *const pm__contract_formats[] = {"
            + ", ".join(f"&format_{n}" for n in c["formats"]) + "};"]
    out += [f"const size_t pm__contract_n_formats = {len(c['formats'])};"]
    return "\n".join(out) + "\n"


# ---- include/pipemsg/client_commands.h and src/client/client_commands.c ---------------------
# The typed client API (docs/api.md): one function per command that is not test_only, a
# struct for its Params and one for its Data, and a struct per event type. The C code is
# tables (offsets into the structs) that src/client/client_typed.c walks.

C_KEYWORDS = {"default", "int", "char", "case", "switch", "for", "while", "do", "if", "else",
              "return", "struct", "union", "enum", "const", "static", "long", "short",
              "unsigned", "signed", "void", "double", "float", "register", "extern", "auto",
              "goto", "break", "continue", "sizeof", "typedef", "volatile", "bool", "inline"}


def snake(name):
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return s


def member(name):
    s = snake(name)
    return s + "_" if s in C_KEYWORDS else s


def client_commands(c):
    return [cmd for cmd in c["commands"] if not cmd["test_only"]]


def client_enums(c):
    """Enumerations by field name: the union of the values every field of that name takes."""
    enums = {}

    def visit(fields):
        for f in fields:
            t = f["items"] if f["type"] == "list" else f
            if t["type"] == "enumeration":
                vals = enums.setdefault(f["name"], [])
                vals.extend(v for v in t["values"] if v not in vals)
    for t in c["types"].values():
        visit(t["fields"])
    for cmd in client_commands(c):
        visit(cmd["params"])
        visit(cmd["data"])
    for ev in c["events"]:
        visit(ev["fields"])
    return enums


def c_member_decl(c, f, params):
    """The C declaration(s) of one field of a Params (params=True) or Data struct."""
    m = member(f["name"])
    kind = f["type"]
    string = "const char *" if params else "char *"
    lines = []
    if kind in ("string", "time"):
        lines.append(f"{string}{m};")
    elif kind in ("scalar", "tree"):
        lines.append(f"{string}{m}; /* JSON text */")
    elif kind == "boolean":
        lines.append(f"bool {m};")
    elif kind == "integer":
        lines.append(f"int64_t {m};")
    elif kind == "enumeration":
        lines.append(f"pm_{snake(f['name'])} {m};")
    elif kind in c["types"]:
        lines.append(f"pm_client_{snake(kind)} {m};")
    elif kind == "list":
        it = f["items"]["type"]
        if it in ("string", "time"):
            lines.append(f"{'const char *const' if params else 'char'} *{'' if params else '*'}{m};")
        elif it in c["types"]:
            lines.append(f"pm_client_{snake(it)} *{m};")
        else:
            raise ContractError(f"{f['name']}: the client API has no list of {it}")
        lines.append(f"size_t n_{snake(f['name'])};")
    else:
        raise ContractError(f"{f['name']}: the client API has no {kind}")
    if not f["required"]:
        lines.append(f"bool has_{snake(f['name'])};")
    return lines


def c_struct(c, name, doc, fields, params):
    out = [f"/* {doc} */", f"typedef struct {name} {{"]
    for f in fields:
        decls = c_member_decl(c, f, params)
        out.append(f"  {decls[0]:<40} /* {f['doc']} */" if "/*" not in decls[0]
                   else f"  {decls[0]}")
        out += [f"  {d}" for d in decls[1:]]
    if not fields:
        out.append("  char unused; /* C has no empty struct */")
    out.append(f"}} {name};")
    return out


def gen_client_h(c):
    out = ["/* Generated by scripts/contract.py from schema/contract.toml; do not edit.",
           " * The typed client API: see pipemsg/client.h and docs/api.md. */",
           "#ifndef PIPEMSG_CLIENT_COMMANDS_H", "#define PIPEMSG_CLIENT_COMMANDS_H", "",
           '#include "pipemsg/client.h"', "", "#ifdef __cplusplus", 'extern "C" {', "#endif",
           ""]
    out.append("/* Enumerations: 0 is a value this header does not know. */")
    for name, values in client_enums(c).items():
        e = snake(name).upper()
        out.append(f"typedef enum pm_{snake(name)} {{")
        out.append(f"  PM_{e}_UNKNOWN = 0,")
        out += [f"  PM_{e}_{snake(v).upper()}," for v in values]
        out.append(f"}} pm_{snake(name)};")
        out.append(f"/* The value's name as sent, or \"Unknown\". */")
        out.append(f"const char *pm_{snake(name)}_name(pm_{snake(name)} value);")
        out.append("")
    out.append("/* Named types of the contract. Strings, lists and JSON texts belong to the answer "
               "or event\n * that holds them. */")
    for name, t in c["types"].items():
        out += c_struct(c, f"pm_client_{snake(name)}", t["doc"], t["fields"], False)
        out.append("")
    for cmd in client_commands(c):
        s = snake(cmd["name"])
        out.append(f"/* ---- {cmd['name']}: {cmd['doc']} */")
        args = ["pm_client *client"]
        cb_args = ["pm_client *client", "const pm_result *result"]
        if cmd["params"]:
            out += c_struct(c, f"pm_client_{s}_params",
                            f"Params of {cmd['name']}; has_ marks an optional one as set "
                            "(unset: the service's default)", cmd["params"], True)
            args.append(f"const pm_client_{s}_params *params")
        if cmd["data"]:
            out += c_struct(c, f"pm_client_{s}_answer", f"The Data of {cmd['name']}'s Ok answer",
                            cmd["data"], False)
            out.append(f"/* Frees what the answer holds (and zeroes it); a zeroed answer is "
                       "fine. */")
            out.append(f"void pm_client_{s}_answer_free(pm_client_{s}_answer *answer);")
            cb_args.append(f"const pm_client_{s}_answer *answer")
        out.append(f"typedef void (*pm_client_{s}_cb)({', '.join(cb_args + ['void *data'])});")
        sync = list(args)
        if cmd["data"]:
            sync.append(f"pm_client_{s}_answer *answer")
        out.append(f"pm_result pm_client_{s}({', '.join(sync)});")
        out.append(f"int pm_client_{s}_async({', '.join(args + [f'pm_client_{s}_cb cb', 'void *data'])});")
        out.append("")
    out.append("/* ---- events */")
    for ev in c["events"]:
        out += c_struct(c, f"pm_{snake(ev['type'])}", ev["doc"], ev["fields"], False)
        out.append("")
    out.append("typedef enum pm_client_event_type {")
    out.append("  PM_CLIENT_EVENT_OTHER = 0, /* a type the contract does not declare (or a "
               "declared one whose Data\n                                does not match it): "
               "read type_name and data_json */")
    out += [f"  PM_CLIENT_EVENT_{snake(ev['type']).upper()}," for ev in c["events"]]
    out.append("} pm_client_event_type;")
    out.append("")
    out.append("/* One event, lent to the callback for its duration. */")
    out.append("typedef struct pm_client_event {")
    out.append("  pm_client_event_type type;")
    out.append("  const char *type_name; /* as sent */")
    out.append("  int64_t id;")
    out.append("  int64_t epoch;")
    out.append("  const char *time;      /* may be NULL */")
    out.append("  const char *data_json; /* the Data as JSON text; NULL when none */")
    out.append("  union {")
    out += [f"    pm_{snake(ev['type'])} {snake(ev['type'])};" for ev in c["events"]]
    out.append("  } u;")
    out.append("} pm_client_event;")
    out += ["", "#ifdef __cplusplus", "}", "#endif", "#endif"]
    return "\n".join(out) + "\n"


class ClientGen:
    def __init__(self, c):
        self.c = c
        self.decls = []
        self.done = set()

    def values(self, name):
        return f"values_{snake(name)}"

    def field_row(self, struct, f, params):
        m = member(f["name"])
        kind = f["type"]
        has = f"offsetof({struct}, has_{snake(f['name'])})" if not f["required"] else "0"
        row = {"kind": None, "count": "0", "item": "PM__CL_STRING", "item_size": "0",
               "type": "NULL", "values": "NULL", "n_values": "0"}
        if kind in ("string", "time"):
            row["kind"] = "PM__CL_STRING"
        elif kind in ("scalar", "tree"):
            row["kind"] = "PM__CL_JSON"
        elif kind == "boolean":
            row["kind"] = "PM__CL_BOOL"
        elif kind == "integer":
            row["kind"] = "PM__CL_INT"
        elif kind == "enumeration":
            row["kind"] = "PM__CL_ENUM"
            row["values"] = self.values(f["name"])
            row["n_values"] = f"sizeof({self.values(f['name'])}) / sizeof(char *)"
        elif kind in self.c["types"]:
            row["kind"] = "PM__CL_OBJECT"
            row["type"] = f"&type_{kind}"
        else:
            row["kind"] = "PM__CL_LIST"
            row["count"] = f"offsetof({struct}, n_{snake(f['name'])})"
            it = f["items"]["type"]
            if it in self.c["types"]:
                row["item"] = "PM__CL_OBJECT"
                row["type"] = f"&type_{it}"
                row["item_size"] = f"sizeof(pm_client_{snake(it)})"
            else:
                row["item_size"] = "sizeof(char *)"
        return (f"    {{{c_str(f['name'])}, {row['kind']}, offsetof({struct}, {m}), "
                f"{'false' if f['required'] else 'true'}, {has}, {row['count']}, "
                f"{row['item']}, {row['item_size']}, {row['type']}, {row['values']}, "
                f"{row['n_values']}}},")

    def table(self, ident, struct, fields, params):
        if fields:
            self.decls.append(f"static const pm__cl_field fields_{ident}[] = {{")
            self.decls += [self.field_row(struct, f, params) for f in fields]
            self.decls.append("};")
            fl, n = f"fields_{ident}", len(fields)
        else:
            fl, n = "NULL", 0
        self.decls.append(f"static const pm__cl_type type_{ident} = {{sizeof({struct}), {fl}, "
                          f"{n}}};")


def gen_client_c(c):
    g = ClientGen(c)
    out = ["/* Generated by scripts/contract.py from schema/contract.toml; do not edit. */",
           "#include <stddef.h>", "", '#include "client/client_internal.h"',
           '#include "pipemsg/client.h"', ""]
    for name, values in client_enums(c).items():
        out.append(f"static const char *const {g.values(name)}[] = {{"
                   + ", ".join(c_str(v) for v in values) + "};")
        out.append(f"const char *pm_{snake(name)}_name(pm_{snake(name)} value) {{")
        out.append(f"  return pm__client_enum_name({g.values(name)}, "
                   f"sizeof({g.values(name)}) / sizeof(char *), (int)value);")
        out.append("}")
    out.append("")
    for name in c["types"]:
        g.decls.append(f"static const pm__cl_type type_{name};")
    for name, t in c["types"].items():
        g.table(name, f"pm_client_{snake(name)}", t["fields"], False)
    out += g.decls
    g.decls = []
    out.append("")
    for cmd in client_commands(c):
        s, n = snake(cmd["name"]), cmd["name"]
        if cmd["params"]:
            g.table(f"{n}_params", f"pm_client_{s}_params", cmd["params"], True)
        if cmd["data"]:
            g.table(f"{n}_answer", f"pm_client_{s}_answer", cmd["data"], False)
        out += g.decls
        g.decls = []
        params_t = f"&type_{n}_params" if cmd["params"] else "NULL"
        data_t = f"&type_{n}_answer" if cmd["data"] else "NULL"
        out.append(f"static void deliver_{n}(pm_client *client, const pm_result *result, "
                   "void *answer, pm__client_fn fn, void *data) {")
        cargs = "client, result, answer, data" if cmd["data"] else "client, result, data"
        if not cmd["data"]:
            out.append("  (void)answer;")
        out.append(f"  ((pm_client_{s}_cb)fn)({cargs});")
        out.append("}")
        out.append(f"static const pm__cl_command command_{n} = {{{c_str(n)}, {params_t}, "
                   f"{data_t}, deliver_{n}}};")
        args = ["pm_client *client"]
        call_params = "NULL"
        if cmd["params"]:
            args.append(f"const pm_client_{s}_params *params")
            call_params = "params"
        sync = list(args)
        answer = "NULL"
        if cmd["data"]:
            sync.append(f"pm_client_{s}_answer *answer")
            answer = "answer"
            out.append(f"void pm_client_{s}_answer_free(pm_client_{s}_answer *answer) {{")
            out.append(f"  pm__client_typed_free(&type_{n}_answer, answer);")
            out.append("}")
        out.append(f"pm_result pm_client_{s}({', '.join(sync)}) {{")
        out.append(f"  return pm__client_typed_call(client, &command_{n}, {call_params}, "
                   f"{answer});")
        out.append("}")
        out.append(f"int pm_client_{s}_async({', '.join(args + [f'pm_client_{s}_cb cb', 'void *data'])}) {{")
        out.append(f"  return pm__client_typed_async(client, &command_{n}, {call_params}, "
                   "(pm__client_fn)cb, data);")
        out.append("}")
        out.append("")
    for ev in c["events"]:
        g.table(f"event_{ev['type']}", f"pm_{snake(ev['type'])}", ev["fields"], False)
    out += g.decls
    out.append("")
    out.append("const pm__cl_event pm__client_events[] = {")
    for ev in c["events"]:
        out.append(f"    {{{c_str(ev['type'])}, PM_CLIENT_EVENT_{snake(ev['type']).upper()}, "
                   f"&type_event_{ev['type']}}},")
    out.append("};")
    out.append(f"const size_t pm__client_n_events = {len(c['events'])};")
    return "\n".join(out) + "\n"


# ---- main ---------------------------------------------------------------------------------

OUTPUTS = {
    "schema/RPSchema.xsd": gen_xsd,
    "schema/rpschema.json": gen_json,
    "docs/reference.md": gen_reference,
    "src/contract/contract_tables.c": gen_c,
    "include/pipemsg/client_commands.h": gen_client_h,
    "src/client/client_commands.c": gen_client_c,
}


def main(argv):
    check_only = "--check" in argv[1:]
    try:
        c = load()
    except (ContractError, KeyError, tomllib.TOMLDecodeError) as e:
        print(f"contract.py: {SOURCE.relative_to(ROOT)}: {e}", file=sys.stderr)
        return 2
    stale = []
    for rel, gen in OUTPUTS.items():
        path = ROOT / rel
        text = gen(c)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            continue
        stale.append(rel)
        if not check_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if check_only and stale:
        print("contract.py: out of date with schema/contract.toml (run scripts/contract.py): "
              + ", ".join(stale), file=sys.stderr)
        return 1
    for rel in stale:
        print(f"contract.py: wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
