"""The signing options of `pt pipeline approve|reject`: a key to sign with, or a statement
signed elsewhere (`--print-statement`, then `ssh-keygen -Y sign`, then `--statement` and
`--signature`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pulsaride.engine.errors import BadInputError
from pulsaride.engine.gates import SignedDecision
from pulsaride.engine.inputs import read_bounded
from pulsaride.engine.keyed_gates import SigningRequest
from pulsaride.engine.signatures import MAX_SIGNATURE_CHARS

_STATEMENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class GateSigning:
    """What the approver gave on the command line to sign a decision."""

    approver_key: Path | None = None
    print_statement: bool = False
    statement_file: Path | None = None
    signature_file: Path | None = None

    def request(self) -> SigningRequest | None:
        """How pt signs the decision itself (None: the ssh-agent, if the gate has keys)."""
        return SigningRequest(self.approver_key) if self.approver_key is not None else None

    def signed(self) -> SignedDecision | None:
        """The decision signed elsewhere, if given; BadInputError if only half is given."""
        if self.statement_file is None and self.signature_file is None:
            return None
        if self.statement_file is None or self.signature_file is None:
            raise BadInputError("--statement and --signature go together: the statement "
                                "printed by --print-statement and its ssh-keygen signature")
        if self.approver_key is not None:
            raise BadInputError("--key signs here; --statement/--signature bring a decision "
                                "signed elsewhere: give one or the other")
        statement = read_bounded(self.statement_file, _STATEMENT_BYTES, "statement file")
        signature = read_bounded(self.signature_file, MAX_SIGNATURE_CHARS, "signature file")
        return SignedDecision(statement,
                              signature.decode("ascii", errors="replace"))
