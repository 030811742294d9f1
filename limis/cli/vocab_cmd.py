"""`limis vocab [QUERY]`: list known structures or show how a phrase resolves."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from limis.cli.app import app, console


@app.command("vocab", epilog='Examples: limis vocab   |   limis vocab "left renal"   |   limis vocab "liver and spleen" --json')
def vocab(
    query: str = typer.Argument(None, help="A phrase to resolve, e.g. 'left renal'. Omit to list everything."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List the anatomy vocabulary, or resolve a phrase to canonical structures."""
    from limis import vocab as vocabulary

    if query is None:
        structures = vocabulary.all_structures()
        if as_json:
            console.print_json(json.dumps([{"name": s.name, "display": s.display, "laterality": s.laterality,
                                            "groups": list(s.groups), "synonyms": list(vocabulary.synonyms_of(s.name))}
                                           for s in structures]))
            return
        table = Table(title=f"{len(structures)} structures (left/right = patient's side)")
        for column in ("name", "display", "side", "groups", "synonyms"):
            table.add_column(column)
        for s in structures:
            table.add_row(s.name, s.display, s.laterality or "", ", ".join(s.groups),
                          ", ".join(vocabulary.synonyms_of(s.name)[:6]))
        console.print(table)
        return
    from limis.text import resolve_phrase

    resolutions = resolve_phrase(query)  # exactly what `limis segment` resolves the prompt to
    if as_json:
        console.print_json(json.dumps([{"phrase": r.phrase, "structures": list(r.structures),
                                        "laterality": r.laterality, "matched": r.matched, "kind": r.kind}
                                       for r in resolutions]))
        return
    table = Table(title=f"'{query}' resolves to")
    for column in ("phrase", "matched term", "laterality (patient)", "structures"):
        table.add_column(column)
    for r in resolutions:
        table.add_row(r.phrase, r.matched, r.laterality or "-", ", ".join(r.structures))
    console.print(table)
