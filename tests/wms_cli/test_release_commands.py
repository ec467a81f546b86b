"""`wms release render`: a stage's manifests written to a folder, and clear refusals of what a release cannot be."""

import yaml
from click.testing import CliRunner

from wms_cli.main import main

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving@sha256:" + "0123456789abcdef" * 4


def render(*arguments: str):
    return CliRunner().invoke(main, ["release", "render", *arguments])


def test_render_writes_the_stage_manifests_and_names_them(tmp_path):
    output = tmp_path / "prod"
    result = render("--stage", "prod", "--output", str(output), "--model-version", "7", "--image", IMAGE)
    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in output.iterdir())
    expected = {"deployment.yaml", "ingress.yaml", "grafana-dashboard.yaml", "prometheusrule.yaml"}  # prod carries the rules
    assert expected <= set(written) and len(written) == 11
    assert "wrote 11 manifests of the prod release (model-prod)" in result.output
    for name in written:
        assert str(output / name) in result.output
        [document] = [item for item in yaml.safe_load_all((output / name).read_text()) if item]
        assert document["metadata"]["namespace"] == "model-prod"
    deployment = yaml.safe_load((output / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_render_needs_the_image_and_the_model_version(tmp_path):
    result = render("--stage", "staging", "--output", str(tmp_path / "out"), "--model-version", "7")
    assert result.exit_code == 2 and "Missing option '--image'" in result.output
    result = render("--stage", "staging", "--output", str(tmp_path / "out"), "--image", IMAGE)
    assert result.exit_code == 2 and "Missing option '--model-version'" in result.output
    assert not (tmp_path / "out").exists()


def test_an_image_by_tag_is_refused_with_what_to_give(tmp_path):
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving:latest"
    result = render("--stage", "staging", "--output", str(tmp_path / "out"), "--model-version", "7", "--image", image)
    assert result.exit_code == 2
    assert "is not pinned by digest: give REPOSITORY@sha256:<64 hex digits>" in result.output
    assert not (tmp_path / "out").exists()


def test_an_unknown_stage_is_refused(tmp_path):
    result = render("--stage", "qa", "--output", str(tmp_path), "--model-version", "7", "--image", IMAGE)
    assert result.exit_code == 2 and "'qa' is not one of 'staging', 'prod'" in result.output


def test_a_folder_with_files_in_it_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    result = render("--stage", "staging", "--output", str(tmp_path), "--model-version", "7", "--image", IMAGE)
    assert result.exit_code == 2 and "is not an empty folder" in result.output
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
