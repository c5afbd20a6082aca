"""The layout of the candidate table the kernels read: which row of `row_num` holds which field.

A table of R rows (one per node x backend) is five C-contiguous arrays (spec/kernels.md):

    row_node   int32   [R]              index of the row's node into the per-node arrays
    row_alive  uint8   [R]              1 alive, 0 not
    row_chip   int32   [R]              chip id (the bridge maps chip names to small ints)
    row_models uint64  [R, W]           model bitset: model m is bit m % 64 of word m // 64; W >= 1
    row_num    float64 [ROW_FIELDS, R]  one contiguous column per field below

Numeric fields live in one matrix, one field per row of it, so each field is a contiguous column
that a kernel walks in memory order, and a decision passes one array instead of ten.
Counts (slots, busy, queues) are float64 too: loads gossiped as averages need not be whole.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

ROW_PRICE: Final = 0  # price per request, in the operator's currency unit
ROW_GREEN: Final = 1  # share of green power, 0..1
ROW_SLOTS: Final = 2  # concurrent requests the backend takes
ROW_RESERVE: Final = 3  # slots kept for the emergency lane
ROW_BUSY: Final = 4  # slots in use, as the node last reported
ROW_QUEUE_EMERGENCY: Final = 5  # requests waiting in the emergency lane
ROW_QUEUE_STANDARD: Final = 6  # requests waiting in the standard lane
ROW_QUEUE_BATCH: Final = 7  # requests waiting in the batch lane
ROW_SERVICE_MS: Final = 8  # service-time estimate for one request, ms
ROW_LOCAL_INFLIGHT: Final = 9  # requests this entry node sent there that are not back yet
ROW_FIELDS: Final = 10

FIELD_NAMES: Final = (
    "price",
    "green",
    "slots",
    "reserve",
    "busy",
    "queue_emergency",
    "queue_standard",
    "queue_batch",
    "service_ms",
    "local_inflight",
)

MODEL_BITS_PER_WORD: Final = 64


def model_words(n_models: int) -> int:
    """Words of the model bitset needed for model ids 0..n_models-1 (at least one word)."""
    return max(1, (int(n_models) + MODEL_BITS_PER_WORD - 1) // MODEL_BITS_PER_WORD)


def set_model_bit(row_models: npt.NDArray[np.uint64], row: int, model_id: int) -> None:
    """Mark model `model_id` as served by `row`, in place; the bitset must be wide enough."""
    if model_id < 0:
        raise ValueError(f"model id must be >= 0, got {model_id}")
    word, bit = divmod(int(model_id), MODEL_BITS_PER_WORD)
    if word >= row_models.shape[1]:
        raise ValueError(
            f"model id {model_id} needs {word + 1} bitset words, the table has "
            f"{row_models.shape[1]}"
        )
    row_models[row, word] |= np.uint64(1 << bit)
