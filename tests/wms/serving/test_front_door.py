"""The nginx front door on its own: its configuration, its JSON answers with nothing behind it, a reload."""

import time
from dataclasses import replace

import pytest
from PIL import Image

from tests.conftest import free_port
from tests.photos import encode
from tests.serving.test_service import MODEL, post
from wms.serving.front_door import Canary, FrontDoor, render_config, traffic_split
from wms.serving.torchserve import MAX_REQUEST_BYTES, LocalTorchServe

GOOD = encode(Image.new("RGB", (64, 64)), "JPEG")


def test_the_configuration_carries_the_ports_the_limit_and_the_model(tmp_path):
    config = render_config(tmp_path, tmp_path / "site", "127.0.0.1", 9001, 9002, 1234, model=("wms-unet", "7"))
    assert "listen 127.0.0.1:9001;" in config and "server 127.0.0.1:9002;" in config
    assert "client_max_body_size 1234;" in config
    assert '"model": "wms-unet", "model_version": "7"}' in config


def test_a_model_name_that_would_break_the_configuration_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must not contain"):
        render_config(tmp_path, tmp_path / "site", "127.0.0.1", 1, 2, 3, model=("it's", "1"))


def test_without_a_canary_requests_naming_no_version_go_to_the_version_in_service():
    split = traffic_split(("wms-unet", "7"), None)
    assert "split_clients" not in split and "/predictions/wms-unet /predictions/wms-unet/7;" in split
    assert traffic_split(("wms-unet", "7"), Canary("8", 0)) == split


def test_a_canary_takes_its_share_of_requests_naming_no_version():
    split = traffic_split(("wms-unet", "7"), Canary("8", 20))
    assert "20% /predictions/wms-unet/8;" in split and "* /predictions/wms-unet/7;" in split
    assert "/predictions/wms-unet $wms_split;" in split and "default $uri;" in split  # a pinned version stays pinned
    assert "/predictions/wms-unet /predictions/wms-unet/8;" in traffic_split(("wms-unet", "7"), Canary("8", 100))


@pytest.mark.parametrize("weight", [-1, 101, 2.5, True, "20"])
def test_a_weight_that_is_not_a_whole_percent_is_refused(weight):
    with pytest.raises(ValueError, match="a whole percent from 0 to 100"):
        Canary("8", weight)


def test_a_version_that_would_break_the_configuration_is_refused():
    with pytest.raises(ValueError, match="must be letters, digits"):
        Canary("8; return 200", 10)


@pytest.mark.integration
def test_the_front_door_answers_in_json_while_torchserve_is_down(tmp_path):

    door = FrontDoor(tmp_path, tmp_path / "site", "127.0.0.1", free_port(), free_port(), MAX_REQUEST_BYTES, model=(MODEL, "1"))
    behind = replace(LocalTorchServe(tmp_path), inference_port=door.listen_port)
    door.start()
    try:
        status, answer = post(behind, GOOD)
        replace(door, model=(MODEL, "2")).reload()  # what a deploy of version 2 does
        deadline = time.monotonic() + 10
        while (after_reload := post(behind, GOOD)[1])["model_version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.1)  # nginx replaces its workers gracefully: the old one may answer a moment longer
    finally:
        door.stop()
    assert (status, answer["cause"], answer["model_version"]) == (503, "unavailable", "1")
    assert after_reload["model_version"] == "2"
    assert not door.running()
