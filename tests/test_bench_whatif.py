"""The what-if benchmark runs end to end at a tiny size and leaves the database as it found it."""

import io
import json

import pytest
from django.core.management import call_command

from leadcockpit.scoring.models import Criterion, Preview, ScoringVersion


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_whatif_benchmark_times_previews_and_the_backtest_and_deletes_its_drafts():
    out = io.StringIO()
    call_command("benchmark", "whatif", leads=300, touchpoints=3000, stdout=out)
    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    assert figures["area"] == "whatif"
    assert figures["scope"] == figures["leads_in_db"] == 300
    assert figures["unscored_before"] == 0  # the seed scores every lead
    assert figures["leads_with_accumulators"] == 300
    for key in ("whatif_s", "whatif_new_matcher_s", "backtest_s"):
        assert figures[key] > 0
        assert len(figures[key[:-2] + "_runs_s"]) == 3
        assert figures[key[:-2] + "_cpu_s"] is None or figures[key[:-2] + "_cpu_s"] >= 0
    assert figures["changed_band"] > 0  # the edit moves leads, so the timing is of real work
    assert 0 < figures["backtest_positives"] < figures["backtest_leads"] < 300
    # Fewer than 100k outcome leads here: the 100k figure must say it was extrapolated.
    assert figures["backtest_100k_basis"].startswith("EXTRAPOLATED")
    assert figures["backtest_100k_s"] > figures["backtest_s"]
    assert list(ScoringVersion.objects.values_list("status", flat=True)) == ["active"]
    assert not Criterion.objects.exclude(version__status="active").exists()
    assert not Preview.objects.exists()
