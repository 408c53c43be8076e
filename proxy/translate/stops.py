"""Stop sequences matched locally: the ones a backend never saw (over its limit, or a dialect without them).

The filter sits between the model's text and the client: text that may be the start of a sequence is
held back until the next piece tells; a match ends the message with `stop_sequence`, and the text after it
never reaches the client.
"""

from __future__ import annotations

from collections.abc import Iterable


def find_stop_sequence(text: str, sequences: Iterable[str]) -> tuple[int, str] | None:
    """(where it starts, which) for the stop sequence a generating model would hit first, or None."""
    best: tuple[int, int, str] | None = None
    for seq in sequences:
        at = text.find(seq) if seq else -1
        # The earliest *end* is where generation would have stopped; ties go to the longer sequence.
        if at >= 0 and (best is None or (at + len(seq), at) < (best[0], best[1])):
            best = (at + len(seq), at, seq)
    return (best[1], best[2]) if best else None


def held_back_length(text: str, sequences: Iterable[str]) -> int:
    """Length of the longest suffix of `text` that could be the start of a stop sequence."""
    longest = 0
    for seq in sequences:
        for n in range(min(len(seq) - 1, len(text)), longest, -1):
            if text.endswith(seq[:n]):
                longest = n
                break
    return longest


class StopFilter:
    """One response's local stop sequences. `feed` text in, get what may be sent and the sequence hit."""

    def __init__(self, sequences: Iterable[str]) -> None:
        self.sequences = tuple(s for s in sequences if s)
        self.held = ""  # text that may be the start of a stop sequence
        self.matched: str | None = None
        # What the model generated up to the stop (text after a match is cut): a local usage estimate
        # needs it when the stream is cut before the backend's usage report.
        self.generated: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.sequences)

    def feed(self, text: str) -> tuple[str, str | None]:
        """(text safe to send now, the sequence matched or None). After a match, everything is dropped."""
        if self.matched is not None:
            return "", None
        if not self.sequences:
            return text, None
        buffer = self.held + text
        self.held = ""
        hit = find_stop_sequence(buffer, self.sequences)
        if hit is not None:
            at, sequence = hit
            # The model got as far as the end of the sequence, no further.
            past = len(buffer) - (at + len(sequence))  # a suffix of `text`: `held` cannot hold it whole
            self.generated.append(text[: len(text) - past])
            self.matched = sequence
            return buffer[:at], sequence
        self.generated.append(text)
        keep = held_back_length(buffer, self.sequences)
        self.held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], None

    def note(self, generated: str) -> None:
        """Output that is not matched (reasoning, tool arguments) but counts for the usage estimate."""
        if self.sequences and self.matched is None:
            self.generated.append(generated)

    def flush(self) -> str:
        """The held text, once it is known not to start a sequence (another block opens, or the end)."""
        held, self.held = self.held, ""
        return held
