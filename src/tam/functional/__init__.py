"""Stateless attention cores, one module per family.

Every core takes per-head queries, keys and values with channels before positions, ``[B, h, d, N]``
(criss-cross keeps the 2-D grid, ``[B, h, d, H, W]``), and returns the attended values in the same layout.
The modules in :mod:`tam.layers` own the projections around these cores; the tests hold written-out
references for each of them.

Notation (DESIGN §1): ``N`` positions, ``d`` query/key width per head, ``s = 1/sqrt(N·d)``.

- :mod:`~tam.functional.checks`: argument checks, the geometry factors of ``q·k``
- :mod:`~tam.functional.products`: matrix products in the layout their consumers read
- :mod:`~tam.functional.non_local`: Non-local (dot product and embedded Gaussian), fused and naive
- :mod:`~tam.functional.transposed`: transposed attention (TAM), the ``d×d`` map per head
- :mod:`~tam.functional.gram`: TAM's Gram form, the block as one ``C×C`` map per sample
- :mod:`~tam.functional.criss_cross`: criss-cross attention (CCNet)
- :mod:`~tam.functional.xca`: cross-covariance attention (XCiT) and its Gram form
- :mod:`~tam.functional.linear_family`: Efficient Attention, linear (elu + 1) attention, global context
"""

from tam.functional.checks import GEOMETRIES, NORMALIZATIONS, apply_geometry, check_choice, check_qkv
from tam.functional.criss_cross import criss_cross_attention, criss_cross_map
from tam.functional.gram import gram_macs, gram_transposed_attention
from tam.functional.linear_family import (
    efficient_attention,
    efficient_context,
    efficient_map,
    global_context_attention,
    global_context_map,
    linear_attention,
    linear_context,
    linear_map,
)
from tam.functional.non_local import NON_LOCAL_IMPLS, non_local_attention, non_local_map
from tam.functional.products import is_channels_last, scaled_bmm, weight_matmul
from tam.functional.transposed import transposed_attention, transposed_macs, transposed_map
from tam.functional.xca import (
    cross_covariance_attention,
    cross_covariance_map,
    gram_cross_covariance_attention,
    xca_gram_macs,
)

__all__ = [
    "GEOMETRIES",
    "NON_LOCAL_IMPLS",
    "NORMALIZATIONS",
    "apply_geometry",
    "check_choice",
    "check_qkv",
    "criss_cross_attention",
    "criss_cross_map",
    "cross_covariance_attention",
    "cross_covariance_map",
    "efficient_attention",
    "efficient_context",
    "efficient_map",
    "global_context_attention",
    "global_context_map",
    "gram_macs",
    "gram_cross_covariance_attention",
    "gram_transposed_attention",
    "is_channels_last",
    "linear_attention",
    "linear_context",
    "linear_map",
    "non_local_attention",
    "non_local_map",
    "scaled_bmm",
    "transposed_attention",
    "transposed_macs",
    "transposed_map",
    "weight_matmul",
    "xca_gram_macs",
]
