"""What a model file says about the machine that wrote it: absolute paths, host and user names.

Read as text where the file is text: an ONNX file's strings (names, doc strings, metadata, not
the weights' bytes, where any word turns up by chance), a PNG's text chunks, any other file whole.
"""

import getpass
import re
import socket
from pathlib import Path

import onnx
from google.protobuf.descriptor import FieldDescriptor
from PIL import Image

# /a/b..., ~/a, C:\a: a slash that starts a path, not one inside "mg/dL", "1/model.onnx" or a URL.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+-]+/)+[\w.+-]*|(?<!\w)~/[\w.+-]+|\b[A-Za-z]:\\\w")
MIN_NAME = 4  # a shorter host or user name ("vm") turns up inside ordinary words and names


def traces(path: Path) -> list[str]:
    """The absolute paths and this machine's host or user name found in one file."""
    text = "\n".join(_strings(path))
    found = ABSOLUTE_PATH.findall(text)
    for name in {socket.gethostname(), getpass.getuser()}:
        if len(name) >= MIN_NAME and re.search(rf"\b{re.escape(name)}\b", text):
            found.append(name)
    return found


def _strings(path: Path) -> list[str]:
    if path.suffix == ".onnx":
        return list(_proto_strings(onnx.load(str(path))))
    if path.suffix == ".png":
        with Image.open(path) as image:
            return [f"{k}={v}" for k, v in image.info.items() if isinstance(v, str)]
    return [path.read_text(encoding="utf-8", errors="replace")]


def _proto_strings(message):
    """Every string field of a protobuf message and the messages inside it."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_STRING:
                yield item
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _proto_strings(item)
