import pytest

from wms_assets import constants
from wms_assets.remote import client_for
from wms_cli.main import JOBS


def test_the_cli_job_names_are_the_definitions_jobs():
    assert JOBS == {
        "lineage": constants.LINEAGE_JOB,
        "training": constants.TRAINING_JOB,
        "staging": constants.STAGING_JOB,
        "production": constants.PRODUCTION_JOB,
    }


@pytest.mark.parametrize("url", ["dagster-webserver:80", "ftp://host", "http://"])
def test_a_webserver_address_that_is_not_http_is_refused(url):
    with pytest.raises(ValueError, match="not a Dagster webserver address"):
        client_for(url)


def test_wms_run_on_aws_without_a_dagster_address_says_what_to_set(monkeypatch):
    from click.testing import CliRunner

    from wms_cli.main import main

    monkeypatch.setenv("WMS_PROFILE", "aws")
    monkeypatch.delenv("WMS_DAGSTER_URL", raising=False)

    result = CliRunner().invoke(main, ["run", "--job", "training"])

    assert result.exit_code == 2
    assert "WMS_DAGSTER_URL" in result.output
