"""What is unique to Gated-SCNN: gated convolutions, the shape stream's boundary logits, its losses."""

from __future__ import annotations

import torch

import seglab
from seglab.models.semantic.gated_scnn import GatedConv


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    spec = seglab.model_spec("gated_scnn_resnet101")
    return seglab.create_model("gated_scnn_resnet101", num_classes=3, **spec.test_kwargs)


def test_gate_attention_is_in_unit_range_and_driven_by_the_regular_stream() -> None:
    torch.manual_seed(0)
    gate = GatedConv(4).eval()
    shape, regular = torch.randn(2, 4, 5, 6), torch.randn(2, 1, 5, 6)
    alpha = gate.attention(shape, regular)
    assert alpha.shape == (2, 1, 5, 6)
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert not torch.allclose(gate.attention(shape, regular + 3 * torch.randn_like(regular)), alpha)
    # eq. 2: s_hat = ((s * alpha) + s) w with w a 1x1 conv
    torch.testing.assert_close(gate(shape, regular), gate.conv(shape * (1 + alpha)))


def test_boundary_logits_come_back_at_the_input_size() -> None:
    model = small_model().eval()
    out = model(torch.rand(2, 3, 37, 45))
    assert out.logits.shape == (2, 3, 37, 45)
    assert out.aux is not None and out.aux["boundary_logits"].shape == (2, 1, 37, 45)


def test_losses_are_named_and_the_boundary_loss_trains_the_shape_stream() -> None:
    model = small_model().train()
    images = torch.rand(2, 3, 40, 40)
    targets = torch.zeros(2, 40, 40, dtype=torch.int64)
    targets[:, :, 20:] = 1
    targets[:, :3] = 255
    losses = model(images, targets)
    assert set(losses) == {"loss_ce", "loss_boundary", "loss_dual", "loss_dual_attention"}
    losses["loss_boundary"].backward()
    assert model.shape_stream.to_logits.weight.grad.abs().sum() > 0
    assert model.shape_stream.side[2].weight.grad.abs().sum() > 0  # c5 gates the last GCL
    assert model.decoder.classifier.weight.grad is None  # BCE reaches the shape stream only


def test_image_gradient_marks_a_step_edge() -> None:
    model = small_model().eval()
    images = torch.zeros(1, 3, 8, 8)
    images[..., 4:] = 1.0
    grad = model.image_gradient(model.normalize(images))[0, 0]
    torch.testing.assert_close(grad[:, 3:5], torch.ones(8, 2), rtol=1e-5, atol=1e-5)
    assert grad[:, :3].max() < 1e-4 and grad[:, 5:].max() < 1e-4


def test_registered_under_the_survey_row() -> None:
    assert seglab.model_spec("gated_scnn_resnet101").survey_row == "Gated-SCNN"
