"""The bridge between the routing policy and the numba kernels.

It keeps the candidate table and the link map as the kernels want them (columns of fixed dtypes,
rebuilt only when the table's shape changes), calls the kernels for each decision, and turns
their arrays back into an answer a person can read. Import `hubhop.scoring.kernels` only after
NUMBA_CACHE_DIR is settled (see that module).
"""
