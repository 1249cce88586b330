"""Keyword scanning of a task's whole output, in bounded memory.

The output arrives in chunks of any size and is never kept whole (only its
tail is), so each chunk is searched together with the last
``max(len(keyword)) - 1`` bytes of what came before: a keyword split across
two chunks is found, and nothing more than that carry is held.

The reported keyword is the first by position in the output: the one whose
match starts earliest (ties go to the keyword listed first). A match found in
one chunk is therefore only final once enough further output has been seen
that no longer keyword starting earlier can still complete; until then
scanning goes on. The result does not depend on how the output was chunked.
"""

from __future__ import annotations

from collections.abc import Iterable


class KeywordScanner:
    """Finds the first of ``keywords`` (plain text, matched as UTF-8 bytes,
    case-sensitive) in a stream fed with ``feed``."""

    def __init__(self, keywords: Iterable[str]) -> None:
        # Empty keywords would match everywhere: they are ignored. Duplicates
        # keep their first place (it breaks ties).
        self.keywords = [kw for kw in dict.fromkeys(keywords) if kw]
        self._needles = [kw.encode() for kw in self.keywords]
        self._longest = max((len(n) for n in self._needles), default=0)
        self._carry = b""  # the last (longest - 1) bytes fed so far
        self._seen = 0  # bytes fed so far
        # The best match so far: (start offset in the stream, keyword index).
        self._best: tuple[int, int] | None = None
        self._final = not self._needles

    @property
    def matched(self) -> str:
        """The first keyword found in what was fed so far; "" when none.

        Before the stream ended a later chunk could still reveal a longer
        keyword starting earlier; at the end this is the answer."""
        return self.keywords[self._best[1]] if self._best is not None else ""

    def feed(self, data: bytes) -> None:
        if self._final or not data:
            return
        window = self._carry + data if self._carry else data
        base = self._seen - len(self._carry)  # stream offset of window[0]
        best = self._best
        for index, needle in enumerate(self._needles):
            # Only the first occurrence in the window can beat what we have:
            # later ones start later, and one lying wholly in the carry was
            # already seen in the previous window.
            at = window.find(needle)
            if at >= 0 and (best is None or (base + at, index) < best):
                best = (base + at, index)
        self._best = best
        self._seen += len(data)
        if best is not None and self._seen >= best[0] + self._longest:
            # Every match starting at or before the best one has ended inside
            # what was scanned: nothing can beat it any more.
            self._final = True
            self._carry = b""
            return
        keep = self._longest - 1
        self._carry = window[-keep:] if keep else b""
