"""Fixed sparse maps (`coseg.segment.sparse`): forward and backward against the dense float64 twin."""

import numba
import numpy as np
import pytest
import torch

from coseg.segment.sparse import SparseRows, _apply, apply, render_softmax


def _random_rows(rng, n_rows=70, n_cols=40):
    counts = rng.integers(0, 6, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return SparseRows(indptr, rng.integers(0, n_cols, indptr[-1]), rng.uniform(0, 1, indptr[-1]), n_cols)


def _against_dense_twin(threads, way, dense_way, seed, scale=1.0):
    """(y, grad, y_ref, grad_ref) of `way` at `threads` numba threads and of `dense_way` in float64."""
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba limited to one thread")
    rng = np.random.default_rng(seed)
    m = _random_rows(rng)  # some rows have no entries
    x = torch.tensor(rng.normal(size=(40, 7)) * scale, dtype=torch.float32, requires_grad=True)
    upstream = torch.tensor(rng.normal(size=(70, 7)))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        y = way(m, x)
        (grad,) = torch.autograd.grad(y, x, upstream.float())
    finally:
        numba.set_num_threads(previous)
    x64 = x.detach().double().requires_grad_(True)
    y_ref = dense_way(m, x64)
    (grad_ref,) = torch.autograd.grad(y_ref, x64, upstream)
    return m, y, grad, y_ref, grad_ref


@pytest.mark.parametrize("threads", [1, 2])
def test_apply_and_its_gradient_match_the_dense_twin(threads):
    _, y, grad, y_ref, grad_ref = _against_dense_twin(threads, apply, _apply, 0)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_render_softmax_and_its_gradient_match_softmax_of_the_dense_twin(threads):
    m, y, grad, y_ref, grad_ref = _against_dense_twin(
        threads, render_softmax, lambda m, x: torch.softmax(_apply(m, x), dim=-1), 1, scale=3.0)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-4, atol=1e-5)
    empty = np.diff(m.indptr) == 0  # uniform there
    assert empty.any() and torch.allclose(y[empty], torch.full((1, 7), 1 / 7))


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


def test_light_entries_are_dropped_lightest_first_within_the_tolerance_of_each_row():
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 30, 200)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    weights = rng.exponential(1.0, indptr[-1]) ** 3  # many light entries, a few heavy ones
    m = SparseRows(indptr, rng.integers(0, 50, indptr[-1]), weights, 50)
    assert m.without_light_entries(0.0) is m
    tol = 0.05
    pruned = m.without_light_entries(tol)
    assert pruned.n_rows == m.n_rows and pruned.n_cols == m.n_cols and pruned.nnz < m.nnz
    for r in range(m.n_rows):
        a, b = m.indptr[r], m.indptr[r + 1]
        pa, pb = pruned.indptr[r], pruned.indptr[r + 1]
        w, pw = m.weights[a:b], pruned.weights[pa:pb]
        if b == a:
            assert pb == pa
            continue
        # The kept entries are the row's own, in their order (front to back for a rendering).
        keep, k = np.zeros(b - a, bool), 0
        for i in range(b - a):
            if k < pb - pa and pw[k] == w[i] and pruned.indices[pa + k] == m.indices[a + i]:
                keep[i], k = True, k + 1
        assert k == pb - pa
        dropped = w[~keep]
        assert dropped.sum() <= tol * w.sum() * (1 + 1e-5)
        assert pw.max() == w.max()  # the heaviest entry always stays
        if len(dropped):  # lightest first: nothing dropped is heavier than what is kept
            assert dropped.max() <= pw.min()
        else:  # nothing could go: the lightest entry alone exceeds the budget (or a single entry)
            assert len(w) == 1 or np.sort(w)[0] > tol * w.sum() * (1 - 1e-5)
    # Every rendered value moves by at most tol * max|x| per unit of the row's weight.
    x = torch.tensor(rng.normal(size=(50, 3)), dtype=torch.float32)
    row_sum = torch.from_numpy(np.add.reduceat(np.append(m.weights, 0), m.indptr[:-1]) * (counts > 0))
    diff = (apply(m, x) - apply(pruned, x)).abs().max(dim=1).values
    assert torch.all(diff <= tol * row_sum.float() * x.abs().max() + 1e-5)


def test_compacted_renumbers_the_columns_as_unique_and_searchsorted_do():
    rng = np.random.default_rng(3)
    r = _random_rows(rng, n_cols=40)
    used, c = r.compacted()
    assert used.tolist() == np.unique(r.indices).tolist() and c.n_cols == len(used)
    assert c.indices.tolist() == np.searchsorted(used, r.indices).tolist()
    x = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float64)
    torch.testing.assert_close(_apply(c, x[torch.from_numpy(used)]), _apply(r, x))
