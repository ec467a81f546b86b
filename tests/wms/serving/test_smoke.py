from PIL import Image

from tests.conftest import free_port
from wms.serving.smoke import sample_photo, smoke_test


def test_the_sample_photo_is_a_jpeg_meter_photo():
    import io

    photo = Image.open(io.BytesIO(sample_photo()))

    assert photo.format == "JPEG" and min(photo.size) >= 64


def test_a_release_that_does_not_answer_fails_with_the_address():
    url = f"http://127.0.0.1:{free_port()}"

    result = smoke_test(url, "wms-unet", "3")

    assert not result.passed
    assert f"{url}/ping did not answer" in result.problems[0]
