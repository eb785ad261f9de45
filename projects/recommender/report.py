"""An example recommendation table for well-known films, logged with every run (a human sanity check)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from common.protocol import Context

WELL_KNOWN = ["Inception", "The Dark Knight", "Toy Story", "Titanic", "The Godfather"]
QUERIES_WITH_TYPOS = ["incepton", "the godfater", "Dark Knight, The", "The Host (2006)", "harry potter"]


def example_titles(model: Any, n: int = 5) -> list[str]:
    """The well-known titles the catalogue has, topped up with its most-voted films (generated data)."""
    chosen = [t for t in WELL_KNOWN if model.resolve(t).status in ("exact", "popular", "year")]
    order = sorted(range(model.n_items_), key=lambda p: -model.votes_[p])
    for pos in order:
        if len(chosen) >= n:
            break
        if model.titles_[pos] not in chosen:
            chosen.append(model.titles_[pos])
    return chosen[:n]


def _markdown(frame: pd.DataFrame) -> str:
    lines = []
    for query, group in frame.groupby("query", sort=False):
        first = group.iloc[0]
        head = f"### {query}" + (f" -> {first['match']} ({first['status']})" if first["match"] else " (not found)")
        lines.append(head)
        lines.append("")
        lines.append("| rank | title | year | score |")
        lines.append("|---:|---|---:|---:|")
        for row in group.itertuples():
            lines.append(f"| {row.rank} | {row.title} | {row.year or ''} | {row.score:.3f} |")
        lines.append("")
    return "\n".join(lines)


def report(ctx: Context, model: Any, X_test: Any, y_test: Any) -> dict[str, float]:
    """Write the top-10 for five well-known films, and how typos and ambiguous titles are answered."""
    titles = example_titles(model)
    table = model.predict(titles)
    table.to_csv(ctx.artifact("example_recommendations.csv"), index=False)
    lookups = model.predict(QUERIES_WITH_TYPOS)
    text = ("# Example recommendations\n\n" + _markdown(table)
            + "\n# Forgiving lookup (typos, 'Title, The', years, partial titles)\n\n" + _markdown(lookups))
    ctx.artifact("example_recommendations.md").write_text(text)
    return {}
