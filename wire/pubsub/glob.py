"""Glob matching exactly as Redis's `stringmatchlen` (nocase off), on UTF-8 bytes, quirks included,
so the in-process and Redis backends deliver the same messages; iterative and bounded in steps."""

from __future__ import annotations

import functools
from dataclasses import dataclass

# Redis gives up on a pattern whose star nesting passes this depth (abuse guard in stringmatchlen);
# the same patterns must fail here too or the two backends would disagree.
_REDIS_MAX_STAR_NESTING = 1000


# --------------------------------------------------------------------------------------------
# Glob matching, exactly as Redis's stringmatchlen (nocase off), on UTF-8 bytes.

_STAR = -1
_ANY = -2
# A token is a literal byte (0..255), _STAR, _ANY, or the set of bytes a [...] class accepts.
_Token = int | frozenset[int]
_ALL_BYTES = frozenset(range(256))
_BACKSLASH, _LBRACKET, _RBRACKET = ord("\\"), ord("["), ord("]")
_CARET, _DASH, _ASTERISK, _QMARK = ord("^"), ord("-"), ord("*"), ord("?")


@dataclass(frozen=True, slots=True)
class Compiled:
    tokens: tuple[_Token, ...]
    # Bytes every match must start with (the leading literal tokens); the whole pattern if literal.
    prefix: bytes
    literal: bool
    # Redis refuses to match anything through star nesting deeper than its abuse guard.
    never: bool


def _parse_class(pat: bytes, i: int) -> tuple[frozenset[int], int]:
    """Parse the class whose `[` is just before `i`; returns accepted bytes and the next index.

    Same reading order as Redis: escape first, then `]`, then `x-y` ranges (reversed ranges are
    swapped, and the range end is taken literally even if it is `]`). A class with no closing `]`
    runs to the end of the pattern.
    """
    n = len(pat)
    negate = i < n and pat[i] == _CARET
    if negate:
        i += 1
    members: set[int] = set()
    while i < n:  # each pass consumes at least one pattern byte
        c = pat[i]
        if c == _BACKSLASH and n - i >= 2:
            members.add(pat[i + 1])
            i += 2
        elif c == _RBRACKET:
            i += 1
            break
        elif n - i >= 3 and pat[i + 1] == _DASH:
            lo, hi = sorted((c, pat[i + 2]))
            members.update(range(lo, hi + 1))
            i += 3
        else:
            members.add(c)
            i += 1
    accepted = _ALL_BYTES - members if negate else frozenset(members)
    return accepted, i


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: bytes) -> Compiled:
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:  # each pass consumes at least one pattern byte
        c = pattern[i]
        if c == _ASTERISK:
            tokens.append(_STAR)
            i += 1
        elif c == _QMARK:
            tokens.append(_ANY)
            i += 1
        elif c == _LBRACKET:
            accepted, i = _parse_class(pattern, i + 1)
            tokens.append(accepted)
        elif c == _BACKSLASH and n - i >= 2:
            tokens.append(pattern[i + 1])
            i += 2
        else:  # a trailing lone backslash is a literal backslash
            tokens.append(c)
            i += 1
    prefix = bytearray()
    for t in tokens:
        if isinstance(t, frozenset) or t < 0:
            break
        prefix.append(t)
    literal = len(prefix) == len(tokens)
    return Compiled(tuple(tokens), bytes(prefix), literal, _too_deep(tokens))


def _too_deep(tokens: list[_Token]) -> bool:
    """Whether Redis's nesting guard rejects every match: a star run past the limit, not last."""
    runs = 0
    prev_star = False
    for idx, t in enumerate(tokens):
        is_star = t == _STAR
        if is_star and not prev_star:
            runs += 1
            if runs > _REDIS_MAX_STAR_NESTING and any(u != _STAR for u in tokens[idx:]):
                return True
        prev_star = is_star
    return False


def match_tokens(tokens: tuple[_Token, ...], s: bytes, p: int, i: int) -> tuple[bool, int]:
    """Match tokens[p:] against s[i:]; returns (matched, steps taken).

    Classic single-backtrack-point wildcard matching: every non-star token consumes exactly one
    byte, so on a mismatch only the most recent star needs to swallow one more byte; earlier
    stars growing could not help (Redis reasons the same way with its skipLongerMatches flag).
    That bounds the work by (len(tokens)+1)·(len(s)+1) steps.
    """
    n, m = len(tokens), len(s)
    star_p = -1  # token index just after the most recent star run
    star_i = 0  # where that star's match currently ends
    steps = 0
    while i < m:
        steps += 1
        if p < n:
            t = tokens[p]
            if t == _STAR:
                while p < n and tokens[p] == _STAR:
                    p += 1
                if p == n:
                    return True, steps
                star_p, star_i = p, i
                continue
            c = s[i]
            if t in (c, _ANY) or (isinstance(t, frozenset) and c in t):
                p += 1
                i += 1
                continue
        if star_p < 0:
            return False, steps
        star_i += 1
        p, i = star_p, star_i
    while p < n and tokens[p] == _STAR:
        p += 1
    return p == n, steps


def as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def glob_match_steps(pattern: str | bytes, channel: str | bytes) -> tuple[bool, int]:
    """`glob_match` plus the number of matching steps it took (for tests and diagnostics)."""
    raw = as_bytes(channel)
    compiled = compile_pattern(as_bytes(pattern))
    if not raw:
        # Redis never enters its loop for an empty string: only the empty pattern matches it.
        return not compiled.tokens, 0
    if compiled.never:
        return False, 0
    return match_tokens(compiled.tokens, raw, 0, 0)


def glob_match(pattern: str | bytes, channel: str | bytes) -> bool:
    """Whether `channel` matches the Redis PSUBSCRIBE glob `pattern` (compared as UTF-8 bytes).

    `*` any run of bytes, `?` one byte, `[abc]` `[a-z]` `[z-a]` `[^x]` a byte class, `\\x` the
    byte x; an unclosed `[` class runs to the end of the pattern, `[]` matches nothing and a
    trailing `\\` is literal.
    """
    return glob_match_steps(pattern, channel)[0]
