"""The figure of docs/performance.md, drawn from a results file (matplotlib, no screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display here or in CI
import matplotlib.pyplot as plt


def draw(results: dict[str, Any], out: Path) -> Path:
    """Four panels: added latency, throughput, stall to fallback, page frame times."""
    sections = results["sections"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    fig.suptitle(f"Assist Panel, one worker ({results['mode']} run, {results['started'][:10]})")
    _latency(axes[0][0], sections.get("latency"))
    _throughput(axes[0][1], sections.get("throughput"))
    _stall(axes[1][0], sections.get("stall"))
    _page(axes[1][1], sections.get("page"))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _missing(ax: Any, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center")
    ax.set_axis_off()


def _latency(ax: Any, section: dict[str, Any] | None) -> None:
    title = "1. Time to first delta the server adds (ms, log)"
    if not section:
        return _missing(ax, title)
    levels = section["data"]["levels"]
    for target, style in (("panel", "o-"), ("peer", "s--"), ("extractive", "^:")):
        points = [r for r in levels if r["target"] == target]
        if not points:
            continue
        x = [r["streams"] for r in points]
        line = ax.plot(x, [max(r["ms"]["p50"] or 0, 0.1) for r in points], style,
                       label=f"{target} p50")[0]
        ax.plot(x, [max(r["ms"]["p99"] or 0, 0.1) for r in points], style, alpha=0.45,
                color=line.get_color(), label=f"{target} p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent streams")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def _throughput(ax: Any, section: dict[str, Any] | None) -> None:
    title = "3. Chunk gaps as the relayed rate rises (50 streams)"
    if not section:
        return _missing(ax, title)
    data = section["data"]
    steps = data["steps"]
    x = [s["relayed_tokens_per_s"] for s in steps]
    ax.plot(x, [s["gap_p50_ms"] for s in steps], "o-", label="gap p50")
    ax.plot(x, [s["gap_p99_ms"] for s in steps], "s-", label="gap p99")
    ax.axhline(2 * data["window_ms"], color="red", linestyle="--",
               label=f"2 x window ({2 * data['window_ms']} ms)")
    cpu = ax.twinx()
    cpu.plot(x, [100 * s["server_cpu"] for s in steps], "^:", color="gray", label="CPU %")
    cpu.set_ylabel("worker CPU, % of a core")
    cpu.set_ylim(0, 110)
    ax.set_xlabel("upstream tokens/s relayed")
    ax.set_ylabel("ms between deltas")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)


def _stall(ax: Any, section: dict[str, Any] | None) -> None:
    title = "6. Last model byte to fallback at the client"
    if not section:
        return _missing(ax, title)
    data = section["data"]
    samples = data["samples_ms"]
    ax.hist(samples, bins=30)
    ax.axvline(data["stall_timeout_s"] * 1000, color="red", linestyle="--",
               label=f"stall timeout {data['stall_timeout_s']:g} s")
    ax.set_xlabel("ms")
    ax.set_ylabel("streams")
    ax.set_title(title)
    ax.legend(fontsize=8)


def _page(ax: Any, section: dict[str, Any] | None) -> None:
    title = "5. Page frame times while the last card streams"
    if not section:
        return _missing(ax, title)
    data = section["data"]
    frames = data.get("frame_deltas_ms") or data.get("frames_ms") or []
    if not frames:
        return _missing(ax, title)
    ax.hist(frames, bins=40)
    ax.axvline(1000 / 60, color="red", linestyle="--", label="60 Hz frame (16.7 ms)")
    ax.set_xlabel("ms between frames")
    ax.set_ylabel("frames")
    ax.set_title(title)
    ax.legend(fontsize=8)
