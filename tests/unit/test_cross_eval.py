"""The in/cross comparison summary: per-label counts, distractor false positives, confusions,
and the model card section it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.lab.evaluation.cross import summarise
from engines.lab.evaluation.cross_markdown import (
    CARD_BEGIN,
    CARD_END,
    markdown,
    write_card_section,
)

pytestmark = pytest.mark.unit

LABELS = ["siren", "horn"]


def _case() -> dict[str, object]:
    # windows: 2 siren scenes (one missed), 2 music distractors (one fires horn), one unscored
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [1, 0]], np.float32)
    care = np.array([[1, 1], [1, 1], [1, 1], [1, 1], [0, 1]], np.float32)
    scores = np.array([[0.9, 0.1], [0.2, 0.1], [0.1, 0.8], [0.1, 0.1], [0.0, 0.0]], np.float32)
    kinds = ["siren", "siren", "music", "music", "siren"]
    return summarise(truth, care, scores, kinds, LABELS, ["music"])


def test_summary_counts_only_scored_windows_and_names_the_confusions() -> None:
    res = _case()
    siren = res["labels"]["siren"]  # type: ignore[index]
    assert (siren["tp"], siren["fn"], siren["fp"]) == (1, 1, 0)  # the unscored window is out
    dis = res["distractors"]  # type: ignore[index]
    assert dis["windows"] == 2
    assert dis["any_false_label_rate"] == pytest.approx(0.5)
    assert dis["labels"]["horn"]["fpr"] == pytest.approx(0.5)
    errors = {c["error"]: c["windows"] for c in res["confusions"]}  # type: ignore[attr-defined]
    assert errors == {"music → horn": 1, "siren missed": 1}


def test_markdown_and_card_section_replace_in_place(tmp_path: Path) -> None:
    res = _case()
    res.update(windows=5, scenes=4, seed=1, generator="abc", stream_edges={})
    text = markdown({"engine": "e", "backend": "b", "threshold": 0.5, "cross": res})
    assert "| siren | 1.000 | 0.500 | 0.667 | 1.000 | 2 |" in text
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(f"# card\n\n{CARD_BEGIN}\nSTALE-TABLE\n{CARD_END}\n\n## Limits\n")
    write_card_section(card, text)
    write_card_section(card, text)
    body = card.read_text()
    assert body.count(CARD_BEGIN) == 1
    assert "STALE-TABLE" not in body
    assert body.endswith("## Limits\n")
    assert "music → horn" in body
