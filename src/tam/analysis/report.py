"""``report.md``: the numbers of ``analysis.json`` and its figures, with the reading of each statistic."""

from __future__ import annotations

LEAN_MARGIN = 0.2  # a block "follows" one factor when its ρ beats the other's by this much
LINEAR_SPREAD = 0.5  # softmax logits spread less than this: exp is close to linear over a row

READING = """\
**How to read this.** `q·k = |q||k|cos∠`. For every key `j` the *received weight* is the mean over all
queries of column `j` of the block's spatial map (Non-local: its weights; Criss-cross: its first pass, zero
off the cross; TAM: the implied weights `s·q_i·k_j`, which TAM never forms while it runs). Two factors are
measured on the raw keys (before the block's own geometry mode): the magnitude `|k_j|` and the direction,
as the alignment `cos∠(k_j, q̂)` with the mean query direction `q̂`. Spearman's ρ of the received weight with
each factor says which one the attention follows (ρ per image and head, then averaged; a map that is flat to
1e-4 counts as ρ = 0). *Row entropy* is the entropy of each query's row `|w_ij| / Σ_j |w_ij|` as a fraction
of `log(keys it sees)`: 1 is uniform. *Logit spread* (softmax maps) is the standard deviation of a row's
logits `τ·q_i·k_j` over its keys: well below 1, `exp` is nearly linear and softmax weighs keys almost as the
`scale` form does (by `q̂·k`, i.e. by direction); it leans on the key norms only as the logits grow. For TAM
the *effective rank* of the `d×d` map `M` is `exp` of the entropy of its normalised singular values (1 = rank
one, `d` = flat spectrum)."""


def _num(entry: dict | None) -> str:
    return "–" if entry is None else f"{entry['mean']:+.2f}"


def _plain(entry: dict | None) -> str:
    return "–" if entry is None else f"{entry['mean']:.2f}"


def _rank(block: dict) -> str:
    rank = block.get("effective_rank")
    return "–" if rank is None else f"{rank['mean']:.2f} of {block['head_channels']}"


def _verdict(block: dict) -> str | None:
    if "magnitude_correlation" not in block:
        return None
    magnitude, direction = block["magnitude_correlation"]["mean"], block["direction_correlation"]["mean"]
    if magnitude > direction + LEAN_MARGIN:
        lean = "follows the key **magnitude** more than its direction"
    elif direction > magnitude + LEAN_MARGIN:
        lean = "follows the key **direction** more than its magnitude"
    else:
        lean = "leans on neither factor clearly"
    spread = block.get("logit_spread", {}).get("mean")
    regime = "" if spread is None or spread >= LINEAR_SPREAD else (
        f"; logit spread {spread:.2f}: the softmax is in its near-linear regime, where it weighs keys as `scale` does")
    return (f"- `{block['name']}` ({block['kind']}, {block['normalization']}, geometry {block['geometry']}): "
            f"received weight {lean} (ρ(|k|) = {magnitude:+.2f}, ρ(cos) = {direction:+.2f}{regime}).")


def render_report(analysis: dict) -> str:
    """The Markdown report of an analysis dict as :func:`~tam.analysis.analyze.analyze` returns it."""
    about = analysis["about"]
    lines = [f"# Attention analysis: {about.get('label', 'model')}", ""]
    for key, text in (("checkpoint", "Checkpoint"), ("trained", "Training"), ("data", "Images")):
        if key in about:
            lines.append(f"- **{text}:** {about[key]}")
    top1 = analysis["top1_on_images"]
    lines.append(f"- **Analysed:** {analysis['images']} test images"
                 + (f" (top-1 on them: {top1:.1f}%)" if top1 is not None else "")
                 + f"; maps read {analysis['query_block']} queries at a time; torch {analysis['torch']} on "
                 f"{analysis['device']}.")
    lines += ["", READING, "", "## Geometry per attention block", "",
              "| block | kind | normalization | geometry | grid | heads × d | keys | ρ(received, \\|k\\|) "
              "| ρ(received, cos∠(k, q̂)) | row entropy | logit spread | effective rank of M |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for block in analysis["blocks"]:
        lines.append(
            f"| `{block['name']}` | {block['kind']} | {block['normalization']} | {block['geometry']} | "
            f"{'×'.join(map(str, block['spatial']))} | {block['heads']} × {block['head_channels']} | "
            f"{block.get('keys', '–')} | {_num(block.get('magnitude_correlation'))} | "
            f"{_num(block.get('direction_correlation'))} | {_plain(block.get('row_entropy'))} | "
            f"{_plain(block.get('logit_spread'))} | "
            f"{_rank(block)} |"
        )
    verdicts = [v for v in map(_verdict, analysis["blocks"]) if v]
    if verdicts:
        lines += ["", *verdicts]
    figures = analysis["figures"]
    lines += ["", "## Figures", "", f"![geometry statistics per block]({figures['geometry']})", ""]
    if "keys" in figures:
        lines += [f"![received weight against key norm, coloured by direction]({figures['keys']})", ""]
    for name, file in figures["maps"].items():
        lines += [f"### `{name}`: attention of the numbered queries over the input", "", f"![{name}]({file})", ""]
    for name, file in figures["transposed"].items():
        lines += [f"### `{name}`: TAM's d×d map", "", f"![{name} d×d map]({file})", ""]
    return "\n".join(lines).rstrip() + "\n"
