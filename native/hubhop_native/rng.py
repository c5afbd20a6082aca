"""xorshift64*: the one random generator of the kernels, as a numba kernel and a Python twin.

Randomness is explicit state: a caller owns a `uint64[1]` array and passes it to every kernel
that draws, so a decision is reproducible from the state it started with and tests can replay it.
The numba functions (`next_u64`, `uniform_index`) and the pure-Python twins (`next_u64_py`,
`uniform_index_py`, used by the NumPy references) give bit-identical outputs and leave
bit-identical states.

The generator (Marsaglia's xorshift, with Vigna's multiplicative scrambler, spec/kernels.md):
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27; state = x; output = x * 0x2545F4914F6CDD1D mod 2**64
A zero state is a fixed point of xorshift (it would output 0 forever), so a zero state is
replaced by 0x9E3779B97F4A7C15 (2**64 / golden ratio, odd, bits well mixed) before stepping.
A uniform index in [0, k) is (output >> 11) % k: the top 53 bits, whose modulo bias for the
small k of a near set (k << 2**53) is far below anything a load balancer could notice.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

_numba: Any
try:
    import numba as _numba
except (ImportError, OSError, RuntimeError):  # the NumPy references use the Python twins alone
    _numba = None

_F = TypeVar("_F")


def _njit(fn: _F) -> _F:
    """numba.njit(cache=True) with the function's own type kept (numba ships no type hints);
    the plain function where numba cannot load (hubhop.scoring.kernels then runs the NumPy
    references, which call only the Python twins)."""
    if _numba is None:
        return fn
    return cast(_F, _numba.njit(cache=True)(fn))


ZERO_STATE_SEED = 0x9E3779B97F4A7C15  # replaces a zero state (see the module docstring)
MULTIPLIER = 0x2545F4914F6CDD1D  # xorshift64* output scrambler (Vigna 2016)
_MASK64 = (1 << 64) - 1

# Typed constants: numba freezes NumPy scalars as constants of their own dtype, so every
# operation below stays in uint64 (mixing uint64 with int64 would promote to float64).
_U0 = np.uint64(0)
_U11 = np.uint64(11)
_U12 = np.uint64(12)
_U25 = np.uint64(25)
_U27 = np.uint64(27)
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_SEED = np.uint64(ZERO_STATE_SEED)
_MULT = np.uint64(MULTIPLIER)


@_njit
def _mul_low64(a: np.uint64, b: np.uint64) -> np.uint64:
    """a * b mod 2**64 from 32-bit halves, so no step overflows.

    Compiled, a plain `a * b` would wrap the same way; but under NUMBA_DISABLE_JIT the code runs
    on NumPy scalars, which warn on a wrapping multiply. Every product here is of two values
    below 2**32, and the carry is masked, so both modes compute it without overflow.
    """
    a_lo = a & _LOW32
    a_hi = a >> _U32
    b_lo = b & _LOW32
    b_hi = b >> _U32
    low = a_lo * b_lo
    cross = ((a_hi * b_lo) & _LOW32) + ((a_lo * b_hi) & _LOW32)
    high = ((low >> _U32) + cross) & _LOW32
    return (high << _U32) | (low & _LOW32)


@_njit
def next_u64(state: npt.NDArray[np.uint64]) -> np.uint64:
    """Step the generator in `state[0]` once and return the 64-bit output."""
    x = state[0]
    if x == _U0:
        x = _SEED
    x ^= x >> _U12
    x ^= x << _U25
    x ^= x >> _U27
    state[0] = x
    return _mul_low64(x, _MULT)


@_njit
def uniform_index(state: npt.NDArray[np.uint64], k: int) -> int:
    """A uniform index in [0, k), k >= 1, from one step of the generator."""
    return np.int64((next_u64(state) >> _U11) % np.uint64(k))  # type: ignore[return-value]


def next_u64_py(state: npt.NDArray[np.uint64] | Any) -> int:
    """Pure-Python twin of `next_u64`: same output, same state written back to state[0]."""
    x = int(state[0])
    if x == 0:
        x = ZERO_STATE_SEED
    x ^= x >> 12
    x ^= (x << 25) & _MASK64
    x ^= x >> 27
    state[0] = x
    return (x * MULTIPLIER) & _MASK64


def uniform_index_py(state: npt.NDArray[np.uint64] | Any, k: int) -> int:
    """Pure-Python twin of `uniform_index`."""
    return (next_u64_py(state) >> 11) % int(k)
