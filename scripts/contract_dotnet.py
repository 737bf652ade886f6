#!/usr/bin/env python3
"""Generates bindings/dotnet/Commands.g.cs from schema/contract.toml (through the loader of
scripts/contract.py): for each command that is not test_only, a method of PipeMsg.Client and
its ...Async twin, a class for its answer's Data, and an enum per enumeration field name (the
union of its values, as client_commands.h has them), plus a class per named type.

The output is checked in. `contract_dotnet.py` writes it; `contract_dotnet.py --check` writes
nothing and exits 1, naming the file, when it differs from what the contract gives (the CTest
test contract_dotnet_drift). bindings/dotnet/README.md.
"""

import re
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contract  # noqa: E402

OUTPUT = "bindings/dotnet/Commands.g.cs"
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CS_KEYWORDS = {"abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char",
               "checked", "class", "const", "continue", "decimal", "default", "delegate", "do",
               "double", "else", "enum", "event", "explicit", "extern", "false", "finally",
               "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int",
               "interface", "internal", "is", "lock", "long", "namespace", "new", "null",
               "object", "operator", "out", "override", "params", "private", "protected",
               "public", "readonly", "ref", "return", "sbyte", "sealed", "short", "sizeof",
               "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true",
               "try", "typeof", "uint", "ulong", "unchecked", "unsafe", "ushort", "using",
               "virtual", "void", "volatile", "while"}


def ident(name, where):
    if not IDENT.match(name) or name in CS_KEYWORDS:
        raise contract.ContractError(f"{where}: {name} is not a C# identifier")
    return name


def camel(name):
    s = name[0].lower() + name[1:]
    return "@" + s if s in CS_KEYWORDS else s


def xml_doc(text):
    return contract.xml_escape(text)


def cs_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Gen:
    def __init__(self, c):
        self.c = c
        self.enums = contract.client_enums(c)
        for name, values in self.enums.items():
            ident(name, name)
            for v in values:
                ident(v, f"{name} value")
                if v == "Unknown":
                    raise contract.ContractError(f"{name}: Unknown is the binding's own value")

    def answer_type(self, f):
        """The C# type of a Data field (nullable when optional)."""
        kind = f["type"]
        opt = not f["required"]
        if kind in ("string", "time", "scalar", "tree"):
            return "string"
        if kind == "boolean":
            return "bool?" if opt else "bool"
        if kind == "integer":
            return "long?" if opt else "long"
        if kind == "enumeration":
            return f"{f['name']}?" if opt else f["name"]
        if kind in self.c["types"]:
            return kind
        if kind == "list":
            it = f["items"]["type"]
            if it in ("string", "time"):
                return "IReadOnlyList<string>"
            if it in self.c["types"]:
                return f"IReadOnlyList<{it}>"
        raise contract.ContractError(f"{f['name']}: the C# binding has no {kind}")

    def decode_expr(self, f, where):
        """The expression reading field f from the Dictionary o."""
        kind, name, req = f["type"], cs_str(f["name"]), "true" if f["required"] else "false"
        if kind in ("string", "time"):
            return f"Decode.String(o, {name}, {where}, {req})"
        if kind in ("scalar", "tree"):
            return f"Decode.JsonText(o, {name}, {where}, {req})"
        if kind == "boolean":
            return (f"Decode.Bool(o, {name}, {where})" if f["required"]
                    else f"Decode.OptionalBool(o, {name}, {where})")
        if kind == "integer":
            return (f"Decode.Int(o, {name}, {where})" if f["required"]
                    else f"Decode.OptionalInt(o, {name}, {where})")
        if kind == "enumeration":
            text = f"Decode.String(o, {name}, {where}, {req})"
            if f["required"]:
                return f"Enums.Parse{f['name']}({text})"
            return f"Enums.ParseOptional{f['name']}({text})"
        if kind in self.c["types"]:
            return (f"Decode.Object(o, {name}, {where}, {req}, "
                    f"(v, w) => {kind}.FromJson(v, w))")
        it = f["items"]["type"]
        if it in ("string", "time"):
            return f"Decode.Strings(o, {name}, {where}, {req})"
        return f"Decode.Objects(o, {name}, {where}, {req}, (v, w) => {it}.FromJson(v, w))"

    def data_class(self, name, doc, fields):
        out = [f"    /// <summary>{xml_doc(doc)}</summary>",
               f"    public sealed class {name}", "    {"]
        for f in fields:
            ident(f["name"], f"{name}.{f['name']}")
            extra = ""
            if f["type"] in ("scalar", "tree"):
                extra = " (JSON text)"
            if not f["required"]:
                extra += " Null when absent."
            out.append(f"        /// <summary>{xml_doc(f['doc'])}{xml_doc(extra)}</summary>")
            out.append(f"        public {self.answer_type(f)} {f['name']} {{ get; private set; }}")
        out += ["", f"        internal static {name} FromJson(object value, string where)",
                "        {", "            var o = Decode.Fields(value, where);",
                f"            var r = new {name}();"]
        for f in fields:
            w = f'where + ".{f["name"]}"'
            out.append(f"            r.{f['name']} = {self.decode_expr(f, w)};")
        out += ["            return r;", "        }", "    }", ""]
        return out

    def param_type(self, p):
        kind = p["type"]
        opt = not p["required"]
        if kind in ("string", "time"):
            return "string"
        if kind in ("scalar", "tree"):
            return "string"  # JSON text
        if kind == "boolean":
            return "bool?" if opt else "bool"
        if kind == "integer":
            return "long?" if opt else "long"
        if kind == "enumeration":
            return f"{p['name']}?" if opt else p["name"]
        if kind == "list" and p["items"]["type"] in ("string", "time"):
            return "IEnumerable<string>"
        raise contract.ContractError(f"{p['name']}: the C# binding takes no {kind} parameter")

    def param_value(self, p):
        arg, kind = camel(p["name"]), p["type"]
        if kind in ("scalar", "tree"):
            return f"Json.Parse({arg})"
        if kind == "enumeration":
            return f"{arg}.ToString()" if p["required"] else f"{arg}.Value.ToString()"
        if kind == "list":
            return f"Encode.Strings({arg})"
        if kind in ("boolean", "integer") and not p["required"]:
            return f"{arg}.Value"
        return arg

    def command(self, cmd):
        n = ident(cmd["name"], "command")
        params = [p for p in cmd["params"] if p["required"]] + \
                 [p for p in cmd["params"] if not p["required"]]
        sig = []
        for p in params:
            ident(p["name"], f"{n}.{p['name']}")
            t = self.param_type(p)
            sig.append(f"{t} {camel(p['name'])}" + ("" if p["required"] else " = null"))
        answer = f"{n}Answer" if cmd["data"] else None
        docs = [f"        /// <summary>{xml_doc(cmd['doc'])}</summary>"]
        for p in params:
            d = p["doc"]
            if not p["required"]:
                d += (f" Null: not sent (the service's default, {contract.default_text(p)})."
                      if "default" in p else " Null: not sent (the service's default).")
            if p["type"] in ("scalar", "tree"):
                d += " JSON text."
            docs.append(f'        /// <param name="{camel(p["name"]).lstrip("@")}">'
                        f"{xml_doc(d)}</param>")
        results = ", ".join(["BadRequest"] + cmd["results"])
        docs.append(f'        /// <exception cref="PipeMsgException">The result was not Ok '
                    f"(from the service: {results}; or a client-side result).</exception>")
        body = ["            var p = new List<KeyValuePair<string, object>>();"]
        for p in params:
            arg = camel(p["name"])
            add = (f"p.Add(new KeyValuePair<string, object>({cs_str(p['name'])}, "
                   f"{self.param_value(p)}));")
            if p["required"] and p["type"] in ("string", "time", "scalar", "tree", "list"):
                body.append(f"            if ({arg} == null) throw new ArgumentNullException("
                            f"{cs_str(arg.lstrip('@'))});")
                body.append(f"            {add}")
            elif p["required"]:
                body.append(f"            {add}")
            else:
                body.append(f"            if ({arg} != null) {add}")
        decode = (f"(v, w) => {answer}.FromJson(v, w)" if answer else "Decode.NoData")
        out = docs + [
            f"        public {answer or 'void'} {n}({', '.join(sig)})",
            "        {"] + body + [
            f"            {'return ' if answer else ''}Invoke({cs_str(n)}, p, {decode});",
            "        }", ""]
        token = "CancellationToken cancellationToken = default(CancellationToken)"
        out += docs[:-1] + [
            '        /// <param name="cancellationToken">Gives the call up (Client.CallAsync '
            "says how).</param>"] + docs[-1:] + [
            f"        public {'Task<' + answer + '>' if answer else 'Task'} "
            f"{n}Async({', '.join(sig + [token])})",
            "        {"] + body + [
            f"            return InvokeAsync({cs_str(n)}, p, {decode}, cancellationToken);"
            if answer else
            f"            return InvokeAsync<object>({cs_str(n)}, p, {decode}, cancellationToken);",
            "        }", ""]
        return out

    def generate(self):
        out = ["// Generated by scripts/contract_dotnet.py from schema/contract.toml; do not edit.",
               "// PipeMsg.Client's typed commands (bindings/dotnet/README.md).",
               "using System;", "using System.Collections.Generic;",
               "using System.Threading;", "using System.Threading.Tasks;",
               "", "namespace PipeMsg", "{"]
        for name, values in self.enums.items():
            out += [f"    /// <summary>The values of {name} fields; Unknown is one this build of "
                    "the binding does not know.</summary>",
                    f"    public enum {name}", "    {", "        Unknown = 0,"]
            out += [f"        {v} = {i + 1}," for i, v in enumerate(values)]
            out += ["    }", ""]
        out += ["    internal static class Enums", "    {"]
        for name, values in self.enums.items():
            out += [f"        internal static {name} Parse{name}(string s)", "        {",
                    "            switch (s)", "            {"]
            out += [f"                case {cs_str(v)}: return {name}.{v};" for v in values]
            out += [f"                default: return {name}.Unknown;", "            }",
                    "        }", "",
                    f"        internal static {name}? ParseOptional{name}(string s)",
                    "        {",
                    f"            return s == null ? ({name}?)null : Parse{name}(s);",
                    "        }", ""]
        out[-1:] = ["    }", ""]
        for name, t in self.c["types"].items():
            ident(name, "type")
            out += self.data_class(name, t["doc"], t["fields"])
        commands = contract.client_commands(self.c)
        for cmd in commands:
            if cmd["data"]:
                out += self.data_class(f"{cmd['name']}Answer",
                                       f"The Data of {cmd['name']}'s Ok answer.", cmd["data"])
        out += ["    public sealed partial class Client", "    {",
                "        /// <summary>The commands of the contract this build has a method "
                "for.</summary>",
                "        public static readonly IReadOnlyList<string> Commands = new[]",
                "        {"]
        out += [f"            {cs_str(cmd['name'])}," for cmd in commands]
        out += ["        };", ""]
        for cmd in commands:
            out += self.command(cmd)
        out[-1:] = ["    }", "}"]
        return "\n".join(out) + "\n"


def main(argv):
    check_only = "--check" in argv[1:]
    try:
        c = contract.load()
        text = Gen(c).generate()
    except (contract.ContractError, KeyError, tomllib.TOMLDecodeError) as e:
        print(f"contract_dotnet.py: schema/contract.toml: {e}", file=sys.stderr)
        return 2
    path = contract.ROOT / OUTPUT
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return 0
    if check_only:
        names = [m for cmd in contract.client_commands(c)
                 for m in (cmd["name"], cmd["name"] + "Async")]
        missing = [m for m in names if old is None or f" {m}(" not in old]
        print(f"contract_dotnet.py: {OUTPUT} is out of date with schema/contract.toml "
              "(run scripts/contract_dotnet.py)"
              + (f"; PipeMsg.Client lacks {', '.join(missing)}" if missing else ""),
              file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"contract_dotnet.py: wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
