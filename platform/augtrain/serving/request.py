"""A prediction request, read as hostile: its size, its JSON or multipart body, its inputs.

Every problem is one `RequestError`: an HTTP status and a message naming the problem (the endpoint
answers it as JSON). Nothing here decodes an input: the model's modality does (`Modality.decode_input`).
"""

from __future__ import annotations

import base64
import binascii
import json
from email import policy
from email.parser import BytesParser

from augtrain.errors import refuse_constant

MAX_BODY_BYTES = 16 << 20  # a request's body: 16 MiB
MAX_INPUTS = 64  # inputs in one request
MAX_NESTING = 8  # lists and objects within one input (a series of steps is 2 deep, an image as numbers 3)


class RequestError(Exception):
    """A request refused: `status` (4xx) and the message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of a Starlette request, refused once it exceeds `limit` bytes (a declared length: before
    reading any of it)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit) if declared.isdigit() else RequestError(400, "Content-Length is not a number")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> RequestError:
    return RequestError(413, f"body too large: more than {limit} bytes (the limit; send fewer or smaller inputs)")


def sent_inputs(content_type: str, body: bytes) -> list[tuple[str, object]]:
    """[(name, value)] of a body: JSON `{"inputs": [...]}` (a string: a file's bytes in base64; an array:
    nested numbers; an object, e.g. a text model's `{"text": "..."}`) named `inputs[i]`, or multipart/form-data
    files (their bytes) named by file name."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json":
        inputs = _json_inputs(body)
    elif media == "multipart/form-data":
        inputs = _multipart_inputs(content_type, body)
    else:
        raise RequestError(415, f"unsupported content type {content_type[:80]!r}: send application/json "
                                "({\"inputs\": [...]}) or multipart/form-data files")
    if not inputs:
        raise RequestError(400, "no inputs")
    if len(inputs) > MAX_INPUTS:
        raise RequestError(400, f"too many inputs: {len(inputs)} (at most {MAX_INPUTS} a request)")
    return inputs


def _json_inputs(body: bytes) -> list[tuple[str, object]]:
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=refuse_constant)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"malformed JSON: not UTF-8 (byte {exc.start + 1})") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise RequestError(400, f"malformed JSON: {str(exc)[:200]}") from None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list):
        raise RequestError(400, 'malformed request: expected a JSON object {"inputs": [...]}')
    if len(inputs) > MAX_INPUTS:  # before decoding any of them
        raise RequestError(400, f"too many inputs: {len(inputs)} (at most {MAX_INPUTS} a request)")
    named = []
    for i, value in enumerate(inputs):
        if isinstance(value, str):
            try:
                value = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(422, f"inputs[{i}]: not base64 (a file's bytes are sent in base64)") from None
        elif not isinstance(value, (list, dict)):
            raise RequestError(422, f"inputs[{i}]: expected a file's bytes in base64 (a string), nested numbers (an "
                                    "array) or an object the model's modality reads")
        elif too_deep(value):  # Ray's serializer, handing it to a replica, fails (a 500) from about 500 levels
            raise RequestError(422, f"inputs[{i}]: lists or objects nested deeper than {MAX_NESTING} levels")
        named.append((f"inputs[{i}]", value))
    return named


def too_deep(value) -> bool:
    """Whether lists and objects nest in `value` deeper than MAX_NESTING (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def _multipart_inputs(content_type: str, body: bytes) -> list[tuple[str, object]]:
    """The files of a multipart/form-data body, parsed by the standard library's MIME parser (no temporary
    files; the body is already bounded)."""
    if "boundary=" not in content_type:
        raise RequestError(400, "malformed multipart body: no boundary in the content type")
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1")
                                                         + b"\r\n\r\n" + body)
    if not message.is_multipart() or message.defects:
        raise RequestError(400, "malformed multipart body")
    named = []
    for n, part in enumerate(message.iter_parts()):
        if n >= MAX_INPUTS:
            raise RequestError(400, f"too many inputs: more than {MAX_INPUTS} parts (at most {MAX_INPUTS} a request)")
        name = part.get_filename() or part.get_param("name", header="content-disposition") or f"part[{n}]"
        named.append((str(name)[:200], part.get_payload(decode=True) or b""))
    return named
