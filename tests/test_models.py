"""The paper's models: exact parameter counts, options, user models, and shape checks."""

import sys
import textwrap

import pytest
import torch
from torch import nn

from rethinkgen.errors import RethinkgenError
from rethinkgen.models import count_parameters, create_model, default_lr, model_names
from rethinkgen.models.inception import BatchNormShift

PAPER_COUNTS = {  # Table 1, for 3x28x28 inputs and 10 classes
    "mlp-1x512": 1_209_866,
    "mlp-3x512": 1_735_178,
    "alexnet-small": 1_387_786,
    "inception-small": 1_649_402,
    "inception-small-nobn": 1_649_402,
}


@pytest.mark.parametrize("name, count", PAPER_COUNTS.items())
def test_parameter_counts_match_the_paper_exactly(name, count):
    assert count_parameters(create_model(name, (3, 28, 28), 10)) == count


def test_registry_lists_every_paper_model_with_its_learning_rate():
    assert set(PAPER_COUNTS) <= set(model_names())
    assert default_lr("inception-small") == 0.1 and default_lr("inception-small-nobn") == 0.1
    assert default_lr("alexnet-small") == 0.01 and default_lr("mlp-1x512") == 0.01


@pytest.mark.parametrize("name", PAPER_COUNTS)
@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 8, 8), (1, 28, 28)])
def test_models_map_images_to_logits(name, shape):
    model = create_model(name, shape, 7)
    model.eval()
    assert model(torch.randn(4, *shape)).shape == (4, 7)


def test_inception_variants_differ_only_in_batch_norm():
    with_bn = create_model("inception-small", (3, 28, 28), 10)
    without = create_model("inception-small-nobn", (3, 28, 28), 10)
    assert sum(isinstance(m, BatchNormShift) for m in with_bn.modules()) == 1 + 2 * 8 + 2
    assert not any(isinstance(m, (nn.BatchNorm2d, BatchNormShift)) for m in without.modules())
    assert all(conv.bias is None for conv in with_bn.modules() if isinstance(conv, nn.Conv2d))
    assert all(conv.bias is not None for conv in without.modules() if isinstance(conv, nn.Conv2d))


def test_inception_spatial_sizes_follow_figure_3():
    model = create_model("inception-small", (3, 28, 28), 10).eval()
    sizes, x = [], torch.zeros(1, 3, 28, 28)
    for layer in model:
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[0] == (96, 28, 28) and sizes[3] == (160, 14, 14) and sizes[8] == (240, 7, 7)
    assert sizes[10] == (336, 7, 7)


def test_alexnet_has_local_response_normalization_after_each_pool():
    model = create_model("alexnet-small", (3, 28, 28), 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds[:8] == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm"] * 2


@pytest.mark.parametrize("name", PAPER_COUNTS)
def test_dropout_option_adds_dropout_without_parameters(name):
    plain = create_model(name, (3, 28, 28), 10)
    dropped = create_model(name, (3, 28, 28), 10, dropout=0.5)
    assert any(isinstance(m, nn.Dropout) for m in dropped.modules())
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    assert count_parameters(dropped) == count_parameters(plain)


def test_unknown_option_lists_the_allowed_ones():
    with pytest.raises(RethinkgenError, match="width.*allowed: dropout"):
        create_model("mlp-1x512", (3, 28, 28), 10, width=3)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        from torch import nn

        def tiny(input_shape, num_classes, hidden=16):
            c, h, w = input_shape
            return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

        def fixed(input_shape, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))

        def wrong_output(input_shape, num_classes):
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))

        NOT_CALLABLE = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models"
    sys.modules.pop("my_models", None)


def test_user_model_by_module_and_factory(user_module):
    model = create_model(f"{user_module}:tiny", (1, 8, 8), 10, hidden=5)
    assert count_parameters(model) == 64 * 5 + 5 + 5 * 10 + 10
    assert default_lr(f"{user_module}:tiny") == 0.01


@pytest.mark.parametrize("reference, fragment", [
    ("no_such_module_xyz:f", "cannot import"),
    ("my_models:missing", "no callable 'missing'"),
    ("my_models:NOT_CALLABLE", "no callable"),
    ("resnet", "allowed: alexnet-small"),
])
def test_bad_model_references(user_module, reference, fragment):
    with pytest.raises(RethinkgenError, match=fragment):
        create_model(reference, (1, 8, 8), 10)


def test_a_model_that_cannot_take_the_input_shape_is_refused(user_module):
    with pytest.raises(RethinkgenError, match=r"cannot take input shape \(1, 8, 8\)"):
        create_model(f"{user_module}:fixed", (1, 8, 8), 10)
    with pytest.raises(RethinkgenError, match=r"output shape \(11,\)"):
        create_model(f"{user_module}:wrong_output", (1, 8, 8), 10)


@pytest.mark.parametrize("shape", [(3, 28), (0, 8, 8)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(RethinkgenError, match="input shape"):
        create_model("mlp-1x512", shape, 10)


def test_inception_without_batch_norm_starts_from_he_initialization():
    torch.manual_seed(0)
    model = create_model("inception-small-nobn", (3, 28, 28), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        fan_in = conv.weight[0].numel()
        assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.15)
        assert torch.count_nonzero(conv.bias) == 0


def test_alexnet_max_pool_equals_pytorchs_bit_for_bit():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from rethinkgen.models.alexnet import MaxPool2d

    torch.manual_seed(0)
    for shape in [(4, 8, 28, 28), (3, 5, 13, 13), (2, 3, 7, 9)]:
        x = torch.relu(torch.randn(*shape)).requires_grad_()  # ReLU first, as in the model: many ties at 0
        ours, theirs = MaxPool2d(3, stride=2, padding=1)(x), nn.MaxPool2d(3, stride=2, padding=1)(x)
        assert torch.equal(ours, theirs) and ours.is_contiguous()
        grad = torch.randn_like(ours)
        assert torch.equal(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(theirs, x, grad)[0])
        last = x.detach().contiguous(memory_format=torch.channels_last)  # PyTorch's own path
        assert torch.equal(MaxPool2d(3, stride=2, padding=1)(last), F.max_pool2d(last, 3, 2, 1))
    with torch.no_grad():
        assert torch.equal(MaxPool2d(3, 2, 1, ceil_mode=True)(x), F.max_pool2d(x, 3, 2, 1, ceil_mode=True))


def test_alexnet_lrn_is_pytorchs_lrn_to_rounding():
    import torch
    from torch import nn

    from rethinkgen.models.alexnet import LRN, LocalResponseNorm

    torch.manual_seed(0)
    x = torch.randn(4, 64, 7, 7, dtype=torch.float64, requires_grad=True) * 5
    fast, reference = LocalResponseNorm(**LRN)(x), nn.LocalResponseNorm(**LRN)(x)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    grad_fast, = torch.autograd.grad(fast.square().sum(), x)
    grad_reference, = torch.autograd.grad(reference.square().sum(), x)
    torch.testing.assert_close(grad_fast, grad_reference, rtol=1e-10, atol=1e-12)
    for channels in (1, 3, 10):  # windows wider than the channels
        y = torch.randn(2, channels, 3, 3, dtype=torch.float64)
        torch.testing.assert_close(LocalResponseNorm(**LRN)(y), nn.LocalResponseNorm(**LRN)(y))
    other_beta = {**LRN, "beta": 0.5}  # the general power, not the beta = 0.75 shortcut
    torch.testing.assert_close(LocalResponseNorm(**other_beta)(x), nn.LocalResponseNorm(**other_beta)(x))
    x32 = x.detach().float()
    torch.testing.assert_close(LocalResponseNorm(**LRN)(x32), nn.LocalResponseNorm(**LRN)(x32), rtol=1e-6, atol=1e-6)


def test_model_families_build_every_size_in_their_name():
    from rethinkgen.models import count_parameters, create_model, default_lr
    # mlp-DxW: D hidden layers of W units; mlp-1x512 is the paper's network, by either route
    assert count_parameters(create_model("mlp-1x512", (3, 28, 28), 10)) == 1_209_866
    assert count_parameters(create_model("mlp-2x16", (1, 8, 8), 10)) == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    # cnn5-K: convolutions of K, 2K, 4K, 8K channels with batch norm, then a linear layer on 8K features
    k = 4
    convs = sum(9 * c_in * c_out + c_out + 2 * c_out for c_in, c_out in [(3, k), (k, 2 * k), (2 * k, 4 * k), (4 * k, 8 * k)])
    assert count_parameters(create_model("cnn5-4", (3, 32, 32), 10)) == convs + 8 * k * 10 + 10
    for shape in [(1, 8, 8), (3, 28, 28), (3, 32, 32)]:  # the global pool takes every side
        create_model("cnn5-2", shape, 10)
    assert default_lr("cnn5-8") == default_lr("mlp-4x100") == 0.01


@pytest.mark.parametrize("name", ["mlp-0x5", "mlp-1x", "mlp-10x5", "cnn5-0", "cnn5-1000", "cnn5-8x"])
def test_a_family_name_outside_its_pattern_is_refused(name):
    from rethinkgen.models import check_name
    with pytest.raises(RethinkgenError, match="mlp-DxW, .*package.module:factory"):
        check_name(name)
