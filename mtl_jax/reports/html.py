"""The report's index.html: self-contained (its images are files beside it, its style and the few
lines that sort the table are inline; nothing is fetched when it is viewed)."""

import html
from collections.abc import Sequence

from mtl_jax.reports import table

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; } h3 { font-size: 1em; }
p.note { max-width: 60em; color: #444; font-size: 0.9em; }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; white-space: nowrap; }
th { background: #eee; }
table.sortable th { cursor: pointer; }
table.sortable th[data-dir=asc]::after { content: ' ▲'; }
table.sortable th[data-dir=desc]::after { content: ' ▼'; }
td.num { text-align: right; }
tr.marked td { background: #fff3cd; }
img.figure { max-width: 100%; }
img.grid { width: 100%; max-width: 900px; image-rendering: pixelated; }
span.swatch { display: inline-block; margin: 0.1em 0.5em 0.1em 0; font-size: 0.85em; }
span.swatch i { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.25em;
  vertical-align: middle; border: 1px solid #888; }
"""

# Click a header to sort by it (again: the other way); cells without a value stay last.
SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var column = th.cellIndex, body = th.closest('table').tBodies[0];
    var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
    th.parentNode.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = dir;
    var value = function (row) {
      var v = row.cells[column].dataset.value;
      return v === '' ? null : (isNaN(Number(v)) ? v : Number(v));
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a), y = value(b);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var order = (typeof x === 'number' && typeof y === 'number')
        ? x - y : String(x).localeCompare(String(y));
      return dir === 'asc' ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def esc(value) -> str:
  return html.escape(str(value), quote=True)


def summary_table(rows: list[dict]) -> str:
  """The summary table, sortable by any column; marked rows highlighted."""
  cols = table.columns(rows)
  head = ''.join(f'<th data-key="{esc(c.key)}">{esc(c.header)}</th>' for c in cols)
  body = []
  for row in rows:
    cells = ''.join(
      f'<td{" class=num" if c.fmt else ""} data-value="{esc(table.sort_key(row[c.key]))}">'
      f'{esc(table.text(row[c.key], c.fmt))}</td>'
      for c in cols
    )
    body.append(f'<tr{" class=marked" if row["marked"] else ""}>{cells}</tr>')
  return (
    '<div class=scroll><table class=sortable id=summary>'
    f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
  )


def plain_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  head = ''.join(f'<th>{esc(h)}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{esc(v)}</td>' for v in row) + '</tr>' for row in rows)
  return f'<div class=scroll><table><tr>{head}</tr>{body}</table></div>'


def figure(src: str, alt: str, css_class: str = 'figure') -> str:
  return f'<p><img class={css_class} src="{esc(src)}" alt="{esc(alt)}"></p>'


def note(text: str) -> str:
  return f'<p class=note>{esc(text)}</p>'


def swatches(names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> str:
  """A colour key: one swatch per class."""
  return (
    '<p>'
    + ''.join(
      f'<span class=swatch><i style="background: rgb{tuple(color)}"></i>{esc(name)}</span>'
      for name, color in zip(names, colors)
    )
    + '</p>'
  )


def section(title: str, *parts: str) -> str:
  return f'<h2>{esc(title)}</h2>\n' + '\n'.join(parts)


def page(title: str, intro: str, sections: Sequence[str]) -> str:
  return (
    '<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>'
    f'<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n'
    f'<h1>{esc(title)}</h1>\n{note(intro)}\n'
    + '\n'.join(sections)
    + f'\n<script>{SORT_JS}</script>'
    '\n</body></html>\n'
  )
