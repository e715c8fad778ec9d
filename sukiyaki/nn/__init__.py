"""sukiyaki.nn: layers, JSON-defined static networks, optimizers, parameter files.

Example:
    >>> from sukiyaki.nn import Net
    >>> net = Net('[{"name": "fc", "type": "linear", "params": {"out_size": 2}, "inputs": ["x"], "outputs": ["y"]}]',
    ...           input_specs={"x": ((3,), "single")})
    >>> sorted(net.parameters())
    ['fc/bias', 'fc/weight']
"""

from sukiyaki.nn.layer import LAYER_TYPES, BlobSpec, Layer, register_layer  # noqa: F401
from sukiyaki.nn.net import Net  # noqa: F401
