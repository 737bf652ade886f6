"""The binding against schema/contract.toml, read here on its own: every command has its
methods with the contract's parameters, every event type its record, every result an exception
class. contract_drift_python (scripts/contract_python.py --check) says when _contract.py is
stale; this says what is missing."""

import inspect
import re
import tomllib
from pathlib import Path

import pipemsg

CONTRACT = Path(__file__).resolve().parents[3] / "schema" / "contract.toml"


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def contract():
    with open(CONTRACT, "rb") as f:
        return tomllib.load(f)


def test_every_command_has_its_methods():
    missing = []
    for cmd in contract()["commands"]:
        if cmd["name"] not in pipemsg.COMMANDS:
            missing.append(f"{cmd['name']}: not in pipemsg.COMMANDS")
        if cmd.get("test_only"):
            continue
        for name in (snake(cmd["name"]), "a" + snake(cmd["name"])):
            method = getattr(pipemsg.Client, name, None)
            if method is None:
                missing.append(f"{cmd['name']}: no pipemsg.Client.{name}")
                continue
            params = [p for p in inspect.signature(method).parameters if p != "self"]
            want = [snake(p["name"]) for p in cmd.get("params", [])]
            if sorted(params) != sorted(want):
                missing.append(f"{cmd['name']}: {name}{tuple(params)} takes not {tuple(want)}")
            if not inspect.getdoc(method):
                missing.append(f"{cmd['name']}: {name} has no docstring")
        if cmd.get("data") and not hasattr(pipemsg, cmd["name"] + "Answer"):
            missing.append(f"{cmd['name']}: no pipemsg.{cmd['name']}Answer")
    assert not missing, "the Python binding lags the contract (run scripts/contract_python.py): " \
        + "; ".join(missing)


def test_every_event_type_has_its_record():
    for ev in contract()["events"]:
        record = pipemsg.EVENTS.get(ev["type"])
        assert record is not None, f"{ev['type']}: no record in pipemsg.EVENTS"
        assert [f[1] for f in record._FIELDS] == [f["name"] for f in ev.get("fields", [])]


def test_every_result_has_an_exception_class():
    known = pipemsg.known_results()
    for cmd in contract()["commands"]:
        for result in cmd.get("results", []):
            assert result in known, \
                f"{cmd['name']} may answer {result}: add its class to pipemsg/_errors.py"


def test_type_hints_resolve():
    import typing
    for name in pipemsg.RECORDS.keys() | pipemsg.EVENTS.keys():
        typing.get_type_hints(getattr(pipemsg, name))
    for name, method in inspect.getmembers(pipemsg.Client, inspect.isfunction):
        typing.get_type_hints(method)
    hints = typing.get_type_hints(pipemsg.GetStatsAnswer)
    assert hints["events"] is pipemsg.EventStats


def test_records_are_typed():
    hints = pipemsg.GetStateAnswer.__annotations__
    assert hints["state"] == "Literal['Disconnected', 'Connecting', 'Connected', 'Disconnecting']"
    assert hints["last_error"] == "Optional[str]"
    assert (Path(pipemsg.__file__).parent / "py.typed").exists()
    assert pipemsg.Client.start_vpn.__doc__.startswith("Starts connecting")
