"""One answer on shared subscriptions, in the code and in both documents that speak of it: the ingest uses a
plain persistent subscription by default, and a shared one only when ``ZHIJIAN_SHARE_GROUP`` asks."""

from __future__ import annotations

from pathlib import Path

from cloud_ingest.settings import IngestSettings
from device_profiles.topics import subscription

DOCS = Path(__file__).parents[2] / "docs"


def test_the_default_subscription_is_plain_and_both_documents_say_so() -> None:
    default = IngestSettings.model_fields["share_group"].default
    assert default == ""
    assert subscription("data", share_group=default) == "zhijian/v1/+/data"  # what the worker subscribes to
    contract = (DOCS / "contract.md").read_text(encoding="utf-8")
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    assert "not an MQTT 5 shared one" in contract and "ZHIJIAN_SHARE_GROUP" in contract
    assert "We do not use MQTT 5 shared subscriptions by default" in operations and "ZHIJIAN_SHARE_GROUP" in operations
