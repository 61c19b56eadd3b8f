import pytest
import torch

from metateleport.mlp import mlp_forward, mlp_loss
from metateleport.symmetry import RankError, group_act, pinv_full_column_rank
from metateleport.tasks import MLPTaskFamily

CASES = [([20, 20, 20], 20), ([10, 30, 5], 10), ([8, 16, 16, 4], 8)]


def random_Ts(widths, batch, norm, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    Ts = []
    for d in widths[1:-1]:
        T = torch.randn(batch, d, d, generator=g, dtype=torch.float64)
        Ts.append((T * norm / T.norm(dim=(1, 2), keepdim=True)).to(dtype))
    return Ts


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 5e-4)])
@pytest.mark.parametrize("norm", [0.01, 1.0, 3.0])
@pytest.mark.parametrize("widths, n", CASES)
def test_loss_invariance(widths, n, norm, dtype, tol):
    p = MLPTaskFamily(widths, n, dtype=dtype).sample(64, seed=0)
    before = mlp_loss(p.weights, p.X, p.Y)
    moved = group_act(p.weights, p.X, random_Ts(widths, 64, norm, dtype))
    assert all(m.dtype == dtype for m in moved)
    assert not all(torch.allclose(m, w) for m, w in zip(moved, p.weights))
    rel = ((mlp_loss(moved, p.X, p.Y) - before).abs() / before).max().item()
    assert rel < tol


def test_float32_in_native_precision_is_worse_which_is_why_we_upcast():
    p = MLPTaskFamily().sample(64, seed=0)
    Ts = random_Ts([20, 20, 20], 64, 3.0, torch.float32)
    before = mlp_loss(p.weights, p.X, p.Y)

    def rel(**kw):
        return ((mlp_loss(group_act(p.weights, p.X, Ts, **kw), p.X, p.Y) - before).abs()
                / before).max().item()

    # native float32 is 7x the upcast's error on an AVX-512 CPU, over 10x on an earlier one:
    # how much worse depends on the CPU's kernels, that it is worse does not
    assert rel() < 1e-6 and rel(compute_dtype=None) > 3 * rel()


def test_inverse_element_returns_the_weights():
    p = MLPTaskFamily(dtype=torch.float64).sample(8, seed=1)
    Ts = random_Ts([20, 20, 20], 8, 1.0, torch.float64)
    back = group_act(group_act(p.weights, p.X, Ts), p.X, [-T for T in Ts])
    for b, w in zip(back, p.weights):
        torch.testing.assert_close(b, w, rtol=1e-8, atol=1e-8)


def test_output_layer_moves_by_g_inverse_and_hidden_activations_by_g():
    p = MLPTaskFamily(dtype=torch.float64).sample(4, seed=2)
    (T,) = random_Ts([20, 20, 20], 4, 0.5, torch.float64)
    W1, W2 = group_act(p.weights, p.X, [T])
    g = torch.linalg.matrix_exp(T)
    torch.testing.assert_close(W2, p.weights[1] @ torch.linalg.inv(g))
    h = torch.nn.functional.leaky_relu(p.weights[0] @ p.X, 0.1)
    torch.testing.assert_close(torch.nn.functional.leaky_relu(W1 @ p.X, 0.1), g @ h)


def test_batched_equals_per_problem():
    p = MLPTaskFamily([8, 16, 16, 4], 8, dtype=torch.float64).sample(5, seed=3)
    Ts = random_Ts([8, 16, 16, 4], 5, 1.0, torch.float64)
    full = group_act(p.weights, p.X, Ts)
    for i in range(5):
        q = p[i]
        one = group_act(q.weights, q.X, [T[i:i + 1] for T in Ts])
        for a, b in zip(one, full):
            torch.testing.assert_close(a, b[i:i + 1], rtol=1e-12, atol=1e-12)


def test_none_leaves_a_layer_alone():
    p = MLPTaskFamily([8, 16, 16, 4], 8, dtype=torch.float64).sample(2, seed=0)
    _, T2 = random_Ts([8, 16, 16, 4], 2, 1.0, torch.float64)
    moved = group_act(p.weights, p.X, [None, T2])
    assert torch.equal(moved[0], p.weights[0])
    assert not torch.allclose(moved[1], p.weights[1])


def test_rank_error_when_more_samples_than_input_rows():
    p = MLPTaskFamily([10, 30, 5], 10, dtype=torch.float64).sample(2, seed=0)
    X = torch.rand(2, 10, 12, dtype=torch.float64)
    W = [p.weights[0], p.weights[1]]
    with pytest.raises(RankError, match="n=12 samples > d_0=10"):
        group_act(W, X, [torch.zeros(2, 30, 30, dtype=torch.float64)])


def test_rank_error_for_rank_deficient_data():
    p = MLPTaskFamily(dtype=torch.float64).sample(3, seed=0)
    X = p.X.clone()
    X[1, :, 5] = X[1, :, 3]  # two equal samples in problem 1
    with pytest.raises(RankError, match=r"rank-deficient in problems \[1\]"):
        group_act(p.weights, X, [torch.zeros(3, 20, 20, dtype=torch.float64)])


def test_rank_error_names_deeper_layer():
    with pytest.raises(RankError, match="hidden layer 2"):
        pinv_full_column_rank(torch.rand(1, 4, 6), layer=2)


def test_wrong_T_shape():
    p = MLPTaskFamily().sample(2, seed=0)
    with pytest.raises(ValueError, match=r"T_1 has shape \(2, 19, 19\)"):
        group_act(p.weights, p.X, [torch.zeros(2, 19, 19)])
    with pytest.raises(ValueError, match="one T per hidden layer"):
        group_act(p.weights, p.X, [])


def test_gradient_through_action_matches_finite_differences():
    p = MLPTaskFamily([6, 6, 6], 6, init="normal", data="normal", dtype=torch.float64).sample(1, 0)
    T = (0.3 * torch.randn(1, 6, 6, dtype=torch.float64)).requires_grad_()

    def f(T):
        W1, W2 = group_act(p.weights, p.X, [T])
        return (W1.sin().sum() + W2.pow(2).sum())

    (grad,) = torch.autograd.grad(f(T), T)
    V = torch.randn(1, 6, 6, dtype=torch.float64)
    eps = 1e-6
    fd = (f(T + eps * V) - f(T - eps * V)) / (2 * eps)
    assert abs((grad * V).sum().item() - fd.item()) < 1e-6 * max(1.0, abs(fd.item()))


@pytest.mark.parametrize("norm", [0.0, 1e-3, 0.01, 0.3, 1.0, 3.0, 8.0])
def test_expm_pair_matches_matrix_exp(norm):
    from metateleport.symmetry import expm_pair

    T = torch.randn(5, 7, 7, dtype=torch.float64)
    T = T * norm / T.norm(dim=(1, 2), keepdim=True)
    g, g_inv = expm_pair(T)
    ref = torch.linalg.matrix_exp(T)
    scale = ref.abs().max().item()
    torch.testing.assert_close(g, ref, rtol=0, atol=1e-13 * scale)
    torch.testing.assert_close(g_inv, torch.linalg.matrix_exp(-T), rtol=0,
                               atol=1e-13 * max(scale, 1.0) * torch.exp(torch.tensor(2 * norm)))
    eye = torch.eye(7, dtype=torch.float64).expand(5, 7, 7)
    torch.testing.assert_close(g @ g_inv, eye, rtol=0, atol=1e-12 * max(1.0, scale**2))


def test_expm_pair_gradient_matches_matrix_exp():
    from metateleport.symmetry import expm_pair

    T = (0.7 * torch.randn(3, 6, 6, dtype=torch.float64)).requires_grad_()
    V = torch.randn(3, 6, 6, dtype=torch.float64)
    g, g_inv = expm_pair(T)
    ours = torch.autograd.grad((g * V).sum() + (g_inv * V).sum(), T)[0]
    ref = torch.autograd.grad((torch.linalg.matrix_exp(T) * V).sum()
                              + (torch.linalg.matrix_exp(-T) * V).sum(), T)[0]
    torch.testing.assert_close(ours, ref, rtol=1e-11, atol=1e-11)


def test_expm_pair_propagates_non_finite_values():
    from metateleport.symmetry import expm_pair

    T = torch.zeros(2, 3, 3)
    T[1, 0, 0] = float("nan")
    g, g_inv = expm_pair(T)
    assert torch.isfinite(g[0]).all() and not torch.isfinite(g[1]).all()


@pytest.mark.parametrize("bias", [False, True])
def test_identity_is_the_identity_and_actions_compose_when_the_batch_is_narrow(bias):
    # n = 6 samples < d_0 = 10: h^+ h = I_n but h h^+ != I, so the action must change only the
    # component of W_k in the span of the batch (a projection would move the identity)
    p = MLPTaskFamily([10, 8, 8, 3], 6, init="normal", data="normal", bias=bias,
                      dtype=torch.float64).sample(4, 0)
    zeros = [torch.zeros(4, 8, 8, dtype=torch.float64)] * 2
    for w, w0 in zip(group_act(p.weights, p.X, zeros), p.weights):
        torch.testing.assert_close(w, w0, rtol=0, atol=1e-12)
    T1 = random_Ts([10, 8, 8, 3], 4, 0.5, torch.float64, 1)
    # expm(0.7 T) expm(T) = expm(1.7 T): on the first hidden layer (fixed input X), acting
    # twice is acting once with the product
    first = [T1[0], None]
    twice = group_act(group_act(p.weights, p.X, first), p.X, [0.7 * T1[0], None])
    once = group_act(p.weights, p.X, [1.7 * T1[0], None])
    for a, b in zip(twice, once):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
    # on every layer, the two agree on the batch
    twice = group_act(group_act(p.weights, p.X, T1), p.X, [0.7 * T for T in T1])
    once = group_act(p.weights, p.X, [1.7 * T for T in T1])
    for a, b in zip(mlp_forward(twice, p.X)[2], mlp_forward(once, p.X)[2]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
    # off the batch only the data-span component moved: W_1 restricted to the orthogonal
    # complement of the batch is untouched
    X = p.X if not bias else torch.cat([p.X, torch.ones(4, 1, 6, dtype=torch.float64)], 1)
    Q = torch.linalg.qr(X, mode="complete").Q[:, :, 6:]  # complement of the span of the batch
    moved = group_act(p.weights, p.X, T1)
    torch.testing.assert_close(moved[0] @ Q, p.weights[0] @ Q, rtol=0, atol=1e-12)
