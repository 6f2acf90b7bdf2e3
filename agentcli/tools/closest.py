"""The lines of a file closest to a search text that is not in it, found in bounded time.

A model whose search text was not found gets the closest lines of the file back, numbered, and
corrects its edit from them (``apply_edits``, ``edit_file``). Comparing the search text with every
window of as many lines by edit similarity is quadratic in the text's length per window: a
1,800-character search text took minutes. Here it is two passes:

1. Every window of the file's lines is scored in one linear pass by the words and punctuation
   its lines share with the search text (the lines it has whole count twice).
2. The best-scored windows, as many as a fixed budget of comparison work allows (every window
   of a short search text, a dozen for a 10,000-character one), are compared by edit similarity
   (rapidfuzz's Indel ratio, the measure difflib's ``ratio`` approximates), and the best one wins
   (the first in the file on a tie).
"""

from __future__ import annotations

import re

__all__ = ["closest_lines"]

#: The most characters of the closest text shown.
MAX_SHOWN = 1200
#: Comparison work allowed in pass 2, in 64-character words x characters (rapidfuzz compares
#: 64 characters of one text per machine word): ~50 ms here, whatever the sizes.
_BUDGET = 40_000_000
#: The fewest windows compared by edit similarity, however long the texts.
_MIN_CANDIDATES = 3


_TOKEN = re.compile(r"\w+|[^\w\s]")


def _window_scores(lines: list[str], k: int, search: str) -> list[float]:
    """A cheap likeness of every window of ``k`` lines to the search text, in one pass: the
    tokens (words, punctuation) of its lines that the search text has, counted twice for a line
    the search text has whole (indentation aside), over the window's tokens and the text's."""
    want_tokens = set(_TOKEN.findall(search))
    want_lines = {line.strip() for line in search.splitlines()} - {""}
    total = len(_TOKEN.findall(search))
    hit = [0]
    size = [0]
    for line in lines:
        tokens = _TOKEN.findall(line)
        found = sum(t in want_tokens for t in tokens)
        if found == len(tokens) and tokens and line.strip() in want_lines:
            found *= 2
        hit.append(hit[-1] + found)
        size.append(size[-1] + len(tokens))
    return [(hit[at + k] - hit[at]) / ((size[at + k] - size[at] + total) or 1)
            for at in range(len(lines) - k + 1)]


def best_window(lines: list[str], search: str, k: int) -> int:
    """The index of the first line of the window of ``k`` lines most like ``search``."""
    n = len(lines) - k + 1
    if n <= 1:
        return 0
    scores = _window_scores(lines, k, search)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    text = "".join(lines)
    # A window far longer than the search text (very long lines) is cut: it is a poor match
    # anyway, and its cost must stay bounded.
    cut = 2 * len(search) + 200
    window_chars = min(cut, starts[-1] * k // len(lines))
    count = max(_MIN_CANDIDATES, _BUDGET // ((window_chars + 63) // 64 * max(1, len(search))))
    order = sorted(range(n), key=lambda at: (-scores[at], at))[:count]
    # Imported here, when a search text was not found: ~4.6 MiB that a run that finds its edits
    # (and every run that makes none) does not load.
    from rapidfuzz.distance import Indel

    best, best_at = -1.0, order[0]
    for at in sorted(order):
        window = text[starts[at]:min(starts[at + k], starts[at] + cut)]
        ratio = Indel.normalized_similarity(window, search, score_cutoff=max(best, 0.0))
        if ratio > best:
            best, best_at = ratio, at
    return best_at


def closest_lines(text: str, search: str, max_chars: int = MAX_SHOWN) -> str:
    """The lines of ``text`` most like ``search`` (as many lines as it has), numbered."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return "(the file is empty)"
    want = search.splitlines(keepends=True) or [search]
    k = max(1, min(len(want), len(lines)))
    at = best_window(lines, search, k)
    shown = "".join(f"{at + n + 1:>5}| {line}" for n, line in enumerate(lines[at:at + k]))
    if len(shown) > max_chars:
        shown = shown[:max_chars] + "[...]\n"
    return shown
