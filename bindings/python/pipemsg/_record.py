"""Records (an answer's or an event's Data, as the contract declares it) and the base of the
generated command methods."""

from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type, TypeVar

from ._errors import TransportError

R = TypeVar("R", bound="Record")

# A field as the generator writes it: (attribute, wire name, type spec, required).
FieldSpec = Tuple[str, str, Tuple[Any, ...], bool]


class DataMismatch(Exception):
    """The Data does not match the contract; str() says where."""


def _decode(spec: Tuple[Any, ...], value: Any, where: str) -> Any:
    kind = spec[0]
    if kind in ("string", "time"):
        if not isinstance(value, str):
            raise DataMismatch(f"{where}: not a string")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise DataMismatch(f"{where}: not a boolean")
        return value
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise DataMismatch(f"{where}: not an integer")
        return value
    if kind == "enumeration":
        # A value this build does not know stays a string: the service may be newer.
        if not isinstance(value, str):
            raise DataMismatch(f"{where}: not a string")
        return value
    if kind == "scalar":
        if not isinstance(value, (str, int, bool)):
            raise DataMismatch(f"{where}: not a string, integer or boolean")
        return value
    if kind == "tree":
        if not isinstance(value, dict):
            raise DataMismatch(f"{where}: not an object")
        return value
    if kind == "list":
        if not isinstance(value, list):
            raise DataMismatch(f"{where}: not a list")
        return [_decode(spec[1], v, f"{where}[{i}]") for i, v in enumerate(value)]
    from ._contract import RECORDS
    return RECORDS[spec[1]]._decode(value, where)


class Record:
    """Fields of a Data as attributes (snake_case), from the contract. as_dict() gives the Data
    as it came, members this build's contract does not declare included."""

    __slots__ = ("_data",)
    _FIELDS: ClassVar[Tuple[FieldSpec, ...]] = ()

    @classmethod
    def _decode(cls: Type[R], data: Any, where: str) -> R:
        if not isinstance(data, dict):
            raise DataMismatch(f"{where}: not an object")
        self = cls.__new__(cls)
        self._data = data
        for attr, wire, spec, required in cls._FIELDS:
            if wire in data:
                setattr(self, attr, _decode(spec, data[wire], f"{where}.{wire}"))
            elif required:
                raise DataMismatch(f"{where}: {wire} is missing")
            else:
                setattr(self, attr, None)
        return self

    @classmethod
    def from_data(cls: Type[R], data: Mapping[str, Any]) -> R:
        """The record of a Data dict; ValueError when it does not match the contract."""
        try:
            return cls._decode(dict(data), "Data")
        except DataMismatch as e:
            raise ValueError(str(e)) from None

    def as_dict(self) -> Dict[str, Any]:
        return self._data

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._data == other._data  # type: ignore

    __hash__ = None  # type: ignore[assignment]  # the Data is a mutable dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{attr}={getattr(self, attr)!r}" for attr, _, _, _ in self._FIELDS) + ")"


def decode_answer(command: str, answer: Optional[Type[Record]], data: Optional[Dict[str, Any]]
                  ) -> Any:
    """The typed answer of a command, or TransportError when its Data breaks the contract."""
    if answer is None:
        return None
    try:
        return answer._decode(data if data is not None else {}, f"{command} Data")
    except DataMismatch as e:
        raise TransportError("TransportError", f"answer does not match the contract: {e}",
                             from_service=False) from None


def params_of(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The Params to send: a None parameter is left out (the service applies its default)."""
    return {k: (v.as_dict() if isinstance(v, Record) else v)
            for k, v in params.items() if v is not None}


class CommandMethods:
    """What the generated methods call; pipemsg.Client implements it."""

    def _typed_call(self, command: str, params: Mapping[str, Any],
                    answer: Optional[Type[Record]]) -> Any:
        raise NotImplementedError

    async def _atyped_call(self, command: str, params: Mapping[str, Any],
                           answer: Optional[Type[Record]]) -> Any:
        raise NotImplementedError
