"""The benchmarks' figures as pictures. Each benchmark part saves its results as
docs/bench/<part>.json (`save`); this draws a PNG beside them from whichever of those exist:
latency.png (bench.run), scaling.png (bench.scaling), memory.png (bench.memory), year.png
(bench.year).
docs/benchmarks.md links them. `python -m bench.plot` redraws them all.
"""

from __future__ import annotations

import json
from pathlib import Path

from onegrid.cli.ui import console

ROOT = Path(__file__).resolve().parent.parent
DIR = ROOT / "docs" / "bench"


def save(part: str, data: dict) -> Path:
    DIR.mkdir(parents=True, exist_ok=True)
    path = DIR / f"{part}.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(part: str) -> dict | None:
    path = DIR / f"{part}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, name: str, subtitle: str) -> Path:
    fig.text(0.5, 0.005, subtitle, ha="center", va="bottom", fontsize=8, color="#555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = DIR / name
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _subtitle(data: dict) -> str:
    m = data.get("machine") or {}
    smoke = " — SMOKE SIZE" if data.get("smoke") else ""
    return f"{data.get('when', '')}; {m.get('cpu', '?')}, {m.get('cores', '?')} cores{smoke}"


def latency(data: dict) -> Path:
    """Latency percentiles and throughput against offered load, beside the raw broker ceiling."""
    plt = _pyplot()
    offered = sorted(
        (r for r in data["runs"] if r.get("offered_per_second") and not r.get("batch_size")),
        key=lambda r: r["offered_per_second"],
    )
    drained = next((r["per_second"] for r in data["runs"] if "draining" in r["name"]), None)
    raw = data["raw"]["per_second"]
    x = [r["offered_per_second"] for r in offered]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for q, style in ((50, "o-"), (95, "s--"), (99, "^:")):
        left.plot(x, [r.get(f"p{q}_ms") for r in offered], style, label=f"p{q}")
    left.set_yscale("log")
    left.set_xlabel("offered load (events/s)")
    left.set_ylabel("publish → work order in its queue (ms, log scale)")
    left.set_title("End-to-end latency against offered load")
    if drained:
        left.axvline(drained, color="tab:red", linestyle="-.", label=f"pipeline capacity {drained:,.0f}/s (drained)")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.3)
    right.plot(x, [r["per_second"] for r in offered], "o-", label="end to end achieved")
    top = max(x) * 1.15 if x else raw
    right.plot(
        [min(x, default=1) * 0.9, top],
        [min(x, default=1) * 0.9, top],
        color="#999",
        linewidth=0.8,
        label="achieved = offered",
    )
    right.set_yscale("log")
    right.axhline(raw, color="tab:green", linestyle="--", label=f"raw broker ceiling {raw:,.0f} msg/s")
    if drained:
        right.axhline(drained, color="tab:red", linestyle="-.", label=f"drained backlog {drained:,.0f}/s")
    right.set_xlabel("offered load (events/s)")
    right.set_ylabel("throughput (events/s, log scale)")
    right.set_title("Throughput against offered load")
    right.legend(fontsize=8)
    right.grid(True, which="both", alpha=0.3)
    return _finish(fig, "latency.png", _subtitle(data))


def scaling(data: dict) -> Path:
    """Aggregate capacity against the number of tenants; capacity and CPU against replicas."""
    plt = _pyplot()
    tenants, replicas = data.get("tenants") or [], data.get("replicas") or []
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [4, 3, 4]})
    raw = (data.get("raw") or {}).get("per_second")
    if tenants:
        n = [t["tenants"] for t in tenants]
        left.plot(n, [t["per_second"] for t in tenants], "o-", label="all tenants, from start-up")
        left.plot(n, [t["per_second_after_first"] for t in tenants], "s--", label="all tenants, from first work order")
        mid = [(t["tenant_min"] + t["tenant_max"]) / 2 for t in tenants]
        left.errorbar(
            n,
            mid,
            yerr=[
                [m - t["tenant_min"] for m, t in zip(mid, tenants, strict=True)],
                [t["tenant_max"] - m for m, t in zip(mid, tenants, strict=True)],
            ],
            fmt="none",
            ecolor="tab:purple",
            capsize=5,
            label="one tenant, slowest…fastest",
        )
        if raw:
            left.axhline(raw, color="tab:green", linestyle="--", label=f"raw broker ceiling {raw:,.0f} msg/s")
        left.set_xscale("log", base=2)
        left.set_yscale("log")
        left.set_xticks(n, [str(v) for v in n])
        left.legend(fontsize=8)
    left.set_xlabel("tenants on one broker (intake + routing each)")
    left.set_ylabel("drained backlog (events/s, log scale)")
    left.set_title("Capacity against tenants")
    left.grid(True, which="both", alpha=0.3)
    service = replicas[0].get("service", "intake") if replicas else "intake"
    if replicas:
        labels = [str(r["replicas"]) for r in replicas]
        x = range(len(replicas))
        middle.bar([i - 0.2 for i in x], [r["per_second"] for r in replicas], 0.4, label="from start-up")
        middle.bar(
            [i + 0.2 for i in x], [r["per_second_after_first"] for r in replicas], 0.4, label="from first work order"
        )
        middle.set_xticks(list(x), labels)
        middle.legend(fontsize=8, loc="lower right")
        parts = [k for k in replicas[-1]["cpu_percent"] if k != "machine (all cores)"]
        width = 0.8 / max(1, len(replicas))
        for j, r in enumerate(replicas):
            right.bar(
                [i + (j - (len(replicas) - 1) / 2) * width for i in range(len(parts))],
                [r["cpu_percent"].get(k, 0.0) for k in parts],
                width,
                label=f"{service} x{r['replicas']}",
            )
        right.set_xticks(range(len(parts)), parts, rotation=20, fontsize=8)
        right.legend(fontsize=8)
    middle.set_xlabel(f"{service} replicas (one tenant)")
    middle.set_ylabel("drained backlog (events/s)")
    middle.set_title(f"Capacity against {service} replicas")
    middle.grid(True, axis="y", alpha=0.3)
    right.set_ylabel("CPU (% of one core)")
    right.set_title("CPU between first and last work order")
    right.grid(True, axis="y", alpha=0.3)
    return _finish(fig, "scaling.png", _subtitle(data))


def memory(data: dict) -> Path:
    """Bytes per case by key family, and used memory against cases (linearity)."""
    plt = _pyplot()
    runs = data["runs"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    families = sorted(
        {f for r in runs for f in r["families"]},
        key=lambda f: -max(r["families"].get(f, {}).get("bytes", 0) / r["cases"] for r in runs),
    )
    major = families[:8]
    labels = [r["label"] for r in runs]
    start = [0.0] * len(runs)
    colours = plt.get_cmap("tab10").colors
    for i, fam in enumerate(major + ["other families"]):
        if fam == "other families":
            values = [sum(v["bytes"] for f, v in r["families"].items() if f not in major) / r["cases"] for r in runs]
        else:
            values = [r["families"].get(fam, {}).get("bytes", 0) / r["cases"] for r in runs]
        left.barh(labels, values, left=start, color=colours[i % 10] if fam != "other families" else "#bbb", label=fam)
        start = [a + b for a, b in zip(start, values, strict=True)]
    left.plot([r["bytes_per_case"] for r in runs], labels, "k|", markersize=18, label="used_memory delta per case")
    left.invert_yaxis()
    left.set_xlabel("bytes per case")
    left.set_title("Redis memory per case, by key family (MEMORY USAGE)")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4)
    left.grid(True, axis="x", alpha=0.3)
    opened = [r for r in runs if r["state"] == "open"]
    right.plot(
        [r["cases"] for r in opened],
        [(r["used_memory_after"] - r["used_memory_before"]) / 2**20 for r in opened],
        "o",
        label="open cases",
    )
    if opened:  # proportional to the largest run: a straight line through the origin
        last = opened[-1]
        right.plot(
            [0, last["cases"]],
            [0, (last["used_memory_after"] - last["used_memory_before"]) / 2**20],
            color="#999",
            linestyle="--",
            linewidth=0.8,
            label=f"{last['bytes_per_case']:,.0f} bytes per case",
        )
    closed = [r for r in runs if r["state"] == "closed"]
    if closed:
        right.plot(
            [r["cases"] for r in closed],
            [(r["used_memory_after"] - r["used_memory_before"]) / 2**20 for r in closed],
            "s",
            color="tab:red",
            label="closed cases",
        )
    right.set_xlabel("cases")
    right.set_ylabel("used_memory growth (MiB)")
    right.set_title("Linearity")
    right.set_xlim(left=0)
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    right.grid(True, alpha=0.3)
    return _finish(fig, "memory.png", _subtitle(data))


def year(data: dict) -> Path:
    """The year replay over wall time: cases registered, closed, and open at once."""
    plt = _pyplot()
    t = [p["s"] / 60 for p in data["timeline"]]
    fig, ax = plt.subplots(figsize=(9, 4.4))
    for key, style in (("registered", "-"), ("closed", "--"), ("open", ":")):
        ax.plot(t, [p[key] for p in data["timeline"]], style, label=f"cases {key}")
    ax.axhline(data["events"], color="#999", linewidth=0.8)
    ax.set_xlabel("wall time (minutes)")
    ax.set_ylabel("cases")
    ax.set_title(
        f"Taiyuan replayed: {data['events']:,} reports ({data.get('span', 'the whole year')}) at "
        f"{data['rate']:.0f}/s offered, case clocks x{data['scale']:,.0f}",
        fontsize=10,
    )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _finish(fig, "year.png", _subtitle(data))


PLOTS = {"run": latency, "scaling": scaling, "memory": memory, "year": year}


def draw(parts=None) -> list[Path]:
    """Draw the PNG of each part (all by default) whose JSON exists; a missing matplotlib is
    a warning, not a failed benchmark."""
    drawn = []
    for part in parts or PLOTS:
        data = load(part)
        if data is None:
            continue
        try:
            drawn.append(PLOTS[part](data))
        except ImportError as exc:
            console.print(f"[yellow]no plot of {part}: {exc} (pip install -e '.[test]')[/]")
            break
    return drawn


def main() -> int:
    drawn = draw()
    console.print("drawn: " + (", ".join(str(p.relative_to(ROOT)) for p in drawn) or "nothing (no docs/bench/*.json)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
