"""What attention learned: maps over the input, and the geometry of magnitude and direction (``tam analyze``).

    from tam.analysis import analyze, block_statistics, map_blocks
    stats = block_statistics("block", layer, x)          # received weight vs |k| and cos∠(k, q̂), entropy, spectrum
    for images, queries, w in map_blocks(layer, x): ...  # the N×N map, one block of queries at a time
"""

from tam.analysis.analyze import analyze
from tam.analysis.geometry import effective_rank, key_factors, rank_correlation, row_entropy
from tam.analysis.maps import attention_blocks, capture_inputs, gather_maps, map_blocks, query_positions
from tam.analysis.statistics import BlockStatistics, block_statistics, received_weights

__all__ = [
    "BlockStatistics",
    "analyze",
    "attention_blocks",
    "block_statistics",
    "capture_inputs",
    "effective_rank",
    "gather_maps",
    "key_factors",
    "map_blocks",
    "query_positions",
    "rank_correlation",
    "received_weights",
    "row_entropy",
]
