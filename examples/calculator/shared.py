"""Types both the calculator server and its clients know: registered, so they travel by copy."""

from dataclasses import dataclass

import broker


@broker.copyable("calculator.Vector")
@dataclass
class Vector:
    x: float
    y: float
