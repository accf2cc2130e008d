"""The command-output examples in docs/ are real: each is run again and compared after normalisation.

Regenerate them with ``python -m pgshift.docs_examples`` (see docs/development.md).
"""

from __future__ import annotations

from pathlib import Path

from pgshift import docs_examples as ex

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_marked_block_has_a_scenario_and_every_scenario_one_block() -> None:
    found = [(b.doc.name, b.id) for b in ex.all_blocks()]
    assert len(found) == len(set(found)), f"an example id is marked twice: {found}"
    expected = [(s.doc, s.id) for s in ex.SCENARIOS]
    assert sorted(found) == sorted(expected), "markers in docs/ and SCENARIOS in pgshift/docs_examples.py differ"


def test_no_hand_written_pgshift_output_outside_the_markers() -> None:
    stray = {doc.name: ex.unmarked_outputs(doc) for doc in sorted(DOCS.glob("*.md"))}
    stray = {name: lines for name, lines in stray.items() if lines}
    assert not stray, (
        "fenced blocks that show pgshift at a prompt must be generated examples "
        f"(<!-- example: ID --> … <!-- /example -->, see pgshift/docs_examples.py): {stray}"
    )


def test_normalise_keeps_widths_and_drops_what_varies() -> None:
    text = "done in 12.3s (0.4s), 1.2 s; 2026-11-24T14:44:29 runs/20261124T143428Z /tmp/pgshift-demo-14u13_nc"
    assert ex.normalise(text) == (
        "done in ##.#s (#.#s), #.# s; ####-##-##T##:##:## runs/YYYYMMDDTHHMMSSZ /tmp/pgshift-demo-XXXXXXXX"
    )
    assert ex.normalise("PostgreSQL 17.11, 16.7 MB", loose=True) == ex.normalise("PostgreSQL 17.9, 16.8 MB", loose=True)
    assert ex.normalise("PostgreSQL 17.11", loose=True) != ex.normalise("PostgreSQL 16.11", loose=True)
    assert ex.normalise("127.0.0.1:41049 then port=35807") == "127.0.0.1:5432 then port=35807"


def test_every_committed_example_matches_a_real_run() -> None:
    """One test, in the declared order on one set of lab servers: later examples build on the
    servers' state earlier ones leave (``Scenario.needs``)."""
    committed = {(b.doc.name, b.id): b for b in ex.all_blocks()}
    failures = []
    with ex.pool() as servers:
        for scenario in ex.SCENARIOS:
            fresh = ex.generate(scenario, servers)
            block = committed.get((scenario.doc, scenario.id))
            if block is None:
                failures.append(f"docs/{scenario.doc} has no block marked {scenario.id}")
            elif difference := ex.diff(block, fresh):
                failures.append(difference)
    assert not failures, (
        "examples in docs/ no longer match what pgshift prints; regenerate them with "
        "python -m pgshift.docs_examples [ID…]\n" + "\n".join(failures)
    )
