import pytest
import torch

from wms.losses import bce_dice_loss, soft_dice_loss
from wms.model import ENCODERS, build_unet, count_parameters


def test_unknown_encoder_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        build_unet("vgg99")


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_registered_encoder_gives_one_logit_per_pixel(encoder):
    model = build_unet(encoder).eval()
    with torch.inference_mode():
        logits = model(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 1, 64, 64)
    assert count_parameters(model) > 1_000_000


def test_dice_loss_is_low_for_a_right_answer_and_high_for_a_wrong_one():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    right = (target * 2 - 1) * 20
    assert soft_dice_loss(right, target) < 0.01
    assert soft_dice_loss(-right, target) > 0.9
    assert bce_dice_loss(right, target) < bce_dice_loss(-right, target)
