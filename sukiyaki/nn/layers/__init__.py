"""Built-in layers; importing this package registers them all."""

from sukiyaki.nn.layers import (  # noqa: F401
    activation, conv, data, linear, loss, normalization, structure,
)
