"""A structural reStructuredText check with only the standard library.

PyPI renders rst long descriptions with docutils and refuses (or shows as plain
text) any description that makes docutils emit a warning or an error. docutils is
not a dependency of pyti, so this module reproduces the checks that catch the
problems seen in practice, not docutils itself:

- a section title underline (4 or more characters) shorter than its title;
- an inline literal, interpreted text, strong or emphasis start-string without an
  end-string (docutils' start/end-string recognition rules, e.g. ``*args``);
- a directive docutils does not know (Sphinx's ``toctree``, ``automodule``...) or
  that PyPI disables (``raw``, ``include``);
- an interpreted-text role docutils does not know (Sphinx's ``:func:``, ``:ref:``);
- a named hyperlink reference (``name_``, ```text`_``) or a footnote or citation
  reference (``[1]_``, ``[name]_``) with no matching target, and
  anonymous references (``__``) that do not match anonymous targets in number.

What it does not check: tables, substitutions, auto-numbered footnotes, indentation errors
(``unexpected unindent``), nested inline markup. A description it passes may still
fail on PyPI; a description it flags does fail there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

# Directives and roles docutils itself registers (Sphinx adds many more).
# fmt: off
_DIRECTIVES: Final = frozenset([
    "attention", "caution", "danger", "error", "hint", "important", "note", "tip", "warning",
    "admonition", "image", "figure", "topic", "sidebar", "line-block", "parsed-literal", "code",
    "code-block", "sourcecode", "math", "rubric", "epigraph", "highlights", "pull-quote",
    "compound", "container", "table", "csv-table", "list-table", "contents", "sectnum",
    "section-numbering", "header", "footer", "target-notes", "meta", "replace", "unicode",
    "date", "class", "role", "default-role", "title",
])
# fmt: on
# readme_renderer turns these off (file insertion and raw output are disabled).
_DISABLED_DIRECTIVES: Final = frozenset({"raw", "include"})
# Bodies of these are not rst, so inline markup inside them is not checked.
_OPAQUE_DIRECTIVES: Final = frozenset(
    {"code", "code-block", "sourcecode", "math", "raw", "parsed-literal", "csv-table", "meta"}
)
# fmt: off
_ROLES: Final = frozenset([
    "emphasis", "literal", "code", "math", "pep-reference", "pep", "rfc-reference", "rfc",
    "strong", "subscript", "sub", "superscript", "sup", "title-reference", "title", "t",
    "abbreviation", "ab", "acronym", "ac",
])
# fmt: on

_ADORNMENT_RE: Final = re.compile(r"^([!-/:-@\[-`{-~])\1*\s*$")
_DIRECTIVE_RE: Final = re.compile(r"^\.\.\s+([A-Za-z0-9][\w.+:-]*?)\s*::")
_EMBEDDED_URI_RE: Final = re.compile(r"(?:^|\s)<([^<>]+)>\s*$")
_CITATION_REF_RE: Final = re.compile(r"(?<![\w\\])\[([A-Za-z0-9][\w.-]*)\]_")
_CITATION_RE: Final = re.compile(r"^\.\.\s+\[([^\]]+)\]")
_INLINE_TARGET_RE: Final = re.compile(r"(?<![\w`])_`([^`]+)`")
_FIELD_RE: Final = re.compile(r"^:[^:\s][^:]*:(\s|$)")
_TABLE_BORDER_RE: Final = re.compile(r"^=+(?: +=+)+$")
_BULLET_RE: Final = re.compile(r"^(?:[-*+\u2022]|\d+[.)]|\(\d+\)|#\.)\s+")
# docutils: an end-string is followed by whitespace, the end, or this punctuation.
_END_CONTEXT: Final = r"""(?=$|[\s\-.,:;!?\\/'")\]}>])"""
_ANONYMOUS_TARGET_RE: Final = re.compile(r"^\.\.\s+__:")
_ANONYMOUS_REF_RE: Final = re.compile(
    r"(?<![\w`\\])[A-Za-z0-9]+(?:[-._+:][A-Za-z0-9]+)*__" + _END_CONTEXT
)
_TARGET_RE: Final = re.compile(r"^\.\.\s+_(`[^`]+`|[^:`]+):")
_ROLE_DEF_RE: Final = re.compile(r"^\.\.\s+role::\s*([\w.+:-]+)")
_ROLE_RE: Final = re.compile(r":([A-Za-z0-9][\w.+-]*(?::[\w.+-]+)*):")
_SIMPLE_REF_RE: Final = re.compile(
    r"(?<![\w`\\])([A-Za-z0-9]+(?:[-._+:][A-Za-z0-9]+)*)_" + _END_CONTEXT
)

_OPENERS: Final = "'\"([{<"
_CLOSERS: Final = "'\")]}>"
_BEFORE_START: Final = " \t\n-:/" + _OPENERS
_AFTER_END: Final = " \t\n-.,:;!?\\/" + _CLOSERS

_MAX_PROBLEMS: Final = 10
_MAX_PARAGRAPH: Final = 50_000
# Directive bodies are checked recursively; hostile nesting must not exhaust the stack.
_MAX_NESTING: Final = 8


@dataclass
class _Doc:
    targets: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    references: list[tuple[int, str]] = field(default_factory=list)
    citations: set[str] = field(default_factory=set)
    citation_references: list[tuple[int, str]] = field(default_factory=list)
    anonymous_references: int = 0
    anonymous_targets: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, line: int, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"line {line}: {text}")


def _refname(text: str) -> str:
    return " ".join(text.strip("`").split()).lower()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def check_rst(text: str) -> list[str]:
    """Problems that would make PyPI's renderer reject `text`; empty if none found."""
    doc = _Doc()
    lines = text.expandtabs(8).splitlines()
    paragraphs = _scan_blocks(lines, doc)
    for first_line, paragraph in paragraphs:
        if len(doc.problems) >= _MAX_PROBLEMS:
            break
        _check_inline(paragraph, first_line, doc)
    for line_no, name in doc.references:
        if name not in doc.targets:
            doc.problem(line_no, f'unknown target name "{name}"')
    for line_no, label in doc.citation_references:
        if label not in doc.citations:
            doc.problem(line_no, f'unknown target name "{label}"')
    if doc.anonymous_references != doc.anonymous_targets:
        doc.problem(
            len(lines),
            f"anonymous hyperlink mismatch: {doc.anonymous_references} references"
            f" but {doc.anonymous_targets} targets",
        )
    return doc.problems


def _scan_blocks(lines: list[str], doc: _Doc, depth: int = 0) -> list[tuple[int, str]]:
    """Walk the block structure; return the paragraphs whose inline markup counts."""
    paragraphs: list[tuple[int, str]] = []
    i = 0
    literal_after: int | None = None  # indent of a paragraph that ended with "::"
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        indent = _indent(line)
        stripped = line.strip()
        if literal_after is not None:
            if indent <= literal_after:
                doc.problem(i + 1, "literal block expected; none found")
            else:
                i = _skip_indented(lines, i + 1, indent - 1)
                literal_after = None
                continue
            literal_after = None
        if stripped.startswith((">>>", "+", "|")):
            # Doctest blocks, grid tables, line blocks: cell text is not checked.
            i = _skip_nonblank(lines, i)
            continue
        if stripped == "::":
            # Expanded form: a paragraph of just "::" introduces a literal block.
            literal_after = indent
            i += 1
            continue
        if stripped == ".." or stripped.startswith((".. ", "..\t")):
            i = _explicit_markup(lines, i, doc, paragraphs, depth)
            continue
        if stripped == "__" or stripped.startswith("__ "):
            # Anonymous hyperlink target shorthand ("__ URL").
            doc.anonymous_targets += 1
            i = _skip_indented(lines, i + 1, indent)
            continue
        if _TABLE_BORDER_RE.match(stripped):
            i = _skip_simple_table(lines, i)
            continue
        if _ADORNMENT_RE.match(stripped):
            i = _adornment(lines, i, doc)
            continue
        start = i
        block = [stripped]
        # List items and fields continue on deeper-indented lines; a plain paragraph
        # does not (docutils would call that an unexpected indentation).
        is_item = bool(_BULLET_RE.match(stripped) or _FIELD_RE.match(stripped))
        i += 1
        while i < len(lines) and lines[i].strip():
            deeper = _indent(lines[i]) > indent
            if not (_indent(lines[i]) == indent or (is_item and deeper)):
                break
            if _ADORNMENT_RE.match(lines[i].strip()):
                break
            block.append(lines[i].strip())
            i += 1
        is_title = len(block) == 1 and i < len(lines) and lines[i].strip()
        if is_title and _ADORNMENT_RE.match(lines[i].strip()):
            underline = lines[i].strip()
            if len(underline) >= 4 and len(underline) < len(block[0]):
                doc.problem(i + 1, "title underline too short")
            doc.targets.add(_refname(block[0]))
            i += 1
            continue
        paragraph = " ".join(block)
        if paragraph.endswith("::"):
            literal_after = indent
            paragraph = paragraph[:-2]
        paragraphs.append((start + 1, paragraph))
    return paragraphs


def _skip_simple_table(lines: list[str], i: int) -> int:
    """A simple table runs to a border line followed by a blank line (or the end)."""
    j = i + 1
    while j < len(lines):
        if _TABLE_BORDER_RE.match(lines[j].strip()) and (
            j + 1 == len(lines) or not lines[j + 1].strip()
        ):
            return j + 1
        j += 1
    return j


def _adornment(lines: list[str], i: int, doc: _Doc) -> int:
    """A transition or an overlined title starting at line i."""
    stripped = lines[i].strip()
    if i + 2 < len(lines) and lines[i + 1].strip() and _ADORNMENT_RE.match(lines[i + 2].strip()):
        title = lines[i + 1].strip()
        if len(stripped) >= 4 and len(stripped) < len(title):
            doc.problem(i + 1, "title overline too short")
        doc.targets.add(_refname(title))
        return i + 3
    return i + 1


def _skip_nonblank(lines: list[str], i: int) -> int:
    while i < len(lines) and lines[i].strip():
        i += 1
    return i


def _skip_indented(lines: list[str], i: int, indent: int) -> int:
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    return i


def _explicit_markup(
    lines: list[str], i: int, doc: _Doc, paragraphs: list[tuple[int, str]], depth: int
) -> int:
    line = lines[i].strip()
    indent = _indent(lines[i])
    end = _skip_indented(lines, i + 1, indent)
    if citation := _CITATION_RE.match(line):
        doc.citations.add(citation.group(1).lower())
        return end
    if _ANONYMOUS_TARGET_RE.match(line):
        doc.anonymous_targets += 1
        return end
    if target := _TARGET_RE.match(line):
        doc.targets.add(_refname(target.group(1)))
        return end
    if role := _ROLE_DEF_RE.match(line):
        doc.roles.add(role.group(1).lower())
    if directive := _DIRECTIVE_RE.match(line):
        name = directive.group(1).lower()
        if name in _DISABLED_DIRECTIVES:
            doc.problem(i + 1, f'"{name}" directive is disabled on PyPI')
        elif name not in _DIRECTIVES:
            doc.problem(i + 1, f'unknown directive type "{name}"')
        elif name not in _OPAQUE_DIRECTIVES and depth < _MAX_NESTING:
            # Admonitions and friends hold rst; check their paragraphs too.
            body = [ln[indent:] if ln.strip() else "" for ln in lines[i + 1 : end]]
            # Directive options (":name: value") sit right under the directive line.
            for k, option in enumerate(body):
                if not option.lstrip().startswith(":"):
                    break
                body[k] = ""
            base = min((_indent(ln) for ln in body if ln.strip()), default=0)
            for first, text in _scan_blocks([ln[base:] for ln in body], doc, depth + 1):
                paragraphs.append((first + i + 1, text))
    # Anything else is a comment, footnote or citation: its body is not rst we check.
    return end


def _valid_start(text: str, i: int, size: int) -> bool:
    after = i + size
    if after >= len(text) or text[after].isspace():
        return False
    if i == 0:
        return True
    before = text[i - 1]
    if before not in _BEFORE_START:
        return False
    pair = _OPENERS.find(before)
    return not (pair >= 0 and text[after] == _CLOSERS[pair])


def _find_end(text: str, start: int, marker: str) -> int:
    """Index of a valid end-string for `marker` at or after `start`, else -1."""
    pos = start
    while True:
        pos = text.find(marker, pos)
        if pos < 0:
            return -1
        preceded = (
            pos > 0 and not text[pos - 1].isspace() and (marker == "``" or text[pos - 1] != "\\")
        )
        after = pos + len(marker)
        if marker == "`":
            after = _skip_ref_suffix(text, after)
        followed = after >= len(text) or text[after] in _AFTER_END
        if preceded and followed and pos > start:
            return pos
        pos += 1


def _skip_ref_suffix(text: str, after: int) -> int:
    if text.startswith("__", after):
        return after + 2
    if text.startswith("_", after):
        return after + 1
    if role := _ROLE_RE.match(text, after):
        return role.end()
    return after


_MARKERS: Final = (
    ("``", "inline literal"),
    ("**", "strong"),
    ("`", "interpreted text"),
    ("*", "emphasis"),
)


def _check_inline(text: str, line: int, doc: _Doc) -> None:
    if len(text) > _MAX_PARAGRAPH:
        return
    for inline_target in _INLINE_TARGET_RE.finditer(text):
        doc.targets.add(_refname(inline_target.group(1)))
    # Once a marker has no end-string after position p, none exists later either:
    # remembering p keeps a paragraph full of "*" linear instead of quadratic.
    no_end_after: dict[str, int] = {}
    plain: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == ":" and (i == 0 or text[i - 1] in _BEFORE_START):
            role = _ROLE_RE.match(text, i)
            if role and text.startswith("`", role.end()):
                _check_role(role.group(1), line, doc)
                i = role.end()
                continue
        marker = next((m for m, _ in _MARKERS if text.startswith(m, i)), None)
        if marker is None or not _valid_start(text, i, len(marker)):
            plain.append(char)
            i += 1
            continue
        body_start = i + len(marker)
        end = (
            -1
            if no_end_after.get(marker, len(text)) <= body_start
            else _find_end(text, body_start, marker)
        )
        if end < 0:
            no_end_after[marker] = min(no_end_after.get(marker, len(text)), body_start)
            label = dict(_MARKERS)[marker]
            doc.problem(line, f"{label} start-string without end-string")
            plain.append(" ")
            i = body_start
            continue
        if marker == "`":
            _interpreted(text, body_start, end, line, doc)
        plain.append(" ")
        i = _skip_ref_suffix(text, end + 1) if marker == "`" else end + len(marker)
    plain_text = "".join(plain)
    for citation in _CITATION_REF_RE.finditer(plain_text):
        doc.citation_references.append((line, citation.group(1).lower()))
    for ref in _SIMPLE_REF_RE.finditer(plain_text):
        doc.references.append((line, _refname(ref.group(1))))
    doc.anonymous_references += sum(1 for _ in _ANONYMOUS_REF_RE.finditer(plain_text))


def _interpreted(text: str, start: int, end: int, line: int, doc: _Doc) -> None:
    content = text[start:end]
    suffix = text[end + 1 : end + 3]
    if role := _ROLE_RE.match(text, end + 1):
        _check_role(role.group(1), line, doc)
    elif suffix.startswith("_"):
        embedded = _EMBEDDED_URI_RE.search(content)
        if suffix.startswith("__"):
            doc.anonymous_references += not embedded
        elif embedded:
            doc.targets.add(_refname(content[: embedded.start()]))
        else:
            doc.references.append((line, _refname(content)))


def _check_role(name: str, line: int, doc: _Doc) -> None:
    if name.lower() not in _ROLES and name.lower() not in doc.roles:
        doc.problem(line, f'unknown interpreted text role "{name}"')
