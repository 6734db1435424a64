"""report.html beside report.md: the same report as one self-contained page that any browser opens.

The page is rendered from the markdown the report writers produce (one source of truth, so the two never
disagree): headings, tables, lists, code blocks, bold/italic/code, links. Plots (``![alt](x.png)``) are
embedded as data URIs; a link to an mp4 becomes an inline ``<video controls muted loop playsinline>`` (H.264
yuv420p from ``media.write_video_grid``, with a WebM ``<source>`` first when one sits beside it). Warning lines
(``> ... WARNING ...``) become red boxes at the top. Inline CSS only: no script, no font, no URL off the page.
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa;
margin:0 auto;max-width:1100px;padding:24px 32px}
h1{font-size:26px;margin:0 0 12px}h2{font-size:20px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:12px 0;font-size:14px;background:#fff}
th,td{border:1px solid #d0d0d0;padding:4px 10px;text-align:left}th{background:#f0f0f0}
tr:nth-child(even) td{background:#fbfbfb}
code{background:#eee;padding:1px 4px;border-radius:3px;font-size:13px}
pre{background:#f3f3f3;border:1px solid #ddd;padding:8px 12px;overflow-x:auto;white-space:pre-wrap;
word-break:break-all;font-size:12px}pre code{background:none;padding:0}
img.plot{max-width:min(48%,520px);height:auto;margin:4px 8px 4px 0;border:1px solid #ddd;background:#fff}
.videos{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:8px 0;background:#fff;border:1px solid #ddd;padding:8px}
figure video{display:block;max-width:480px;width:100%;height:auto;image-rendering:pixelated}
figcaption{font-size:13px;color:#444;margin-top:4px}
.warning{background:#fdecea;border-left:6px solid #d93025;color:#a50e0e;padding:8px 12px;margin:8px 0;font-weight:600}
.missing{color:#a50e0e}
"""

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_VIDEO_EXT = (".mp4", ".webm")


def _data_uri(path: Path) -> str | None:
    """A PNG/JPEG/SVG file as a data URI (None when it does not exist)."""
    if not path.is_file():
        return None
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _inline(text: str, base: Path) -> str:
    """Markdown inline syntax of one (raw) line as HTML: images (embedded), links, code, bold, italics."""
    out = html.escape(text, quote=False)

    def image(m: re.Match[str]) -> str:
        uri = _data_uri(base / html.unescape(m.group(2)))
        if uri is None:
            return f'<span class="missing">[{m.group(1)}: {m.group(2)} not found]</span>'
        return f'<img class="plot" alt="{html.escape(m.group(1))}" src="{uri}">'

    out = _IMAGE.sub(image, out)
    out = _LINK.sub(lambda m: f'<a href="{html.escape(html.unescape(m.group(2)))}">{m.group(1)}</a>', out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", out)


def video_figure(rel: str, base: Path, caption: str) -> str:
    """An inline, looping, muted video of ``rel`` (relative to the page), with its WebM twin when it exists."""
    mp4 = Path(rel)
    sources = []
    webm = mp4.with_suffix(".webm")
    if mp4.suffix == ".mp4" and (base / webm).is_file():
        sources.append(f'<source src="{html.escape(webm.as_posix())}" type="video/webm">')
    kind = "video/webm" if mp4.suffix == ".webm" else "video/mp4"
    sources.append(f'<source src="{html.escape(mp4.as_posix())}" type="{kind}">')
    if not (base / mp4).is_file():
        return f'<figure><span class="missing">{html.escape(rel)} not found</span></figure>'
    return (
        f"<figure><video controls muted loop playsinline autoplay preload=\"auto\">{''.join(sources)}"
        f'Your browser cannot play <a href="{html.escape(mp4.as_posix())}">{html.escape(rel)}</a>.</video>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _videos(line: str, base: Path) -> str | None:
    """A line of links that all point at videos becomes a row of inline players (None for any other line)."""
    links = _LINK.findall(line)
    if not links or not all(t.lower().endswith(_VIDEO_EXT) for _, t in links):
        return None
    lead = line[: line.index("[")].strip().rstrip(":")
    figs = "".join(video_figure(t, base, Path(label).stem.removeprefix("video_")) for label, t in links)
    return (f"<p>{_inline(lead, base)}:</p>" if lead else "") + f'<div class="videos">{figs}</div>'


def _table(rows: list[str], base: Path) -> str:
    """A markdown table (header, separator, body rows) as HTML."""
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    head = "".join(f"<th>{_inline(c, base)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{_inline(c, base)}</td>" for c in r) + "</tr>" for r in cells[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _warning(line: str, base: Path) -> str:
    """A report.md warning line (a blockquote, possibly with an inline span) as a red box."""
    text = re.sub(r"<[^>]+>", "", line.lstrip(">").strip()).replace("\U0001f534", "").strip()  # the box is red
    return f'<div class="warning">{_inline(text, base)}</div>'


def markdown_to_html(md: str, base: Path) -> str:
    """The body HTML of the report markdown (paths in links and images are relative to ``base``)."""
    lines, out, i = md.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), len(lines))
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
            continue
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j], base))
            i = j
            continue
        if line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x[2:], base)}</li>" for x in lines[i:j]) + "</ul>")
            i = j
            continue
        heading = re.match(r"^(#{1,4}) (.*)$", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2), base)}</h{level}>")
        elif line.startswith(">"):
            if line.strip(" >"):
                out.append(_warning(line, base))
        elif line.strip():
            out.append(_videos(line, base) or f"<p>{_inline(line, base)}</p>")
        i += 1
    return "\n".join(out)


def render_page(md: str, base: Path) -> str:
    """A whole self-contained HTML page for the report markdown ``md`` that will sit in folder ``base``."""
    title = next((ln[2:] for ln in md.splitlines() if ln.startswith("# ")), "report")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"{markdown_to_html(md, base)}\n</body></html>\n"
    )


def write_html(md: str, path: str | Path) -> Path:
    """Write the page for ``md`` to ``path`` (atomically: temporary file, rename); returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(render_page(md, path.parent), encoding="utf-8")
    os.replace(tmp, path)
    return path
