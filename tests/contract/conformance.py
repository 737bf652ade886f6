#!/usr/bin/env python3
"""The conformance test's second half (docs/testing.md): runs test_contract (its path is the
argument) with PM_CONTRACT_RECORD set, so every payload it sends to or receives from pipemsgd
is written to a temporary directory, then checks each one again with independent validators
against the generated schemas: python3-jsonschema against schema/rpschema.json and
python3-xmlschema against schema/RPSchema.xsd, a Params or Data as an element of its named
type (<Command>Params, <Command>Data, <EventType>Data). Also checks that both schemas reject a
Location that is not a string and a misspelt parameter.

Exits 0 when everything is valid, 1 on the first invalid message, 77 (skipped) when a
validator is not installed (scripts/bootstrap.sh installs both)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SKIPPED = 77

try:
    import jsonschema
    import xmlschema
except ImportError as e:
    print(f"SKIP: {e.name} is not installed (apt-get install python3-jsonschema "
          "python3-xmlschema)")
    sys.exit(SKIPPED)

XSD = ROOT / "schema" / "RPSchema.xsd"
JSON_SCHEMA = json.loads((ROOT / "schema" / "rpschema.json").read_text(encoding="utf-8"))


def named_types_schema(base):
    """A schema that includes RPSchema.xsd and declares one element per named complex type,
    so a Params or Data subtree can be validated as that type."""
    names = sorted(n for n, t in base.types.items() if t.is_complex() and
                   (n.endswith("Params") or n.endswith("Data")))
    decls = "\n".join(f'  <xs:element name="{n}" type="{n}"/>' for n in names)
    text = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            f'elementFormDefault="qualified">\n'
            f'  <xs:include schemaLocation="{XSD.as_uri()}"/>\n{decls}\n</xs:schema>\n')
    return xmlschema.XMLSchema10(text, base_url=str(XSD.parent)), set(names)


def typed_part(fields):
    """(element name, type name) of the typed Params or Data in a message, or None."""
    kind = fields.tag
    if kind == "Request":
        return "Params", (fields.findtext("Command") or "") + "Params"
    if kind == "Response" and fields.findtext("Result") == "Ok":
        return "Data", (fields.findtext("Command") or "") + "Data"
    if kind == "Event":
        return "Data", (fields.findtext("Type") or "") + "Data"
    return None


def check_xml(path, envelope, typed, typed_names):
    root = ET.fromstring(path.read_bytes())
    envelope.validate(root)
    part = typed_part(root)
    if part is None:
        return
    name, type_name = part
    elem = root.find(name)
    if elem is None or type_name not in typed_names:
        return
    sub = ET.Element(type_name)
    sub.extend(list(elem))
    sub.text = elem.text
    typed.validate(sub)


def check_json(path, validator):
    validator.validate(json.loads(path.read_text(encoding="utf-8")))


def must_reject(what, validate):
    try:
        validate()
    except (jsonschema.ValidationError, xmlschema.XMLSchemaValidationError):
        return
    raise AssertionError(f"{what} was accepted")


def generic_rejections(validator, typed):
    must_reject("JSON Location 123", lambda: validator.validate(
        {"Request": {"Command": "StartVpn", "Params": {"Location": 123}}}))
    must_reject("JSON misspelt Locaton", lambda: validator.validate(
        {"Request": {"Command": "StartVpn", "Params": {"Locaton": "de"}}}))
    must_reject("JSON Count 0", lambda: validator.validate(
        {"Request": {"Command": "EmitEvent", "Params": {"Type": "X", "Count": 0}}}))
    must_reject("JSON GetVersion Data without Protocol", lambda: validator.validate(
        {"Response": {"Command": "GetVersion", "Result": "Ok", "Data": {"Version": "1"}}}))
    validator.validate({"Request": {"Command": "StartVpn", "Params": {"Location": "de"}}})
    must_reject("XML misspelt Locaton", lambda: typed.validate(
        ET.fromstring("<StartVpnParams><Locaton>de</Locaton></StartVpnParams>")))
    must_reject("XML Location with a space", lambda: typed.validate(
        ET.fromstring("<StartVpnParams><Location>d e</Location></StartVpnParams>")))
    must_reject("XML EnableKillSwitch 1", lambda: typed.validate(
        ET.fromstring("<StartVpnParams><EnableKillSwitch>1</EnableKillSwitch></StartVpnParams>")))
    typed.validate(ET.fromstring("<StartVpnParams><Location>de</Location></StartVpnParams>"))


def reference_examples(validator, envelope, typed, typed_names):
    """docs/reference.md's examples keep to the schemas too."""
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    n = 0
    with tempfile.TemporaryDirectory(prefix="pm-contract-ref-") as d:
        for lang, block in re.findall(r"```(json|xml)\n(.*?)```", text, re.S):
            for line in block.splitlines():
                path = Path(d) / f"{n}.{lang}"
                path.write_text(line, encoding="utf-8")
                if lang == "json":
                    check_json(path, validator)
                else:
                    check_xml(path, envelope, typed, typed_names)
                n += 1
    return n


def main(argv):
    if len(argv) != 2:
        print("usage: conformance.py PATH-TO-test_contract", file=sys.stderr)
        return 2
    validator = jsonschema.Draft202012Validator(JSON_SCHEMA)
    envelope = xmlschema.XMLSchema10(str(XSD))
    typed, typed_names = named_types_schema(envelope)
    generic_rejections(validator, typed)
    examples = reference_examples(validator, envelope, typed, typed_names)
    with tempfile.TemporaryDirectory(prefix="pm-contract-") as d:
        env = dict(os.environ, PM_CONTRACT_RECORD=d)
        run = subprocess.run([argv[1]], env=env)
        if run.returncode != 0:
            print(f"conformance.py: test_contract failed ({run.returncode})", file=sys.stderr)
            return 1
        files = sorted(Path(d).iterdir())
        counts = {"json": 0, "xml": 0}
        for path in files:
            try:
                if path.suffix == ".json":
                    check_json(path, validator)
                else:
                    check_xml(path, envelope, typed, typed_names)
            except (jsonschema.ValidationError, xmlschema.XMLSchemaValidationError) as e:
                print(f"conformance.py: {path.name} is invalid:\n"
                      f"{path.read_text(encoding='utf-8')[:2000]}\n{e}", file=sys.stderr)
                return 1
            counts[path.suffix[1:]] += 1
    if counts["json"] == 0 or counts["xml"] == 0:
        print("conformance.py: test_contract recorded no messages", file=sys.stderr)
        return 1
    print(f"conformance.py: {counts['json']} JSON and {counts['xml']} XML messages valid, "
          f"and {examples} examples of docs/reference.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
