"""Charts drawn on the server as SVG: no chart library, no script, the same in every browser
and in a screenshot. Each function returns markup safe to put in a page (every text in it
is escaped)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

from .books import Throughput

WIDTH, HEIGHT = 720, 180
_LEFT, _BOTTOM, _TOP = 44, 22, 10


def throughput_chart(figures: Throughput) -> Markup:
    """Done (green) and failed (red) tasks per bucket, stacked, with the busiest bucket's
    count on the axis and the window's first, middle and last times under it."""
    slots = len(figures.done)
    peak = max((d + f for d, f in zip(figures.done, figures.failed, strict=True)), default=0)
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _BOTTOM - _TOP
    step = plot_w / max(1, slots)
    bar = max(1.0, step - (1 if step > 3 else 0))
    scale = plot_h / peak if peak else 0
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(_label(figures))}" xmlns="http://www.w3.org/2000/svg">',
        f'<title>{escape(_label(figures))}</title>',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - 8}" y2="{_TOP + plot_h}" '
        'class="axis"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 8}" class="tick" text-anchor="end">{peak}</text>',
        f'<text x="{_LEFT - 6}" y="{_TOP + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for i, (done, failed) in enumerate(zip(figures.done, figures.failed, strict=True)):
        if not done and not failed:
            continue
        x = _LEFT + i * step
        at = figures.start + i * figures.bucket
        tip = f"{_hm(at)} UTC: {done} done, {failed} failed"
        h_done, h_failed = done * scale, failed * scale
        base = _TOP + plot_h
        parts.append(f'<g><title>{escape(tip)}</title>')
        if done:
            parts.append(f'<rect class="done" x="{x:.1f}" y="{base - h_done:.1f}" '
                         f'width="{bar:.1f}" height="{h_done:.1f}"/>')
        if failed:
            parts.append(f'<rect class="failed" x="{x:.1f}" y="{base - h_done - h_failed:.1f}" '
                         f'width="{bar:.1f}" height="{h_failed:.1f}"/>')
        parts.append('</g>')
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        at = figures.start + fraction * (figures.end - figures.start)
        x = _LEFT + fraction * plot_w
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}" class="tick" '
                     f'text-anchor="{anchor}">{_hm(at)} UTC</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _label(figures: Throughput) -> str:
    return (f"tasks finished per {figures.bucket:g} s: {sum(figures.done)} done, "
            f"{sum(figures.failed)} failed")


def _hm(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M")
