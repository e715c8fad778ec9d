"""The MATLAB-named function set of sukiyaki.matrix, gathered in one namespace."""

from sukiyaki.matrix.creation import (  # noqa: F401
    array, cast, colonvec, eye, full, ones, rand, randi, randn, rng, zeros,
)
from sukiyaki.matrix.device import autodestruct, destruct, gather, gpuArray  # noqa: F401
from sukiyaki.matrix.elementwise import (  # noqa: F401
    abs, acos, allclose, and_, asin, atan, atan2, ceil, cos, cosh, eq, exp, expm1, fix,
    floor, ge, gt, isclose, isequal, isfinite, isinf, isnan, ldivide, le, log, log1p, log2,
    log10, lt, minus, mod, mtimes, ne, not_, or_, plus, power, rdivide, rem, round,
    sigmoid, sign, sin, sinh, sqrt, tan, tanh, times, uminus, uplus, xor,
)
from sukiyaki.matrix.indexing import END, colon, find, ind2sub, sub2ind  # noqa: F401
from sukiyaki.matrix.io import load, loadz, save, savez  # noqa: F401
from sukiyaki.matrix.kernel import (  # noqa: F401
    Kernel, KernelError, create_kernel, createKernel, execute_kernel, executeKernel,
)
from sukiyaki.matrix.reduction import (  # noqa: F401
    all, any, argmax, argmin, cumprod, cumsum, max, mean, min, prod, std, sum, variance,
)
from sukiyaki.matrix.shape import (  # noqa: F401
    cat, horzcat, iscolumn, isempty, ismatrix, isrow, isscalar, isvector, length, ndims,
    numel, permute, ipermute, repmat, reshape, size, squeeze, t, transpose, vertcat,
)
