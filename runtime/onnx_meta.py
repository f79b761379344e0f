"""Read an ONNX graph's input width and metadata from its bytes, without the onnx package or a session.

Loading checks that the graph and the manifest agree before any session exists (sessions
are created on first use). The protobuf walk follows only the path
ModelProto.graph(7) -> GraphProto.input(11) -> ValueInfoProto.type(2) ->
TypeProto.tensor_type(1) -> shape(2) -> dim(1) -> dim_value(1), and
ModelProto.metadata_props(14) -> StringStringEntryProto key(1) / value(2), skipping
everything else by its length, so it costs microseconds even for large forests.
"""

from __future__ import annotations


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) where value is an int or a sub-buffer."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def _first(buf: memoryview, field: int) -> memoryview | None:
    for f, wire, value in _fields(buf):
        if f == field and wire == 2:
            return value
    return None


def input_width(data: bytes) -> int | None:
    """The static second dimension of the first graph input, or None if it is not recorded."""
    try:
        graph = _first(memoryview(data), 7)
        value_info = _first(graph, 11) if graph is not None else None
        typ = _first(value_info, 2) if value_info is not None else None
        tensor = _first(typ, 1) if typ is not None else None
        shape = _first(tensor, 2) if tensor is not None else None
        if shape is None:
            return None
        dims = [d for f, w, d in _fields(shape) if f == 1 and w == 2]
        if len(dims) != 2:
            return None
        for f, w, v in _fields(dims[1]):
            if f == 1 and w == 0:
                return int(v)
        return None
    except ValueError:
        return None


def metadata(data: bytes) -> dict[str, str] | None:
    """The model's ``metadata_props`` as a dict, or None if the bytes are not a readable ModelProto."""
    try:
        out: dict[str, str] = {}
        for field, wire, entry in _fields(memoryview(data)):
            if field == 14 and wire == 2:
                kv = {f: bytes(v).decode("utf-8") for f, w, v in _fields(entry) if f in (1, 2) and w == 2}
                out[kv.get(1, "")] = kv.get(2, "")
        return out
    except (ValueError, UnicodeDecodeError):
        return None
