"""The stdlib-only structural rst check (slave.quality.rst)."""

from __future__ import annotations

import pytest

from slave.quality.rst import check_rst

CLEAN = """\
Title
=====

Some *emphasis*, **strong**, ``literal``, `a link <https://example.com>`_ and :code:`x`.
Escaped \\*star and 2 * 3 = 6.

- item with ``a literal
  that spans lines``
- item two

Example::

    def f(*args, **kwargs): pass

.. note::

   Be *careful*.

.. code-block:: python

   print(*args)

=====  =====
A      B
=====  =====
*x     y
=====  =====

See `Title`_ and target_.

.. _target: https://example.com
"""


def test_clean_document_has_no_problems() -> None:
    """Common valid rst (lists, literals, directives, tables, references) passes."""
    assert check_rst(CLEAN) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("A long title\n=====\n\nbody\n", "title underline too short"),
        ("======\nA long title\n======\n", "title overline too short"),
        ("Call f(*args) here.\n", "emphasis start-string without end-string"),
        ("A **bold start only.\n", "strong start-string without end-string"),
        ("Code ``x = 1 here.\n", "inline literal start-string without end-string"),
        ("Ref `broken here.\n", "interpreted text start-string without end-string"),
        (".. toctree::\n   :maxdepth: 2\n", 'unknown directive type "toctree"'),
        (".. raw:: html\n\n   <b>x</b>\n", '"raw" directive is disabled on PyPI'),
        ("Use :func:`foo` please.\n", 'unknown interpreted text role "func"'),
        ("See missing_ now.\n", 'unknown target name "missing"'),
        ("See `Some Page`_ now.\n", 'unknown target name "some page"'),
        ("Example::\n\nnot indented\n", "literal block expected; none found"),
        ("# Title\n\n```python\nprint(1)\n```\n", "inline literal start-string"),
        (".. note::\n\n   Watch *this.\n", "emphasis start-string without end-string"),
    ],
)
def test_problems_are_reported_with_line(text: str, problem: str) -> None:
    """Each structural problem PyPI's renderer rejects is reported once, with its line."""
    problems = check_rst(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith("line ")
    assert problem in problems[0]


def test_custom_roles_and_targets_are_known() -> None:
    """Roles declared with `.. role::` and explicit targets are accepted."""
    text = ".. role:: custom\n\nUse :custom:`x` and `Docs`_.\n\n.. _Docs: https://d.example\n"
    assert check_rst(text) == []


def test_pathological_input_is_bounded() -> None:
    """A paragraph of thousands of unmatched stars reports a capped list, quickly."""
    problems = check_rst("x *a" * 12_000 + "\n")
    assert 1 <= len(problems) <= 10


def test_deeply_nested_directives_do_not_exhaust_the_stack() -> None:
    """Hundreds of nested admonitions are checked to a bounded depth, without recursion errors."""
    text = "".join(" " * (3 * level) + ".. note::\n\n" for level in range(600))
    assert check_rst(text) == []


def test_anonymous_and_inline_targets() -> None:
    """'__ URL' shorthand, a target block after it, and inline _`targets` all resolve."""
    text = (
        "Use a `copy`__ of the `Repo`_ and see snapshot_.\n\n"
        "Get a _`snapshot` here.\n\n"
        "__ https://a.example\n"
        ".. _Repo: https://b.example\n"
    )
    assert check_rst(text) == []


def test_field_and_list_bodies_continue_on_deeper_lines() -> None:
    """Markup spanning a field's or list item's indented continuation line is matched."""
    text = (
        ":Support: `Mailing list\n <https://lists.example>`_\n"
        ":Tracker: `Issues\n   <https://issues.example>`_\n\n"
        "- a ``literal\n    continued`` item\n"
    )
    assert check_rst(text) == []


def test_anonymous_reference_count_must_match_targets() -> None:
    """Anonymous references need as many anonymous targets; embedded URIs need none."""
    ok = "See `this`__, that__ and `inline <https://i.example>`__.\n\n__ https://a\n.. __: https://b\n"
    assert check_rst(ok) == []
    problems = check_rst("See `this`__ and that__.\n\n__ https://a\n")
    assert len(problems) == 1
    assert "anonymous hyperlink mismatch: 2 references but 1 targets" in problems[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Per [LoPAR]_ spec.\n", 'unknown target name "lopar"'),
        (".. note::\n   :class: x\n\n   See :ref:`y`.\n", 'unknown interpreted text role "ref"'),
        ("See `a<https://x.example>`__.\n", "anonymous hyperlink mismatch"),
    ],
)
def test_citations_directive_bodies_and_embedded_uris(text: str, problem: str) -> None:
    """Citations need a target; a directive's body after its options is checked; an
    embedded URI needs whitespace before '<'."""
    problems = check_rst(text)
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_defined_citation_resolves() -> None:
    """A citation reference with a matching `.. [label]` is fine."""
    assert check_rst("Per [LoPAR]_ spec.\n\n.. [LoPAR] The reference.\n") == []
