"""The obligation network as an SVG picture, drawn on the server: co-ops on a circle, one arrow
per debtor → creditor pair, its width by the amount. Pure: data in, markup out."""

from __future__ import annotations

import math
from html import escape

from ledger.amounts import format_amount

WIDTH, HEIGHT = 560, 400
RADIUS = 130


def network_svg(
    edges: dict[tuple[str, str], int],
    nodes: list[str],
    *,
    scale: int,
    widest: int,
    title: str,
) -> str:
    """`edges` maps (debtor, creditor) to what the debtor owes; `widest` is the amount drawn
    at full width (the same for the before and after pictures, so they compare)."""
    n = max(len(nodes), 1)
    cxc, cyc = WIDTH / 2, HEIGHT / 2
    at = {
        name: (
            cxc + RADIUS * math.cos(2 * math.pi * i / n - math.pi / 2),
            cyc + RADIUS * math.sin(2 * math.pi * i / n - math.pi / 2),
        )
        for i, name in enumerate(nodes)
    }
    total = sum(edges.values())
    drawn = len([a for a in edges.values() if a > 0])
    parts = [
        f'<svg class="network" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}: {drawn} debt{"" if drawn == 1 else "s"}, '
        f'{format_amount(total, scale=scale)} in all">',
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="14" '
        'markerHeight="14" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#8a3b12"/></marker></defs>',
    ]
    for (debtor, creditor), amount in sorted(edges.items()):
        if amount <= 0 or debtor not in at or creditor not in at:
            continue
        (x1, y1), (x2, y2) = at[debtor], at[creditor]
        # Bend each arrow a little so a → b and b → a do not overlap.
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        dx, dy = x2 - x1, y2 - y1
        length = math.hypot(dx, dy) or 1.0
        cx, cy = mx - dy / length * 22, my + dx / length * 22
        # Stop short of the node circles.
        sx, sy = x1 + dx / length * 20, y1 + dy / length * 20
        ex, ey = x2 - dx / length * 22, y2 - dy / length * 22
        width = 1.5 + 8.5 * amount / max(widest, 1)
        label = f"{debtor} owes {creditor} {format_amount(amount, scale=scale)}"
        parts.append(
            f'<path d="M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}" fill="none" '
            f'stroke="#8a3b12" stroke-opacity="0.75" stroke-width="{width:.1f}" '
            f'marker-end="url(#arrow)"><title>{escape(label)}</title></path>'
        )
    for name, (x, y) in at.items():
        lx = cxc + (RADIUS + 24) * (x - cxc) / RADIUS
        ly = cyc + (RADIUS + 26) * (y - cyc) / RADIUS
        anchor = "middle" if abs(lx - cxc) < 30 else ("start" if lx > cxc else "end")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="14" fill="#0b5c4a"/>'
            f'<text x="{lx:.1f}" y="{ly + 5:.1f}" text-anchor="{anchor}" font-size="22" '
            f'fill="#1b1f23">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
