"""Reading files a user hands us, bounded: at most the limit + 1 bytes are ever read.

`Path.read_bytes()` on `/dev/zero`, a FIFO fed by `yes`, or a 50 GB file reads until memory
runs out. Every file `pt` parses from a user (pipeline files, keys, a dashboard token, seals)
goes through `read_bounded`, which stops one byte past the limit and refuses the file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import BadInputError

PIPELINE_FILE_BYTES = 1024 * 1024
"""A pipeline file (the same limit as the YAML reader's own)."""
TRANSFORM_FILE_BYTES = PIPELINE_FILE_BYTES
"""A transform file (the YAML reader's limit too)."""
SCHEMA_FILE_BYTES = 256 * 1024 * 1024
"""A .sql schema file pt applies (a scaffolded schema of 10,000 tables is some 20 MB)."""
KEY_FILE_BYTES = 64 * 1024
"""A PEM key: an Ed25519 key is under 200 bytes; 64 KiB leaves room for comments."""
TOKEN_FILE_BYTES = 4 * 1024
"""The dashboard's bearer token file."""
SEALS_FILE_BYTES = 64 * 1024 * 1024
"""A run's seals: one short line per checkpoint (about 300 bytes); 64 MiB is 200,000 seals."""


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path` if it holds at most `limit`; BadInputError (one line) if it holds
    more, is missing, is a folder or cannot be read. `what` names the file in messages."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise BadInputError(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise BadInputError(f"{path}: the {what} holds more than {limit} bytes; the limit is "
                            f"{limit}")
    return data
