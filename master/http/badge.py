"""``badge_svg``: a shields.io-style "flat" badge (``pyti | passed``) as SVG text.

Server-side and dependency-free: two rectangles and two texts. Text widths are
estimated from a few classes of Verdana 11 px glyph widths (a badge a few
pixels too wide is harmless). Every text is XML-escaped; the SVG has no script,
no style element and no external reference, so it is safe under the page's CSP
and wherever a README embeds it.
"""

from __future__ import annotations

from typing import Final
from xml.sax.saxutils import escape, quoteattr

from protocol.vocabulary import shown

#: Message colours by outcome (shields.io's palette); anything else is grey.
COLOURS: Final = {
    "passed": "#4c1",
    "failed": "#e05d44",
    "crashed": "#e05d44",
    "harmful": "#b60205",
    "timed_out": "#fe7d37",
    "incomplete": "#dfb317",
    "infra_error": "#dfb317",
    "cancelled": "#9f9f9f",
}
GREY: Final = "#9f9f9f"
_NARROW: Final = frozenset("fijlrtI.,:;!|'()[] ")
_WIDE: Final = frozenset("mwMW@%")
MAX_TEXT: Final = 60


def text_width(text: str) -> int:
    """Estimated width in pixels of ``text`` in Verdana 11 px."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 3.6
        elif char in _WIDE:
            width += 10.0
        elif char.isupper() or char.isdigit():
            width += 7.4
        else:
            width += 6.6
    return round(width)


def badge_svg(label: str, message: str, colour: str, title: str) -> str:
    """The badge: ``label`` on grey, ``message`` on ``colour`` (a ``#hex`` of ours)."""
    label, message = label[:MAX_TEXT], message[:MAX_TEXT]
    left = text_width(label) + 12
    right = text_width(message) + 12
    total = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img"'
        f" aria-label={quoteattr(f'{label}: {message}')}>"
        f"<title>{escape(title)}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb"'
        ' stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle"'
        ' font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="15" fill="#010101" fill-opacity=".3">{escape(label)}</text>'
        f'<text x="{left / 2}" y="14">{escape(label)}</text>'
        f'<text x="{left + right / 2}" y="15" fill="#010101" fill-opacity=".3">'
        f"{escape(message)}</text>"
        f'<text x="{left + right / 2}" y="14">{escape(message)}</text></g></svg>'
    )


def release_badge(
    project: str, version: str | None, outcome: str | None, verdict: str | None
) -> str:
    """The badge of a project's newest tested release (``not tested`` when there is none)."""
    if version is None or outcome is None:
        return badge_svg("pyti", "not tested", GREY, f"{project}: no release tested by pyti")
    message = shown(outcome, verdict)
    return badge_svg(
        "pyti", message, COLOURS.get(outcome, GREY), f"{project} {version}: {message} (pyti)"
    )
