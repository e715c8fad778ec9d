"""Optimizers (SGD, momentum SGD, Adam) and learning-rate schedules."""

from sukiyaki.nn.optim import adam, sgd  # noqa: F401  (registers them)
from sukiyaki.nn.optim.base import OPTIMIZERS, Optimizer, get_optimizer, register_optimizer  # noqa: F401
from sukiyaki.nn.optim.schedule import cosine_schedule, make_schedule, step_schedule  # noqa: F401
