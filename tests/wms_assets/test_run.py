import signal

import dagster as dg
import pytest

from wms_assets.run import materialize_job


@dg.asset
def one() -> int:
    return 1


@pytest.fixture
def in_a_background_job():
    """SIGINT ignored, as in a process a script started with `&`; SIGTERM at its default."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_a_run_leaves_sigterm_as_it_found_it(in_a_background_job):
    defs = dg.Definitions(assets=[one], jobs=[dg.define_asset_job("tiny", selection=[one])])
    outcome = materialize_job(instance=dg.DagsterInstance.ephemeral(), defs=defs, job="tiny")
    assert outcome.success
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
