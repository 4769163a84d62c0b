"""Input-size rules shared by the model builders."""
from __future__ import annotations

from seglab.core.errors import BadArgument


def parse_input_size(input_size) -> tuple[int, int]:
    """`128`, `(128, 128)` or `(H, W)` -> (H, W); anything else is a ValueError saying what fits."""
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise BadArgument(f"input_size must be an int or (height, width); got {input_size!r}.") from None
    if height < 1 or width < 1:
        raise BadArgument(f"input_size must be positive; got {height}x{width}.")
    return height, width


def check_divisible(input_size: tuple[int, int], stride: int, model_name: str) -> None:
    """Raise a ValueError naming the nearest size the model takes when H or W is not a multiple of
    `stride` (the model's total downsampling), e.g. `Use 256x256 (--size 256).`"""
    height, width = input_size
    if height % stride == 0 and width % stride == 0:
        return
    nearest = tuple(max(stride, stride * round(v / stride)) for v in (height, width))
    flag = str(nearest[0]) if nearest[0] == nearest[1] else f"{nearest[0]}x{nearest[1]}"
    raise BadArgument(
        f"Input size must be divisible by {stride} for {model_name}; got {height}x{width}. "
        f"Use {nearest[0]}x{nearest[1]} (--size {flag})."
    )
