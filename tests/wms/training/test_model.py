import pytest
import torch

from wms.training.losses import LOSSES, bce_dice_loss, loss_by_name, soft_dice_loss
from wms.training.model import ENCODERS, build_unet, count_parameters


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


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_prefers_the_right_answer(name):
    target = torch.zeros(2, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    right = (target * 2 - 1) * 20
    loss = loss_by_name(name)
    assert loss(right, target) < loss(-right, target)


def test_an_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="choose one of bce_dice"):
        loss_by_name("mse")


def test_encoder_weights_load_from_a_file_and_a_wrong_file_is_refused(tmp_path):
    source = build_unet("resnet18")
    torch.save(source.encoder.state_dict(), tmp_path / "resnet18.pt")
    loaded = build_unet("resnet18", tmp_path / "resnet18.pt")
    assert torch.equal(loaded.encoder.conv1.weight, source.encoder.conv1.weight)
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="same architecture"):
        build_unet("resnet18", tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="do not exist"):
        build_unet("resnet18", tmp_path / "missing.pt")


def test_the_whole_model_starts_from_a_state_dict_or_a_checkpoint_and_a_misfit_is_refused(tmp_path):
    import torch

    from wms.training.model import load_model_weights

    trained = build_unet("mobilenet_v2")
    torch.save(trained.state_dict(), tmp_path / "weights.pt")
    torch.save({"progress": {"best_state": trained.state_dict()}, "average": {}}, tmp_path / "last.pt")
    for path in (tmp_path / "weights.pt", tmp_path / "last.pt"):
        fresh = build_unet("mobilenet_v2")
        load_model_weights(fresh, path)
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="does not fit"):
        load_model_weights(build_unet("resnet18"), tmp_path / "weights.pt")
    with pytest.raises(FileNotFoundError):
        load_model_weights(build_unet("mobilenet_v2"), tmp_path / "absent.pt")
