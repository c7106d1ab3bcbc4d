"""Text from databases on a terminal: names and values are data, shown as they are but for
control characters."""

from __future__ import annotations


def printable(text: object) -> str:
    """`text` with control characters (which could move the cursor, clear the screen or hide
    what follows) shown escaped, as Python writes them: a newline becomes \\n."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
