"""sukiyaki: a deep-learning platform that runs wherever Python runs, browsers included.

Subpackages: ``sukiyaki.matrix`` (MATLAB-like matrices), ``sukiyaki.nn`` (layers,
JSON networks, optimizers), ``sukiyaki.data`` (datasets).
"""

__version__ = "0.1.0"
