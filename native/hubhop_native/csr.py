"""Link lists to the CSR link map that `shortest_paths` reads.

A link map in compressed sparse row form: the links leaving node u are
`indices[indptr[u]:indptr[u + 1]]`, with their measured round-trip times at the same positions
of `rtt`. This helper builds it from three parallel link arrays.

Rules:
- Directed: a link src -> dst appears only in row src. Undirected maps are the caller's business
  (pass each link in both directions).
- Stable: within a row, links keep the order they had in the input (a stable sort on src), so
  the kernel's tie rule, which depends on the order links are relaxed, sees a reproducible order.
- Duplicates and broken RTTs (nan, inf, negative) are kept as given: the kernel ignores broken
  links and, of duplicate links, its relaxation keeps the lowest RTT. Filtering here would only
  hide from the kernel tests what the kernel must handle anyway.
- Endpoints out of [0, n_nodes) and arrays of unequal length are caller bugs: ValueError.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def links_to_csr(
    n_nodes: int,
    src: npt.NDArray[np.int32],
    dst: npt.NDArray[np.int32],
    rtt_ms: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """Return (indptr int32[N+1], indices int32[E], rtt float64[E]), C-contiguous."""
    if n_nodes < 0:
        raise ValueError(f"n_nodes must be >= 0, got {n_nodes}")
    src_a = np.asarray(src)
    dst_a = np.asarray(dst)
    rtt_a = np.asarray(rtt_ms, dtype=np.float64)
    if src_a.ndim != 1 or src_a.shape != dst_a.shape or src_a.shape != rtt_a.shape:
        raise ValueError(
            f"src, dst and rtt_ms must be 1-D of one length, got shapes "
            f"{src_a.shape}, {dst_a.shape}, {rtt_a.shape}"
        )
    n_links = src_a.shape[0]
    if n_links and (
        src_a.min() < 0 or src_a.max() >= n_nodes or dst_a.min() < 0 or dst_a.max() >= n_nodes
    ):
        raise ValueError(f"link endpoints must lie in [0, {n_nodes})")
    src64 = src_a.astype(np.int64)
    order = np.argsort(src64, kind="stable")
    counts = np.bincount(src64, minlength=n_nodes)
    indptr = np.zeros(n_nodes + 1, dtype=np.int32)
    np.cumsum(counts, out=indptr[1:])
    indices = np.ascontiguousarray(dst_a[order], dtype=np.int32)
    rtt = np.ascontiguousarray(rtt_a[order], dtype=np.float64)
    return indptr, indices, rtt
