"""The demo's request on the local stack against each kind of org, nothing changing: it publishes in
strict mode at its first look, with a capacity report that names its bound (docs/genesys-fields.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfm_publish_local import demo

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("name", ["byoc-premises", "byoc-cloud", "genesys-cloud-voice", "hybrid"])
def test_the_demo_publishes_at_its_first_look_on_every_org_kind(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = demo.run(SCENARIOS / f"{name}.yaml")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PUBLISHED" in out
    assert "telephony not settled" not in out and "409 conflict" not in out
    assert "(bound: " in out  # the capacity check says which bound decided
