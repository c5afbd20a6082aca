"""numba kernels over NumPy arrays, each with a plain-NumPy reference of the same maths.

This package imports only numpy, numba and math: never anything of `hubhop`, never any I/O.
"""
