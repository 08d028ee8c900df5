"""`python -m bench.consumer_cost` at a tiny size on SQLite: each consumer's statements and
commits per payment, and the sequencer's, for each round size; fewer per payment in larger
rounds where a consumer batches. Counts only: nothing here depends on timing."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.consumer_cost import measure

from bench import dbstats


async def test_each_consumer_and_the_sequencer_are_counted_per_payment(tmp_path: Path) -> None:
    url = dbstats.sqlite_url(tmp_path / "bench.db")
    await dbstats.migrate(url)
    result = await measure(url, tmp_path, rounds=[1, 4], payments=4)
    one, four = result["round_1"], result["round_4"]
    assert result["events_per_payment_1"] == result["events_per_payment_4"] == 2.0
    for name in ("(sequencer)", "risk.monitor", "marketing.settle", "ledger.postings"):
        assert one[name]["statements"] > 0, name
        assert one[name]["commits"] > 0, name
    # a consumer with a batch handler pays per round: four payments a round cost it less each
    assert four["risk.monitor"]["statements"] < one["risk.monitor"]["statements"]
    assert four["(sequencer)"]["commits"] < one["(sequencer)"]["commits"]
    total = one["(all consumers and sequencer)"]["statements"]
    assert total == pytest.approx(sum(v["statements"] for k, v in one.items()
                                      if not k.startswith("(all")), abs=0.1)
