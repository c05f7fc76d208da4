"""Fixed sparse maps (`coseg.segment.sparse`): forward and backward against the dense float64 twin."""

import numba
import numpy as np
import pytest
import torch

from coseg.segment.sparse import SparseRows, _apply, apply


def _random_rows(rng, n_rows=70, n_cols=40):
    counts = rng.integers(0, 6, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return SparseRows(indptr, rng.integers(0, n_cols, indptr[-1]), rng.uniform(0, 1, indptr[-1]), n_cols)


@pytest.mark.parametrize("threads", [1, 2])
def test_apply_and_its_gradient_match_the_dense_twin(threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba limited to one thread")
    rng = np.random.default_rng(0)
    m = _random_rows(rng)
    x = torch.tensor(rng.normal(size=(40, 7)), dtype=torch.float32, requires_grad=True)
    upstream = torch.tensor(rng.normal(size=(70, 7)))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        y = apply(m, x)
        (grad,) = torch.autograd.grad(y, x, upstream.float())
    finally:
        numba.set_num_threads(previous)
    x64 = x.detach().double().requires_grad_(True)
    y_ref = _apply(m, x64)
    (grad_ref,) = torch.autograd.grad(y_ref, x64, upstream)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-5, atol=1e-5)


def test_rows_keeps_the_chosen_rows_in_order_and_neighbour_rows():
    rng = np.random.default_rng(1)
    m = _random_rows(rng)
    keep = np.array([5, 2, 60, 2])
    x = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float64)
    torch.testing.assert_close(_apply(m.rows(keep), x), _apply(m, x)[torch.from_numpy(keep)])
    idx = np.array([[0, 1], [2, 2]])
    nb = SparseRows.from_neighbours(idx, np.array([[0.25, 0.75], [0.5, 0.5]]), 3)
    torch.testing.assert_close(_apply(nb, torch.eye(3, dtype=torch.float64)),
                               torch.tensor([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="40 columns"):
        apply(m, torch.zeros(39, 2))
